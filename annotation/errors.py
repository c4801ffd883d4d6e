"""How a ValidationError is said to a person: the one place that formats the field and the reason.

Services raise django.core.exceptions.ValidationError with a dict of field -> reason(s). Callers
show it as a 400 body (api_common.exception_handler), one line of text (a CLI error, an import's
rejected line, a job error) or errors on a form (browser pages); they all go through here.
"""
from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import PermissionDenied, ValidationError


class AnnotatorPaused(PermissionDenied):
    """The annotator is paused on the dataset (annotation.quality.standing): no new records are handed
    to them (HTTP 403 over the API, with the reason; a message on the annotate page). What they did
    is kept, and they may still answer the record they hold or finish a draft."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ConflictError(ValidationError):
    """A request that is well formed but conflicts with what is stored (HTTP 409 over the API; a
    form error on a page): nothing was changed."""


def validation_items(exc: ValidationError) -> list[tuple[str | None, list[str]]]:
    """(field, messages) of each field the error names; (None, messages) for an error without one."""
    if hasattr(exc, "error_dict"):
        return list(exc.message_dict.items())
    return [(None, list(exc.messages))]


def validation_detail(exc: ValidationError) -> dict[str, list[str]]:
    """The body of a 400: field -> messages, or {"detail": messages} when no field is named."""
    return exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}


def validation_message(exc: ValidationError) -> str:
    """One line: "field: reason; other: reason" (an error without a field: its reasons)."""
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{key}: {' '.join(messages)}" for key, messages in exc.message_dict.items())
    return " ".join(exc.messages)


def form_errors_from(form, exc: ValidationError, *,
                     field_for: Callable[[str | None], str | None] | None = None) -> None:
    """Put a service's ValidationError on a Django form.

    Each field's reasons go on the form field `field_for(key)` names (by default the form field of
    the same name, if there is one), else on the form as a whole. A reason that does not land on a
    field of its own name is prefixed with the key it came with ("error" when it had none).
    """
    for key, messages in validation_items(exc):
        target = field_for(key) if field_for is not None else (key if key in form.fields else None)
        text = "; ".join(messages)
        form.add_error(target, text if target is not None and target == key else f"{key or 'error'}: {text}")
