"""The cleaning of an imported preference set: an admin accepts or rejects each flip the judge
found (stored per record, reversible)."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from annotation.models import Record

from ..models import FlipDecision

DECISIONS = (*FlipDecision.Decision.values, "undecided")


@transaction.atomic
def flip_decide(*, record: Record, decision: str, user) -> FlipDecision | None:
    """Accept or reject the flip of an imported pair, or ("undecided") take the decision back."""
    if decision not in DECISIONS:
        raise ValidationError({"decision": f"must be one of {', '.join(DECISIONS)}"})
    if "original_chosen" not in (record.metadata or {}):
        raise ValidationError({"record": "this record was not imported as a pair (no original label to flip)"})
    if decision == "undecided":
        FlipDecision.objects.filter(record=record).delete()
        return None
    found, _ = FlipDecision.objects.update_or_create(record=record,
                                                     defaults={"decision": decision, "decided_by": user})
    return found
