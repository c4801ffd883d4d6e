"""Writing a batch of validated records: PostgreSQL COPY, or services.records_upsert elsewhere.

On PostgreSQL a batch is written with COPY (new external_ids straight into the record table, in
COPY's binary format; stored ones through a temp table and INSERT .. ON CONFLICT), texts
TOAST-compressed with lz4.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ..models import Dataset
from ..services import UpsertCounts, records_upsert

_PG_TMP = "preflab_import_tmp"
_RECORD_COLUMNS = ("dataset_id, external_id, fields, metadata, priority, submitted_count, leased_count, "
                   "completed, extra_wanted, is_gold, created_at, updated_at")
_lz4: bool | None = None


def _lz4_available(cursor) -> bool:
    global _lz4
    if _lz4 is None:
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        row = cursor.fetchone()
        _lz4 = bool(row and row[0])
    return _lz4


# COPY's binary format: a signature, then per row the number of columns and each value as its
# length and its bytes, then a trailer. PostgreSQL reads it without scanning each text for
# delimiters and escapes, which saved about a third of the server's CPU per record (3 KB records).
_BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # no flags, no header extension
_BINARY_TRAILER = b"\xff\xff"
_INT4 = struct.Struct("!i").pack
_JSONB = struct.Struct("!ib").pack  # length, then jsonb's binary version (1) before the JSON text
_FLOAT8 = struct.Struct("!id").pack
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


def _binary_head_tail(dataset: Dataset, now: datetime) -> tuple[bytes, bytes]:
    """The constant parts of a new record's binary COPY row (_RECORD_COLUMNS): the column count
    and dataset id; the counters, flags and timestamps."""
    micros = _INT4(8) + struct.pack("!q", (now - _PG_EPOCH) // _ONE_MICROSECOND)
    head = struct.pack("!hiq", 12, 8, dataset.pk)
    tail = (_INT4(4) + _INT4(0)) * 2 + _INT4(1) + b"\x00" + _INT4(2) + b"\x00\x00" + _INT4(1) + b"\x00" + micros * 2
    return head, tail


def _binary_rows(head: bytes, tail: bytes, rows: list[dict]) -> bytes:
    """New records as binary COPY rows, in one bytes object (texts go as they are: no escaping in
    this format; one join for all the rows rather than one per row)."""
    pieces: list[bytes] = []
    add = pieces.extend
    for row in rows:
        eid = row["external_id"].encode()
        fields = row.get("fields_json") or orjson.dumps(row["fields"])
        metadata = row.get("metadata_json") or orjson.dumps(row["metadata"])
        add((head, _INT4(len(eid)), eid, _JSONB(len(fields) + 1, 1), fields, _JSONB(len(metadata) + 1, 1), metadata,
             _FLOAT8(8, float(row.get("priority", 0.0))), tail))
    return b"".join(pieces)


def _json_of(row: dict, key: str) -> bytes:
    """The row's fields/metadata as JSON bytes (records_import serialises them once, up front)."""
    cached = row.get(key + "_json")
    return cached if cached is not None else orjson.dumps(row[key])


def _stored_ids(cursor, dataset: Dataset, external_ids: list[str]) -> set[str]:
    cursor.execute("SELECT external_id FROM annotation_record WHERE dataset_id = %s AND external_id = ANY(%s)",
                   [dataset.pk, external_ids])
    return {r[0] for r in cursor.fetchall()}


def _records_upsert_postgres(*, dataset: Dataset, rows: list[dict], assume_new: bool = False,
                             on_started: Callable[[], None] | None = None) -> UpsertCounts:
    """PostgreSQL fast path. Same semantics as services.records_upsert (last row per external_id
    wins; an update replaces fields/metadata/priority and keeps responses, suggestions and
    counters); atomic per batch.

    New external_ids are COPYed straight into the record table; ids already stored go through a
    temp table and one UPDATE. If a concurrent import inserted one of the "new" ids meanwhile,
    the batch falls back (inside a savepoint) to COPY into the temp table + INSERT .. ON CONFLICT.
    Large texts are TOAST-compressed with lz4 when the server has it (much cheaper than pglz).
    `assume_new` skips the lookup of stored ids (the previous batch of this import was all new):
    a conflict then simply sends the batch down the fallback path. `on_started()` is called once
    the batch's transaction has begun and its rows are about to be sent.
    """
    by_id: dict[str, dict] = {}
    for row in rows:
        by_id[row["external_id"]] = row
    if not by_id:
        return UpsertCounts()
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            if _lz4_available(cursor):
                cursor.execute("SET LOCAL default_toast_compression = 'lz4'")
            fk_by_batch = _dataset_fk_checked_by_batch(cursor, dataset)
            existing = set() if assume_new else _stored_ids(cursor, dataset, list(by_id))
            new_ids = [eid for eid in by_id if eid not in existing]
            if on_started is not None:
                on_started()
            copied = bool(new_ids) and _copy_new(cursor, dataset=dataset, by_id=by_id, new_ids=new_ids, now=now)
            todo = [eid for eid in by_id if eid in existing] if copied or not new_ids else list(by_id)
            inserted, total = (_upsert_through_temp(cursor, dataset=dataset, by_id=by_id, todo=todo, now=now)
                               if todo else (0, 0))
            if fk_by_batch:
                cursor.execute("SET LOCAL session_replication_role = origin")
    if not todo:
        return UpsertCounts(created=len(new_ids))
    return UpsertCounts(created=(len(new_ids) if copied else 0) + inserted, updated=total - inserted)


