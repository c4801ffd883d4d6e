"""The raw export: every annotator response of a dataset, one row each, for people who aggregate
answers themselves. Streamed in id order, a chunk at a time, with keyset pagination on the (dataset,
id) index from the dataset's first response (annotation.selectors.dataset_pages).

Columns: response_id, record_id, external_id, user (username), simulated (the annotator is a
simulated or imported member), status (draft | submitted | discarded), values (the answers as a
JSON text, the same in every format: question name -> value), display_order (the field names in the
order the annotator saw them), duration (seconds), created_at and updated_at (ISO 8601, UTC),
suggestion_shown (whether a judge's suggestion was on screen; null when not recorded), gold (the record
is a gold record), and the record's review beside every response of it (null when
it has none): review_decision (accepted | own | sent_back), reviewed_by (the reviewer's username),
review_values (the verdict as a JSON text, like values; null when sent back), review_accepted (this
response is the one the reviewer accepted). The review is columns, not rows of its own: a row is one
annotator's response, and a verdict is not one; the triplet and unpaired exports apply it.
Gold records and the responses of annotators excluded on the dataset are left out unless
include_gold / include_excluded.
"""
from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator

import orjson
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef

from ..models import Dataset, Membership, Response
from ..quality.standing import excluded_user_ids
from ..selectors import dataset_pages

RESPONSES_COLUMNS = ("response_id", "record_id", "external_id", "user", "simulated", "status", "values",
                     "display_order", "duration", "created_at", "updated_at", "suggestion_shown", "gold",
                     "review_decision", "reviewed_by", "review_values", "review_accepted")
RESPONSE_STATUSES = tuple(Response.Status.values)
CHUNK_RESPONSES = 2_000


def responses_export(*, dataset: Dataset, status: str | None = None, include_gold: bool = False,
                     include_excluded: bool = False, chunk_size: int = CHUNK_RESPONSES,
                     on_progress: Callable[[int], None] | None = None) -> Iterator[dict]:
    """Yield every response of the dataset (or those with `status`), streamed. Raises ValidationError
    naming a bad option before yielding anything. `on_progress(n)` after each chunk of n responses."""
    if status and status not in RESPONSE_STATUSES:
        raise ValidationError({"status": f"must be one of {', '.join(RESPONSE_STATUSES)}, not {str(status)[:40]!r}"})
    base = _responses(dataset, include_gold=include_gold, include_excluded=include_excluded)
    if status:
        base = base.filter(status=status)
    simulated = Membership.objects.filter(user_id=OuterRef("user_id"), workspace_id=dataset.workspace_id,
                                          is_simulated=True)
    base = (base.annotate(simulated=Exists(simulated)).order_by("id")
            .values_list("id", "record_id", "record__external_id", "user__username", "simulated", "status", "values",
                         "display_order", "duration", "created_at", "updated_at", "suggestion_shown", "record__is_gold",
                         "record__review__decision", "record__review__reviewer__username", "record__review__values",
                         "record__review__accepted_response_id"))
    return _responses_iter(base, dataset.pk, chunk_size, on_progress)


def _responses(dataset: Dataset, *, include_gold: bool, include_excluded: bool):
    base = Response.objects.filter(dataset_id=dataset.pk)
    if not include_gold:
        base = base.filter(record__is_gold=False)
    if not include_excluded:
        excluded = excluded_user_ids(dataset=dataset)
        if excluded:
            base = base.exclude(user_id__in=sorted(excluded))
    return base


def responses_export_count(dataset: Dataset, *, include_gold: bool = False, include_excluded: bool = False) -> int:
    return _responses(dataset, include_gold=include_gold, include_excluded=include_excluded).count()


def _iso(value: datetime.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC)
    return value.isoformat().replace("+00:00", "Z")


def _responses_iter(base, dataset_id: int, chunk_size: int, on_progress) -> Iterator[dict]:
    for chunk in dataset_pages(base, dataset_id=dataset_id, size=chunk_size):
        for (rid, record_id, external_id, user, simulated, status, values, order, duration, created, updated, shown,
             gold, decision, reviewer, verdict, accepted) in chunk:
            yield {"response_id": rid, "record_id": record_id, "external_id": external_id, "user": user,
                   "simulated": bool(simulated), "status": status, "values": orjson.dumps(values or {}).decode(),
                   "display_order": [str(x) for x in (order or []) if x is not None] if isinstance(order, list) else [],
                   "duration": float(duration or 0.0), "created_at": _iso(created), "updated_at": _iso(updated),
                   "suggestion_shown": shown, "gold": bool(gold), "review_decision": decision, "reviewed_by": reviewer,
                   "review_values": orjson.dumps(verdict).decode() if decision and decision != "sent_back" else None,
                   "review_accepted": decision == "accepted" and accepted == rid}
        if on_progress is not None:
            on_progress(len(chunk))
