"""Streaming import of records (JSON array, NDJSON, CSV, Parquet) and of existing preference pairs.

Readers never hold the whole input: NDJSON and CSV are read line by line from a binary stream in
64 KiB chunks, Parquet batch by batch, and a JSON array is parsed element by element with
`json.JSONDecoder.raw_decode` over a rolling text buffer (no extra dependency such as ijson: the
C scanner behind raw_decode is fast, and the buffer only ever holds the element being read plus
one read chunk).

Every reader yields `(line, raw, size)` where `raw` is the decoded object or a `LineError`; `line`
is the 1-based line number (NDJSON, CSV: the physical line; JSON array: the element's position;
Parquet: the row number). `records_import` validates each item with
`validation.record_validate`, upserts the valid ones in batches (atomic per batch, keyed on
external_id so re-sending updates and never duplicates) and reports every rejected line.

On PostgreSQL a batch is written with COPY (new external_ids straight into the record table,
stored ones through a temp table and INSERT .. ON CONFLICT), texts TOAST-compressed with lz4,
and `pipeline=True` writes each batch on a second thread while the next one is parsed. Memory
stays at a few batches whatever the input size.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import queue
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import orjson
import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from .errors import validation_message
from .models import Dataset, Field, Workspace
from .services import UpsertCounts, dataset_create, pairwise_dataset_spec, records_upsert, response_field_names
from .validation import FieldSpec, field_specs_of, record_validate

FORMATS = ("json", "ndjson", "csv", "parquet")
READ_CHUNK = 1 << 16
# How many rejected lines an ImportReport keeps in memory; the rest are only counted.
MAX_REJECTED_KEPT = 10_000
RAW_KEEP = 2_000  # characters of a rejected line kept for the report / JobError.raw


class ImportFormatError(Exception):
    """The input cannot be read at all (e.g. a JSON body that is not an array): a 400."""


class UploadTooLarge(Exception):
    """The stream went over settings.PREFLAB_MAX_UPLOAD_BYTES (chunked uploads have no Content-Length)."""


@dataclass
class LineError:
    reason: str
    raw: str = ""


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    rejected: list[dict] = field(default_factory=list)
    rejected_count: int = 0
    total_lines: int = 0

    def reject(self, line: int, reason: str, raw: str = "") -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REJECTED_KEPT:
            self.rejected.append({"line": line, "reason": reason})

    @property
    def rejected_not_listed(self) -> int:
        return self.rejected_count - len(self.rejected)

    def as_dict(self) -> dict:
        out = {"created": self.created, "updated": self.updated, "rejected": self.rejected,
               "rejected_count": self.rejected_count, "total_lines": self.total_lines}
        if self.rejected_not_listed:
            out["rejected_not_listed"] = self.rejected_not_listed
            out["note"] = (f"only the first {MAX_REJECTED_KEPT} rejected lines are listed; "
                           f"{self.rejected_not_listed} more were rejected")
        return out


# --- byte streams ------------------------------------------------------------------------------

class CountingStream(io.RawIOBase):
    """Wraps a binary stream: counts bytes read and stops at `limit` with UploadTooLarge."""

    def __init__(self, stream, limit: int | None = None):
        super().__init__()
        self.stream = stream
        self.limit = limit
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.read_bytes += len(data)
        if self.limit is not None and self.read_bytes > self.limit:
            raise UploadTooLarge(f"the upload is over the limit of {self.limit} bytes")
        return data

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def iter_lines(stream, *, max_line: int) -> Iterator[tuple[int, bytes | None, int]]:
    """Yield (line_number, line_bytes_without_newline | None, size) from a binary stream.

    A line longer than `max_line` bytes is not kept in memory: it is skipped up to its newline
    and yielded as None with its size, so the caller can reject it as oversized.
    """
    buf = b""
    line_no = 0
    skipping = False
    skipped = 0
    while True:
        chunk = stream.read(READ_CHUNK)
        if not chunk:
            break
        if skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                skipped += len(chunk)
                continue
            line_no += 1
            yield line_no, None, skipped + nl
            skipping = False
            chunk = chunk[nl + 1:]
        buf = buf + chunk if buf else chunk
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line_no += 1
            yield line_no, buf[start:nl], nl - start
            start = nl + 1
        buf = buf[start:]
        if len(buf) > max_line:
            skipping = True
            skipped = len(buf)
            buf = b""
    if skipping:
        line_no += 1
        yield line_no, None, skipped
    elif buf:
        line_no += 1
        yield line_no, buf, len(buf)


# --- readers -----------------------------------------------------------------------------------

def read_ndjson(stream, *, max_bytes: int) -> Iterator[tuple[int, Any, int | None]]:
    for line_no, line, size in iter_lines(stream, max_line=max_bytes + 2):
        if line is None:
            yield line_no, LineError(f"record: record is {size} bytes, over the limit of {max_bytes}"), size
            continue
        if line.endswith(b"\r"):
            line = line[:-1]
            size -= 1
        if not line.strip():
            continue  # blank lines (e.g. a trailing newline) are not records
        try:
            yield line_no, orjson.loads(line), size
        except orjson.JSONDecodeError as exc:
            yield line_no, LineError(f"malformed JSON: {exc}", line[:RAW_KEEP].decode("utf-8", "replace")), size


def read_json_array(stream, *, max_bytes: int) -> Iterator[tuple[int, Any, int | None]]:
    """Parse a JSON array element by element from a binary stream.

    Raises ImportFormatError when the body is not an array at all. A syntax error inside the
    array makes the rest unreadable: that element is reported and reading stops.
    """
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buf = ""
    pos = 0
    eof = False

    def fill() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        chunk = stream.read(READ_CHUNK)
        if not chunk:
            eof = True
            buf = buf[pos:] + utf8.decode(b"", final=True)
            pos = 0
            return False
        buf = buf[pos:] + utf8.decode(chunk)
        pos = 0
        return True

    def skip_ws() -> str:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n\ufeff":
                pos += 1
            if pos < len(buf):
                return buf[pos]
            if not fill():
                return ""

    first = skip_ws()
    if first != "[":
        raise ImportFormatError("the body must be a JSON array of records (or send "
                                "Content-Type: application/x-ndjson with one record per line)")
    pos += 1
    element = 0
    expect_value = True
    if skip_ws() == "]":
        pos += 1
        expect_value = False
    while expect_value:
        element += 1
        c = skip_ws()
        if c == "":
            yield element, LineError("malformed JSON: the array is not closed"), None
            return
        while True:
            try:
                obj, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                # Maybe the element is cut by the end of the buffer: read more and retry. An
                # element bigger than the record limit is skipped without keeping it.
                if len(buf) - pos > max_bytes * 4 + READ_CHUNK:
                    yield element, LineError(f"record: record is over the limit of {max_bytes} bytes "
                                             "(the rest of the array could not be read)"), None
                    return
                if fill() or (not eof):
                    continue
                yield element, LineError(f"malformed JSON: {exc.msg} (the rest of the array could not be read)",
                                         buf[pos:pos + RAW_KEEP]), None
                return
            if end == len(buf) and not eof and isinstance(obj, (int, float)):
                # a number at the buffer edge may continue in the next chunk
                if fill():
                    continue
            break
        size = end - pos
        if size * 4 > max_bytes:  # characters -> bytes only when it could matter
            size = len(buf[pos:end].encode("utf-8", "replace"))
        pos = end
        yield element, obj, size
        c = skip_ws()
        if c == ",":
            pos += 1
            continue
        if c == "]":
            pos += 1
            break
        yield element + 1, LineError("malformed JSON: expected ',' or ']' after an element "
                                     "(the rest of the array could not be read)", buf[pos:pos + RAW_KEEP]), None
        return
    if skip_ws() != "":
        yield element + 1, LineError("malformed JSON: content after the end of the array"), None


def _flat_row_to_record(row: dict, chat_fields: set[str]) -> dict:
    """CSV/Parquet column rules: `external_id`/`id`, `priority`, `metadata.<key>`; the rest are fields."""
    if isinstance(row.get("fields"), dict):  # a nested Parquet schema: already a record
        return {k: v for k, v in row.items() if v is not None}
    record: dict[str, Any] = {"fields": {}, "metadata": {}}
    for key, value in row.items():
        if key is None:
            raise ValidationError({"record": "more values than columns"})
        if key in ("external_id", "id"):
            if value not in (None, ""):
                record["external_id"] = value
        elif key == "priority":
            if value not in (None, ""):
                try:
                    record["priority"] = float(value)
                except (TypeError, ValueError):
                    raise ValidationError({"priority": f"must be a number, not {str(value)[:50]!r}"})
        elif key.startswith("metadata."):
            if value not in (None, ""):
                record["metadata"][key[len("metadata."):]] = value
        elif key == "metadata":
            if isinstance(value, str) and value.strip():
                try:
                    value = orjson.loads(value)
                except orjson.JSONDecodeError:
                    raise ValidationError({"metadata": "the metadata column must hold a JSON object"})
            if isinstance(value, dict):
                record["metadata"].update(value)
        else:
            if key in chat_fields and isinstance(value, str) and value.lstrip().startswith("["):
                try:
                    value = orjson.loads(value)
                except orjson.JSONDecodeError:
                    raise ValidationError({f"fields.{key}": "a chat column must hold a JSON list of messages"})
            if value is not None and value != "":
                record["fields"][key] = value
    return record


def read_csv(stream, *, max_bytes: int, chat_fields: set[str] = frozenset()) -> Iterator[tuple[int, Any, int | None]]:
    csv.field_size_limit(max(max_bytes * 2, 131072))
    if isinstance(stream, io.RawIOBase):
        stream = io.BufferedReader(stream, READ_CHUNK)
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise ImportFormatError(f"line 1: the CSV header cannot be read: {exc}")
    header = [h.strip() for h in header]
    if "" in header or len(set(header)) != len(header):
        raise ImportFormatError("line 1: the CSV header needs distinct, non-empty column names")
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, LineError(f"malformed CSV: {exc}"), None
            continue
        line_no = reader.line_num
        if not values or (len(values) == 1 and values[0] == ""):
            continue
        size = sum(len(v) for v in values)
        if len(values) != len(header):
            yield line_no, LineError(f"record: {len(values)} values for {len(header)} columns",
                                     ",".join(values)[:RAW_KEEP]), size
            continue
        try:
            yield line_no, _flat_row_to_record(dict(zip(header, values)), chat_fields), size
        except ValidationError as exc:
            yield line_no, LineError(validation_message(exc), ",".join(values)[:RAW_KEEP]), size


def read_parquet(source, *, max_bytes: int, chat_fields: set[str] = frozenset(),
                 batch_rows: int = 2_000) -> Iterator[tuple[int, Any, int | None]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(source)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise ImportFormatError(f"not a readable Parquet file: {exc}")
    line_no = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            line_no += 1
            try:
                yield line_no, _flat_row_to_record(row, chat_fields), None
            except ValidationError as exc:
                yield line_no, LineError(validation_message(exc)), None


def records_read(*, stream, fmt: str, max_bytes: int, chat_fields: set[str] = frozenset()):
    if fmt == "ndjson":
        return read_ndjson(stream, max_bytes=max_bytes)
    if fmt == "json":
        return read_json_array(stream, max_bytes=max_bytes)
    if fmt == "csv":
        return read_csv(stream, max_bytes=max_bytes, chat_fields=chat_fields)
    if fmt == "parquet":
        return read_parquet(stream, max_bytes=max_bytes, chat_fields=chat_fields)
    raise ValidationError({"format": f"must be one of {', '.join(FORMATS)}"})


def format_from_name(name: str) -> str | None:
    lower = name.lower()
    for suffix, fmt in ((".jsonl", "ndjson"), (".ndjson", "ndjson"), (".json", "json"), (".csv", "csv"),
                        (".parquet", "parquet"), (".pq", "parquet")):
        if lower.endswith(suffix):
            return fmt
    return None


# --- upsert ------------------------------------------------------------------------------------

_PG_TMP = "preflab_import_tmp"
_RECORD_COLUMNS = ("dataset_id, external_id, fields, metadata, priority, submitted_count, leased_count, "
                   "completed, created_at, updated_at")
_lz4: bool | None = None


def _lz4_available(cursor) -> bool:
    global _lz4
    if _lz4 is None:
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        row = cursor.fetchone()
        _lz4 = bool(row and row[0])
    return _lz4


def _copy_text(value: bytes) -> bytes:
    """A value in COPY's text format: backslash, tab, newline and carriage return escaped."""
    return (value.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
            .replace(b"\r", b"\\r"))


