"""The import of records: each item validated, the valid ones upserted batch by batch (atomic per
batch, keyed on external_id so re-sending updates and never duplicates), every rejected line
reported. `pipeline=True` writes the batches on writer threads (two PostgreSQL connections by default)
while the next one is parsed; they still commit one after the other, in order.
Memory stays at a few batches whatever the input size.
"""
from __future__ import annotations

import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from ..errors import validation_message
from ..models import Dataset, Field
from ..quality.gold_files import gold_answer_of_row, records_gold_mark
from ..selectors import dataset_questions
from ..services import UpsertCounts
from ..text import input_text_check
from ..validation import FieldSpec, field_specs_of, record_validate
from .postgres import records_batch_upsert
from .readers import READ_CHUNK, records_read
from .report import ImportReport, LineError, raw_text

ProgressFn = Callable[[int, int, list[tuple[int, str, str]]], None]


def records_import(*, dataset: Dataset, stream, fmt: str, batch_size: int | None = None,
                   on_progress: ProgressFn | None = None, max_bytes: int | None = None,
                   items: Iterable | None = None, pipeline: bool = False,
                   on_stored: Callable[[list[str]], None] | None = None) -> ImportReport:
    """Import records from a binary stream; returns the counts and every rejected line.

    `fmt`: json | ndjson | csv | parquet. Valid lines are upserted in batches of `batch_size`
    (atomic per batch); rejected lines (malformed JSON, unknown or missing fields, wrong types,
    records over PREFLAB_MAX_RECORD_BYTES) are reported with their line number and never stop
    the import. `on_progress(stored, rejected, rejected_lines)` is called after every batch with
    the numbers of that batch and its rejected (line, reason, raw) items.
    `items` replaces the reader with already decoded (line, raw, size) items (used by pairs_import).
    `pipeline=True` (see pipeline_possible) writes the batches on writer threads (_BatchWriter:
    PREFLAB_IMPORT_WRITERS connections on PostgreSQL, one elsewhere) while the next one is read and
    validated; each batch is still one transaction, committed in order, and on_progress is still
    called on the caller's thread, in order.
    `on_stored(external_ids)` is called on the caller's thread after each batch is written, with
    the external ids it stored (pairs_import writes an Argilla export's responses then).
    An item may carry `gold_answer` (an answer object, or its JSON text in a CSV/Parquet column):
    checked like any other part of the line (a bad one rejects the line), and once the batch is
    stored its record is marked gold with that answer (quality.gold.records_gold_set); the report
    then counts them as `gold`.
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
    # the COPY path only needs the JSON bytes: a batch is kept small
    json_only = connection.vendor == "postgresql"
    questions = dataset_questions(dataset)
    gold_pending: dict[str, dict] = {}  # external id -> gold answer, marked once its batch is stored

    def stored(external_ids: list[str]) -> None:
        if gold_pending:
            answers = {eid: gold_pending.pop(eid) for eid in external_ids if eid in gold_pending}
            marked = records_gold_mark(dataset=dataset, answers=answers)
            if marked:
                report.extra["gold"] = report.extra.get("gold", 0) + marked
        if on_stored is not None:
            on_stored(external_ids)

    batches = _Batches(dataset=dataset, report=report, on_progress=on_progress,
                       writer=_BatchWriter(dataset, writers=None if connection.vendor == "postgresql" else 1)
                       if pipeline else None, on_stored=stored)
    try:
        for line_no, raw, size in items:
            report.total_lines += 1
            if isinstance(raw, LineError):
                batches.reject(line_no, raw.reason, raw.raw)
            else:
                try:
                    gold = (gold_answer_of_row(questions=questions, raw=raw, allow_ties=dataset.allow_ties)
                            if isinstance(raw, dict) else None)
                    row = record_clean(raw, specs, max_bytes=max_bytes, size=size, json_only=json_only)
                except ValidationError as exc:
                    batches.reject(line_no, validation_message(exc), raw_text(raw))
                else:
                    batches.add(row)
                    if gold is not None:
                        gold_pending[row["external_id"]] = gold
                    else:
                        gold_pending.pop(row["external_id"], None)  # the last line of an id wins
            if batches.full(batch_size):
                batches.flush()
        if batches.pending():
            batches.flush()
    finally:
        batches.close()
    _statistics_refresh_after(report.created)
    return report


def record_clean(raw: Any, specs: dict[str, FieldSpec], *, max_bytes: int, size: int | None,
                 json_only: bool = False) -> dict:
    """One item validated (validation.record_validate) and its fields and metadata serialised once,
    as the upsert stores them; ValidationError when it cannot be stored. `json_only`: keep only the
    JSON bytes (the PostgreSQL COPY path needs nothing else)."""
    clean = record_validate(raw, specs, max_bytes=max_bytes, size=size)
    # serialised once here: checked for text PostgreSQL cannot store (annotation.text) and reused by the
    # PostgreSQL COPY. Copied into right-sized objects: orjson's output keeps its over-allocated
    # buffer (~16 KB for a 3 KB record, though sys.getsizeof does not show it), which would multiply
    # a batch's memory by five (the server's peak RSS went from 111 to 207 MB without the copy).
    try:
        clean["fields_json"] = fields_json = bytes(memoryview(orjson.dumps(clean["fields"])))
        clean["metadata_json"] = metadata_json = bytes(memoryview(orjson.dumps(clean["metadata"])))
    except orjson.JSONEncodeError:  # orjson refuses lone surrogates: name the field that holds one
        input_text_check({"external_id": clean["external_id"], "fields": clean["fields"], "metadata": clean["metadata"]})
        raise
    # a NUL can only come out of orjson as the escape \u0000: look for it where there is a backslash at
    # all (a memchr, ~6 times cheaper than searching every text for the escape)
    if (b"\\" in fields_json and b"\\u0000" in fields_json) or (b"\\" in metadata_json and b"\\u0000" in metadata_json) \
            or "\x00" in clean["external_id"]:
        input_text_check({"external_id": clean["external_id"], "fields": clean["fields"], "metadata": clean["metadata"]})
    if json_only:
        del clean["fields"], clean["metadata"]
    return clean


class _Batches:
    """The batch being filled (valid records and rejected lines), written when full, either here or
    by the writer thread; the report and on_progress follow each written batch, in order."""

    def __init__(self, *, dataset: Dataset, report: ImportReport, on_progress: ProgressFn | None,
                 writer: _BatchWriter | None, on_stored: Callable[[list[str]], None] | None = None):
        self.dataset = dataset
        self.on_stored = on_stored
        self.report = report
        self.on_progress = on_progress
        self.writer = writer
        self.rows: list[dict] = []
        self.rejected: list[tuple[int, str, str]] = []
        self.assume_new = False  # True while this import's batches are all new records

    def add(self, row: dict) -> None:
        self.rows.append(row)

    def reject(self, line_no: int, reason: str, raw: str) -> None:
        self.report.reject(line_no, reason)
        self.rejected.append((line_no, reason, raw))

    def full(self, batch_size: int) -> bool:
        return len(self.rows) >= batch_size or len(self.rejected) >= batch_size

    def pending(self) -> bool:
        return bool(self.rows or self.rejected)

    def flush(self) -> None:
        if self.writer is not None:
            for done in self.writer.submit(self.rows, self.rejected):
                self._written(*done)
            self.rows, self.rejected = [], []  # the writer thread holds the old lists
            return
        counts = (records_batch_upsert(dataset=self.dataset, rows=self.rows, assume_new=self.assume_new)
                  if self.rows else UpsertCounts())
        self.assume_new = bool(self.rows) and counts.updated == 0
        self._written(counts, len(self.rows), list(self.rejected), _ids_of(self.rows, self.on_stored))
        self.rows.clear()
        self.rejected.clear()

    def close(self) -> None:
        if self.writer is not None:
            for done in self.writer.close():  # waits for the batch in flight, re-raises its error
                self._written(*done)

    def _written(self, counts: UpsertCounts, n_stored: int, rejected: list, ids: list[str] | None = None) -> None:
        self.report.created += counts.created
        self.report.updated += counts.updated
        if self.on_stored is not None and ids:
            self.on_stored(ids)
        if self.on_progress is not None:
            self.on_progress(n_stored, len(rejected), rejected)


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
    """Upserts batches on `writers` threads, each with its own DB connection, while the caller reads
    the next batch: two PostgreSQL backends load rows at once while this process parses.

    Each batch is still one transaction, and they commit in order: a batch is written while the one
    before it is, then waits for that one to commit before committing itself, and rolls back if it
    failed, so an import stops exactly where the first failed batch is, as with one writer. A batch
    starts once the one before it has begun writing to the database (records_batch_upsert's
    `on_started`) or is done; a batch that shares an external_id with the one before it waits until
    that one is committed (the last line of an id wins, and two uncommitted inserts of one id would
    wait on each other). A batch that waits more than TURN_WAIT seconds for its turn (the batch
    before it may be waiting on a lock of a third transaction that waits on this one) rolls back
    and is written again once the batch before it is done. At most one batch waits in the queue, so
    memory stays at a few batches. Results come back in order; the first error is raised to the caller.
    """

    TURN_WAIT = 5.0

    def __init__(self, dataset: Dataset, writers: int | None = None):
        self.dataset = dataset
        self.todo: queue.Queue = queue.Queue(maxsize=1)
        self.done: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.state = threading.Condition()
        self.started: set[int] = set()  # batches that began writing
        self.finished = -1  # every batch up to this one is committed (or the import failed)
        self.seq = 0
        self.ids: dict[int, frozenset] = {}  # external ids of the batches in flight
        self.threads = [threading.Thread(target=self._run, name=f"preflab-import-writer-{i}", daemon=True)
                        for i in range(max(1, writers or settings.PREFLAB_IMPORT_WRITERS))]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        from django.db import connection as thread_connection

        assume_new = False
        try:
            while (item := self.todo.get()) is not None:
                seq, rows, rejected = item
                assume_new = self._write(seq, rows, rejected, assume_new) if self.error is None else False
                with self.state:
                    self.finished = max(self.finished, seq)
                    self.ids.pop(seq, None)
                    self.state.notify_all()
        finally:
            thread_connection.close()

    def _write(self, seq: int, rows: list[dict], rejected: list, assume_new: bool) -> bool:
        """Write batch `seq`, commit it after batch seq - 1; returns whether it was all new records."""
        with self.state:  # the batch before this one began writing, or is done
            self.state.wait_for(lambda: seq - 1 in self.started or self.finished >= seq - 1)
            if any(not self.ids[seq].isdisjoint(ids) for s, ids in self.ids.items() if s < seq):
                self.state.wait_for(lambda: self.finished >= seq - 1)
        try:
            while self.error is None:
                with transaction.atomic():
                    counts = (records_batch_upsert(dataset=self.dataset, rows=rows, assume_new=assume_new,
                                                   on_started=lambda: self._started(seq))
                              if rows else UpsertCounts())
                    self._started(seq)
                    with self.state:  # once in turn, no batch can fail before this one commits
                        commit = (self.state.wait_for(lambda: self.finished >= seq - 1, timeout=self.TURN_WAIT)
                                  and self.error is None)
                    if not commit:  # the batch before failed, or is stuck: nothing of this one stays
                        transaction.set_rollback(True)
                if commit:  # reported once committed (on_stored reads the records on the caller's connection)
                    self.done.put((counts, len(rows), rejected, [r["external_id"] for r in rows]))
                    return bool(rows) and counts.updated == 0
                self._wait_turn(seq)  # then written again, holding no locks meanwhile
                assume_new = False
            return False
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._wait_turn(seq)  # the batches before this one are stored (or failed first) as with one writer
            with self.state:
                if self.error is None:
                    self.error = exc
            return False

    def _wait_turn(self, seq: int) -> None:
        with self.state:
            self.state.wait_for(lambda: self.finished >= seq - 1)

    def _started(self, seq: int) -> None:
        with self.state:
            if seq not in self.started:
                self.started.add(seq)
                self.started.discard(seq - 2)
                self.state.notify_all()

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
        with self.state:
            self.ids[self.seq] = frozenset(r["external_id"] for r in rows)
        self.todo.put((self.seq, rows, rejected))
        self.seq += 1
        return self._finished()

    def close(self) -> list:
        for _ in self.threads:
            self.todo.put(None)
        for thread in self.threads:
            thread.join()
        if self.error is not None:
            raise self.error
        return self._finished()


def _ids_of(rows: list[dict], on_stored) -> list[str] | None:
    return [r["external_id"] for r in rows] if on_stored is not None else None


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
