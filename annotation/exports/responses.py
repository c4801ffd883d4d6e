"""The raw export: every annotator response of a dataset, one row each, for people who aggregate
answers themselves. Streamed in id order with keyset pagination, a chunk at a time.

Columns: response_id, record_id, external_id, user (username), simulated (the annotator is a
simulated or imported member), status (draft | submitted | discarded), values (the answers as a
JSON text, the same in every format: question name -> value), display_order (the field names in the
order the annotator saw them), duration (seconds), created_at and updated_at (ISO 8601, UTC).
Whether a suggestion was shown is not stored per response, so it is not a column.
"""
from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator

import orjson
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef

from ..models import Dataset, Membership, Response

RESPONSES_COLUMNS = ("response_id", "record_id", "external_id", "user", "simulated", "status", "values",
                     "display_order", "duration", "created_at", "updated_at")
RESPONSE_STATUSES = tuple(Response.Status.values)
CHUNK_RESPONSES = 2_000


def responses_export(*, dataset: Dataset, status: str | None = None, chunk_size: int = CHUNK_RESPONSES,
                     on_progress: Callable[[int], None] | None = None) -> Iterator[dict]:
    """Yield every response of the dataset (or those with `status`), streamed. Raises ValidationError
    naming a bad option before yielding anything. `on_progress(n)` after each chunk of n responses."""
    if status and status not in RESPONSE_STATUSES:
        raise ValidationError({"status": f"must be one of {', '.join(RESPONSE_STATUSES)}, not {str(status)[:40]!r}"})
    base = Response.objects.filter(dataset_id=dataset.pk)
    if status:
        base = base.filter(status=status)
    simulated = Membership.objects.filter(user_id=OuterRef("user_id"), workspace_id=dataset.workspace_id,
                                          is_simulated=True)
    base = (base.annotate(simulated=Exists(simulated)).order_by("id")
            .values_list("id", "record_id", "record__external_id", "user__username", "simulated", "status", "values",
                         "display_order", "duration", "created_at", "updated_at"))
    return _responses_iter(base, chunk_size, on_progress)


def responses_export_count(dataset: Dataset) -> int:
    return Response.objects.filter(dataset_id=dataset.pk).count()


def _iso(value: datetime.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC)
    return value.isoformat().replace("+00:00", "Z")


def _responses_iter(base, chunk_size: int, on_progress) -> Iterator[dict]:
    last = 0
    while True:
        chunk = list(base.filter(id__gt=last)[:chunk_size])
        if not chunk:
            return
        for rid, record_id, external_id, user, simulated, status, values, order, duration, created, updated in chunk:
            yield {"response_id": rid, "record_id": record_id, "external_id": external_id, "user": user,
                   "simulated": bool(simulated), "status": status, "values": orjson.dumps(values or {}).decode(),
                   "display_order": [str(x) for x in (order or []) if x is not None] if isinstance(order, list) else [],
                   "duration": float(duration or 0.0), "created_at": _iso(created), "updated_at": _iso(updated)}
        last = chunk[-1][0]
        if on_progress is not None:
            on_progress(len(chunk))
        if len(chunk) < chunk_size:
            return