def _dataset_fk_checked_by_batch(cursor, dataset: Dataset) -> bool:
    """Check the record table's foreign key to the dataset once for the batch rather than once per
    row, when the connection may: True when done (the rest of the transaction, up to
    `SET LOCAL session_replication_role = origin`, fires no trigger).

    PostgreSQL checks a foreign key with a trigger per inserted row that looks the dataset up and
    locks it FOR KEY SHARE: ~10 us of a ~50 us row here (3 KB records). One `FOR KEY SHARE` of the
    dataset for the batch gives the same guarantee (the dataset exists and stays until the batch
    commits); `session_replication_role = replica` (superusers only, as pg_restore's
    --disable-triggers) then skips the per-row check. The dataset foreign key's check is the only
    trigger an insert into the record table fires (tests/annotation/test_import_postgres.py checks
    it): a new one must be checked here too. Without the right, the triggers run as usual.
    """
    if cursor.cursor.connection.info.parameter_status("is_superuser") != "on":
        return False
    cursor.execute("SELECT 1 FROM annotation_dataset WHERE id = %s FOR KEY SHARE", [dataset.pk])
    if cursor.fetchone() is None:
        raise IntegrityError(f"dataset {dataset.pk} does not exist")
    cursor.execute("SET LOCAL session_replication_role = replica")
    return True


def _copy_new(cursor, *, dataset: Dataset, by_id: dict[str, dict], new_ids: list[str], now) -> bool:
    """COPY the new records straight into the record table (in a savepoint); False when a
    concurrent writer stored one of them meanwhile (nothing of the COPY stays)."""
    raw_cursor = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
    try:
        with transaction.atomic():
            with raw_cursor.copy(f"COPY annotation_record ({_RECORD_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                head, tail = _binary_head_tail(dataset, now)
                copy.write(_BINARY_SIGNATURE)
                for start in range(0, len(new_ids), 128):  # ~0.5 MB pieces, not one big buffer
                    copy.write(_binary_rows(head, tail, [by_id[eid] for eid in new_ids[start:start + 128]]))
                copy.write(_BINARY_TRAILER)
        return True
    except (IntegrityError, psycopg.IntegrityError):
        return False  # a concurrent writer stored one of them: upsert the whole batch


def _upsert_through_temp(cursor, *, dataset: Dataset, by_id: dict[str, dict], todo: list[str], now) -> tuple[int, int]:
    """COPY the records `todo` into a temp table, then INSERT .. ON CONFLICT DO UPDATE from it;
    returns (inserted, inserted + updated)."""
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_PG_TMP} (external_id text, fields text, metadata text, "
        "priority double precision) ON COMMIT DELETE ROWS")
    # empty even when an outer transaction (a test, ATOMIC_REQUESTS) keeps the last batch
    cursor.execute(f"TRUNCATE {_PG_TMP}")
    with cursor.cursor.copy(f"COPY {_PG_TMP} (external_id, fields, metadata, priority) FROM STDIN") as copy:
        for eid in todo:
            r = by_id[eid]
            copy.write_row((eid, _json_of(r, "fields").decode(), _json_of(r, "metadata").decode(),
                            r.get("priority", 0.0)))
    cursor.execute(
        f"""WITH up AS (
            INSERT INTO annotation_record ({_RECORD_COLUMNS})
            SELECT %s, external_id, fields::jsonb, metadata::jsonb, priority, 0, 0, false, 0, false, %s, %s
            FROM {_PG_TMP}
            ON CONFLICT (dataset_id, external_id) DO UPDATE SET fields = EXCLUDED.fields,
                metadata = EXCLUDED.metadata, priority = EXCLUDED.priority, updated_at = EXCLUDED.updated_at
            RETURNING (xmax = 0) AS inserted)
        SELECT count(*) FILTER (WHERE inserted), count(*) FROM up""",
        [dataset.pk, now, now])
    return cursor.fetchone()


def records_batch_upsert(*, dataset: Dataset, rows: list[dict], fast: bool | None = None,
                         assume_new: bool = False, on_started: Callable[[], None] | None = None) -> UpsertCounts:
    """Upsert one validated batch: COPY-based on PostgreSQL, services.records_upsert elsewhere.
    `on_started()`: see _records_upsert_postgres (not called elsewhere)."""
    if fast is None:
        fast = connection.vendor == "postgresql"
    if fast:
        return _records_upsert_postgres(dataset=dataset, rows=rows, assume_new=assume_new, on_started=on_started)
    return records_upsert(dataset=dataset, rows=rows)