def _copy_json(value: bytes) -> bytes:
    """orjson output never holds a raw tab, newline or CR (JSON escapes them): only backslashes."""
    return value.replace(b"\\", b"\\\\")


def _json_of(row: dict, key: str) -> bytes:
    """The row's fields/metadata as JSON bytes (records_import serialises them once, up front)."""
    cached = row.get(key + "_json")
    return cached if cached is not None else orjson.dumps(row[key])


def _stored_ids(cursor, dataset: Dataset, external_ids: list[str]) -> set[str]:
    cursor.execute("SELECT external_id FROM annotation_record WHERE dataset_id = %s AND external_id = ANY(%s)",
                   [dataset.pk, external_ids])
    return {r[0] for r in cursor.fetchall()}


def _records_upsert_postgres(*, dataset: Dataset, rows: list[dict], assume_new: bool = False) -> UpsertCounts:
    """PostgreSQL fast path. Same semantics as services.records_upsert (last row per external_id
    wins; an update replaces fields/metadata/priority and keeps responses, suggestions and
    counters); atomic per batch.

    New external_ids are COPYed straight into the record table; ids already stored go through a
    temp table and one UPDATE. If a concurrent import inserted one of the "new" ids meanwhile,
    the batch falls back (inside a savepoint) to COPY into the temp table + INSERT .. ON CONFLICT.
    Large texts are TOAST-compressed with lz4 when the server has it (much cheaper than pglz).
    `assume_new` skips the lookup of stored ids (the previous batch of this import was all new):
    a conflict then simply sends the batch down the fallback path.
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
            existing = set() if assume_new else _stored_ids(cursor, dataset, list(by_id))
            raw_cursor = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
            new_ids = [eid for eid in by_id if eid not in existing]
            copied = False
            if new_ids:
                try:
                    with transaction.atomic():
                        with raw_cursor.copy(f"COPY annotation_record ({_RECORD_COLUMNS}) FROM STDIN") as copy:
                            head = str(dataset.pk).encode()
                            tail = f"0\t0\tf\t{now.isoformat()}\t{now.isoformat()}".encode()
                            for start in range(0, len(new_ids), 128):  # ~0.5 MB pieces, not one big buffer
                                lines = [b"\t".join((head, _copy_text(eid.encode()),
                                                     _copy_json(_json_of(by_id[eid], "fields")),
                                                     _copy_json(_json_of(by_id[eid], "metadata")),
                                                     repr(float(by_id[eid].get("priority", 0.0))).encode(), tail))
                                         for eid in new_ids[start:start + 128]]
                                lines.append(b"")
                                copy.write(b"\n".join(lines))
                    copied = True
                except (IntegrityError, psycopg.IntegrityError):
                    copied = False  # a concurrent writer stored one of them: upsert the whole batch
            todo = [eid for eid in by_id if eid in existing] if copied or not new_ids else list(by_id)
            if not todo:
                return UpsertCounts(created=len(new_ids))
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_PG_TMP} (external_id text, fields text, metadata text, "
                "priority double precision) ON COMMIT DELETE ROWS")
            # empty even when an outer transaction (a test, ATOMIC_REQUESTS) keeps the last batch
            cursor.execute(f"TRUNCATE {_PG_TMP}")
            with raw_cursor.copy(f"COPY {_PG_TMP} (external_id, fields, metadata, priority) FROM STDIN") as copy:
                for eid in todo:
                    r = by_id[eid]
                    copy.write_row((eid, _json_of(r, "fields").decode(), _json_of(r, "metadata").decode(),
                                    r.get("priority", 0.0)))
            cursor.execute(
                f"""WITH up AS (
                    INSERT INTO annotation_record ({_RECORD_COLUMNS})
                    SELECT %s, external_id, fields::jsonb, metadata::jsonb, priority, 0, 0, false, %s, %s
                    FROM {_PG_TMP}
                    ON CONFLICT (dataset_id, external_id) DO UPDATE SET fields = EXCLUDED.fields,
                        metadata = EXCLUDED.metadata, priority = EXCLUDED.priority, updated_at = EXCLUDED.updated_at
                    RETURNING (xmax = 0) AS inserted)
                SELECT count(*) FILTER (WHERE inserted), count(*) FROM up""",
                [dataset.pk, now, now])
            inserted, total = cursor.fetchone()
    return UpsertCounts(created=(len(new_ids) if copied else 0) + inserted, updated=total - inserted)


def records_batch_upsert(*, dataset: Dataset, rows: list[dict], fast: bool | None = None,
                         assume_new: bool = False) -> UpsertCounts:
    """Upsert one validated batch: COPY-based on PostgreSQL, services.records_upsert elsewhere."""
    if fast is None:
        fast = connection.vendor == "postgresql"
    if fast:
        return _records_upsert_postgres(dataset=dataset, rows=rows, assume_new=assume_new)
    return records_upsert(dataset=dataset, rows=rows)


# --- the import --------------------------------------------------------------------------------

ProgressFn = Callable[[int, int, list[tuple[int, str, str]]], None]


def records_import(*, dataset: Dataset, stream, fmt: str, batch_size: int | None = None,
                   on_progress: ProgressFn | None = None, max_bytes: int | None = None,
                   items: Iterable | None = None, pipeline: bool = False) -> ImportReport:
    """Import records from a binary stream; returns the counts and every rejected line.

    `fmt`: json | ndjson | csv | parquet. Valid lines are upserted in batches of `batch_size`
    (atomic per batch); rejected lines (malformed JSON, unknown or missing fields, wrong types,
    records over PREFLAB_MAX_RECORD_BYTES) are reported with their line number and never stop
    the import. `on_progress(stored, rejected, rejected_lines)` is called after every batch with
    the numbers of that batch and its rejected (line, reason, raw) items.
    `items` replaces the reader with already decoded (line, raw, size) items (used by pairs_import).
    `pipeline=True` (see pipeline_possible) writes each batch on a second thread while the next
    one is read and validated; on_progress is still called on the caller's thread, in order.
    Raises ImportFormatError when the input cannot be read at all, UploadTooLarge from a
    CountingStream; batches stored before either stay stored.
    """
    batch_size = batch_size or settings.PREFLAB_IMPORT_BATCH
    max_bytes = max_bytes or settings.PREFLAB_MAX_RECORD_BYTES
    specs: dict[str, FieldSpec] = field_specs_of(dataset)
    chat_fields = {s.name for s in specs.values() if s.kind == Field.Kind.CHAT}
    if items is None:
        items = records_read(stream=stream, fmt=fmt, max_bytes=max_bytes, chat_fields=chat_fields)
    report = ImportReport()
    dumps = orjson.dumps
    batch: list[dict] = []
    batch_rejected: list[tuple[int, str, str]] = []
    writer = _BatchWriter(dataset) if pipeline else None
    compact = connection.vendor == "postgresql"
    state = {"assume_new": False}  # True while this import's batches are all new records

    def report_batch(counts: UpsertCounts, n_stored: int, rejected: list) -> None:
        report.created += counts.created
        report.updated += counts.updated
        if on_progress is not None:
            on_progress(n_stored, len(rejected), rejected)

    def flush() -> None:
        nonlocal batch, batch_rejected
        if writer is not None:
            for done in writer.submit(batch, batch_rejected):
                report_batch(*done)
            batch, batch_rejected = [], []
            return
        counts = (records_batch_upsert(dataset=dataset, rows=batch, assume_new=state["assume_new"])
                  if batch else UpsertCounts())
        state["assume_new"] = bool(batch) and counts.updated == 0
        report_batch(counts, len(batch), list(batch_rejected))
        batch.clear()
        batch_rejected.clear()

    try:
        for line_no, raw, size in items:
            report.total_lines += 1
            if isinstance(raw, LineError):
                report.reject(line_no, raw.reason)
                batch_rejected.append((line_no, raw.reason, raw.raw))
            else:
                try:
                    clean = record_validate(raw, specs, max_bytes=max_bytes, size=size)
                    # serialised once here: checked for NUL and reused by the PostgreSQL COPY. Copied
                    # into right-sized objects: orjson's output keeps its over-allocated buffer
                    # (~16 KB for a 3 KB record), which would multiply a batch's memory by five.
                    clean["fields_json"] = fields_json = bytes(memoryview(dumps(clean["fields"])))
                    clean["metadata_json"] = metadata_json = bytes(memoryview(dumps(clean["metadata"])))
                    if ((b"\\u0000" in fields_json or b"\\u0000" in metadata_json or "\x00" in clean["external_id"])
                            and (_has_nul(clean["fields"]) or _has_nul(clean["metadata"])
                                 or "\x00" in clean["external_id"])):
                        raise ValidationError({"record": "contains a NUL character (\\u0000), which cannot be stored"})
                    if compact:  # the COPY path only needs the JSON bytes: keep a batch small
                        del clean["fields"], clean["metadata"]
                    batch.append(clean)
                except ValidationError as exc:
                    reason = validation_message(exc)
                    report.reject(line_no, reason)
                    batch_rejected.append((line_no, reason, _raw_text(raw)))
            if len(batch) >= batch_size or len(batch_rejected) >= batch_size:
                flush()
        if batch or batch_rejected:
            flush()
    finally:
        if writer is not None:
            for done in writer.close():  # waits for the batch in flight, re-raises its error
                report_batch(*done)
    _statistics_refresh_after(report.created)
    return report


ANALYZE_AFTER = 50_000


def _statistics_refresh_after(created: int) -> None:
    """After a big import, refresh PostgreSQL's planner statistics of the record table: on a
    freshly bulk-loaded table the planner has none, and the query behind `next` went from 0.4 ms
    to ~125 ms until autovacuum caught up."""
    if created >= ANALYZE_AFTER and connection.vendor == "postgresql" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE annotation_record")


def pipeline_possible() -> bool:
    """Whether records_import may write from a second thread: PostgreSQL, and no transaction open
    on this thread (the writer's own connection could not see uncommitted rows, e.g. in a test)."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


class _BatchWriter:
    """Upserts batches on its own thread and DB connection while the caller reads the next one.

    At most one batch waits in the queue, so memory stays at about three batches. Results come
    back in order; the first error stops the writer and is raised to the caller.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.todo: queue.Queue = queue.Queue(maxsize=1)
        self.done: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="preflab-import-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        assume_new = False
        try:
            while True:
                item = self.todo.get()
                if item is None:
                    return
                rows, rejected = item
                counts = (records_batch_upsert(dataset=self.dataset, rows=rows, assume_new=assume_new)
                          if rows else UpsertCounts())
                assume_new = bool(rows) and counts.updated == 0
                self.done.put((counts, len(rows), rejected))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self.error = exc
            while True:  # keep draining so the caller never blocks on a full queue
                if self.todo.get() is None:
                    return
        finally:
            from django.db import connection as thread_connection

            thread_connection.close()

    def _finished(self) -> list:
        out = []
        while True:
            try:
                out.append(self.done.get_nowait())
            except queue.Empty:
                return out

    def submit(self, rows: list[dict], rejected: list) -> list:
        if self.error is not None:
            raise self.error
        self.todo.put((rows, rejected))
        return self._finished()

    def close(self) -> list:
        self.todo.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self._finished()


def _has_nul(value: Any) -> bool:
    """PostgreSQL's jsonb cannot hold \\u0000: such a record is rejected, not left to fail its batch."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _raw_text(raw: Any) -> str:
    try:
        return orjson.dumps(raw)[:RAW_KEEP].decode("utf-8", "replace")
    except TypeError:
        return str(raw)[:RAW_KEEP]


def import_file_save(*, dataset: Dataset, uploaded_file) -> str:
    """Store an uploaded file under MEDIA_ROOT/imports/ (chunk by chunk); returns its path.

    The path is what an "import" job takes as input_file.
    """
    directory = Path(settings.MEDIA_ROOT) / "imports"
    directory.mkdir(parents=True, exist_ok=True)
    original = os.path.basename(getattr(uploaded_file, "name", "") or "upload")
    suffix = "".join(c for c in Path(original).suffix.lower() if c.isalnum() or c == ".")[:10]
    path = directory / f"dataset{dataset.pk}-{uuid.uuid4().hex}{suffix}"
    with open(path, "wb") as out:
        if hasattr(uploaded_file, "chunks"):
            for chunk in uploaded_file.chunks():
                out.write(chunk)
        else:
            while chunk := uploaded_file.read(READ_CHUNK):
                out.write(chunk)
    return str(path)


# --- existing preference pairs -----------------------------------------------------------------

PAIR_FIELDS = ("prompt", *response_field_names(2))
PAIR_KEYS = {"prompt", "chosen", "rejected", "system", "id", "external_id", "metadata"}


def chosen_position(*, external_id: str, seed: int | str) -> str:
    """Where the original chosen answer goes: stable for a given (external_id, seed)."""
    digest = hashlib.sha256(f"{seed}\x1f{external_id}".encode()).digest()
    return "response-1" if digest[0] & 1 == 0 else "response-2"


def _message_text(value: Any, role: str, where: str) -> tuple[str, str | None]:
    """A pair side may be a string or a message list (TRL conversational): take the text of `role`."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        system = next((m.get("content") for m in value if m.get("role") == "system"), None)
        texts = [m.get("content") for m in value if m.get("role") == role]
        if texts and isinstance(texts[-1], str):
            return texts[-1], system if isinstance(system, str) else None
    raise ValidationError({where: f"must be a string or a list of messages with a {role} message"})


def pair_to_record(raw: Any, *, seed: int | str) -> dict:
    if not isinstance(raw, dict):
        raise ValidationError({"pair": "must be a JSON object {prompt, chosen, rejected}"})
    unknown = set(raw) - PAIR_KEYS
    if unknown:
        raise ValidationError({"pair": f"unknown keys: {', '.join(sorted(unknown))}"})
    for key in ("prompt", "chosen", "rejected"):
        if raw.get(key) in (None, "", []):
            raise ValidationError({key: "required"})
    prompt, system = _message_text(raw["prompt"], "user", "prompt")
    chosen, _ = _message_text(raw["chosen"], "assistant", "chosen")
    rejected, _ = _message_text(raw["rejected"], "assistant", "rejected")
    if raw.get("system") is not None:
        if not isinstance(raw["system"], str):
            raise ValidationError({"system": "must be a string"})
        system = raw["system"]
    extra = raw.get("metadata") or {}
    if not isinstance(extra, dict):
        raise ValidationError({"metadata": "must be an object"})
    external_id = raw.get("id", raw.get("external_id"))
    if external_id in (None, ""):
        external_id = "pair-" + hashlib.sha1(orjson.dumps([system, prompt, chosen, rejected])).hexdigest()
    elif isinstance(external_id, bool) or not isinstance(external_id, (str, int)):
        raise ValidationError({"id": "must be a string or an integer"})
    external_id = str(external_id)
    where = chosen_position(external_id=external_id, seed=seed)
    other = "response-2" if where == "response-1" else "response-1"
    metadata = {**extra, "original_chosen": where, "source": "import_pairs"}
    if system is not None:
        metadata["system"] = system
    return {"external_id": external_id, "fields": {"prompt": prompt, where: chosen, other: rejected},
            "metadata": metadata}


def pairs_dataset_check(dataset: Dataset) -> None:
    names = set(dataset.fields.values_list("name", flat=True))
    missing = [f for f in PAIR_FIELDS if f not in names]
    if missing:
        raise ValidationError({"dataset": f"importing pairs needs the fields prompt, response-1 and response-2; "
                                          f"this dataset lacks {', '.join(missing)}"})


def pairs_import(*, dataset: Dataset, stream, seed: int | str = 0, batch_size: int | None = None,
                 on_progress: ProgressFn | None = None, pipeline: bool = False) -> ImportReport:
    """Import JSONL of {prompt, chosen, rejected} (+ optional system, id, metadata) as pairwise records.

    Each record's two answers are shuffled into response-1/response-2 by a hash of its
    external_id and `seed` (stable: re-importing puts them in the same place), and
    metadata.original_chosen keeps where the original chosen answer went, so a judge or an
    annotator can re-check the pair blind.
    """
    pairs_dataset_check(dataset)
    max_bytes = settings.PREFLAB_MAX_RECORD_BYTES

    def items():
        for line_no, raw, size in read_ndjson(stream, max_bytes=max_bytes):
            if isinstance(raw, LineError):
                yield line_no, raw, size
                continue
            try:
                yield line_no, pair_to_record(raw, seed=seed), None
            except ValidationError as exc:
                yield line_no, LineError(validation_message(exc), _raw_text(raw)), size

    return records_import(dataset=dataset, stream=None, fmt="ndjson", batch_size=batch_size,
                          on_progress=on_progress, items=items(), pipeline=pipeline)


@transaction.atomic
def pairs_dataset_create(*, workspace: Workspace, name: str, created_by=None, guidelines: str = "",
                         min_submitted: int = 1, allow_ties: bool = False) -> Dataset:
    """A ready pairwise dataset: prompt (text), response-1/response-2 (markdown), ranking `ranking`."""
    fields, questions = pairwise_dataset_spec(responses=2, prompt_kind="text",
                                              ranking_title="Which response is better?")
    return dataset_create(workspace=workspace, name=name, created_by=created_by, guidelines=guidelines,
                          min_submitted=min_submitted, allow_ties=allow_ties, fields=fields, questions=questions)
