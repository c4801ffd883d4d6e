"""The pipelined import on PostgreSQL: batches loaded on two connections at once, committed one after the other."""
import io
import threading
import time

import orjson
import pytest

from annotation.imports import records_batch_upsert, records_import
from annotation.imports.records import _BatchWriter
from annotation.models import Record
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def two_writers(settings):
    settings.PREFLAB_IMPORT_WRITERS = 2


def rec(eid, prompt="p"):
    return {"external_id": eid, "fields": {"prompt": prompt, "response-1": "a", "response-2": "b"}}


def ndjson(*lines) -> io.BytesIO:
    return io.BytesIO(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")


def stored(ds) -> dict[str, str]:
    return dict(Record.objects.filter(dataset=ds).values_list("external_id", "fields__prompt"))


def test_two_batches_write_at_once_and_commit_in_order(require_postgres, monkeypatch):
    """Batch 1 starts while batch 0 is still writing; batch 0 is committed first, then batch 1."""
    ds = DatasetFactory()
    both_writing = threading.Barrier(2, timeout=10)
    commits: list[str] = []

    def upsert(*, dataset, rows, **kwargs):
        counts = records_batch_upsert(dataset=dataset, rows=rows, **kwargs)
        if rows[0]["external_id"] in ("r0", "r3"):
            both_writing.wait()  # would time out if the batches were written one after the other
        return counts

    monkeypatch.setattr("annotation.imports.records.records_batch_upsert", upsert)
    report = records_import(dataset=ds, stream=ndjson(*[rec(f"r{i}") for i in range(9)]), fmt="ndjson", batch_size=3,
                            pipeline=True, on_stored=lambda ids: commits.append(ids[0]))
    assert (report.created, report.updated) == (9, 0)
    assert commits == ["r0", "r3", "r6"]
    assert len(stored(ds)) == 9


def test_a_failed_batch_keeps_the_batches_before_it_even_if_it_failed_first(require_postgres, monkeypatch):
    """Batch 1 fails while batch 0 is still writing: batch 0 is stored, nothing after it, and the error is batch 1's."""
    ds = DatasetFactory()
    failed = threading.Event()
    calls = []

    def upsert(*, dataset, rows, **kwargs):
        calls.append(rows[0]["external_id"])
        if rows[0]["external_id"] == "r3":
            failed.set()
            raise RuntimeError("batch 1 failed")
        counts = records_batch_upsert(dataset=dataset, rows=rows, **kwargs)
        if rows[0]["external_id"] == "r0":
            assert failed.wait(10)  # batch 0 commits only after batch 1 has failed
        return counts

    monkeypatch.setattr("annotation.imports.records.records_batch_upsert", upsert)
    with pytest.raises(RuntimeError, match="batch 1 failed"):
        records_import(dataset=ds, stream=ndjson(*[rec(f"r{i}") for i in range(12)]), fmt="ndjson", batch_size=3,
                       pipeline=True)
    assert sorted(stored(ds)) == ["r0", "r1", "r2"]
    assert "r9" not in calls


def test_a_batch_after_a_failed_one_is_rolled_back(require_postgres, monkeypatch):
    """Batch 0 fails after batch 1 has written its rows: batch 1 does not stay."""
    ds = DatasetFactory()
    second_written = threading.Event()

    def upsert(*, dataset, rows, **kwargs):
        if rows[0]["external_id"] == "r0":
            kwargs["on_started"]()
            assert second_written.wait(10)
            raise RuntimeError("batch 0 failed")
        counts = records_batch_upsert(dataset=dataset, rows=rows, **kwargs)
        second_written.set()
        return counts

    monkeypatch.setattr("annotation.imports.records.records_batch_upsert", upsert)
    with pytest.raises(RuntimeError, match="batch 0 failed"):
        records_import(dataset=ds, stream=ndjson(*[rec(f"r{i}") for i in range(6)]), fmt="ndjson", batch_size=3,
                       pipeline=True)
    assert stored(ds) == {}


def test_an_id_in_two_batches_in_flight_keeps_the_last_line(require_postgres):
    ds = DatasetFactory()
    lines = [rec("a", "1"), rec("b", "1"), rec("c", "1"), rec("c", "2"), rec("a", "2"), rec("d", "1"), rec("a", "3")]
    report = records_import(dataset=ds, stream=ndjson(*lines), fmt="ndjson", batch_size=2, pipeline=True)
    assert (report.created, report.updated) == (4, 2)  # a and c each stored again by a later batch
    assert stored(ds) == {"a": "3", "b": "1", "c": "2", "d": "1"}


def test_a_batch_that_waits_too_long_for_its_turn_is_written_again_after_it(require_postgres, monkeypatch):
    """The batch before is stuck (as if waiting on a lock held by a third transaction that waits on this
    batch): this one rolls back, holding no locks, and is written again once the one before is done."""
    ds = DatasetFactory()
    monkeypatch.setattr(_BatchWriter, "TURN_WAIT", 0.2)
    calls = []

    def upsert(*, dataset, rows, **kwargs):
        calls.append(rows[0]["external_id"])
        if rows[0]["external_id"] == "r0":
            kwargs["on_started"]()
            time.sleep(1.0)  # batch 1 gives up waiting meanwhile
            assert Record.objects.filter(dataset=dataset).count() == 0  # and it left nothing behind
        return records_batch_upsert(dataset=dataset, rows=rows, **kwargs)

    monkeypatch.setattr("annotation.imports.records.records_batch_upsert", upsert)
    report = records_import(dataset=ds, stream=ndjson(*[rec(f"r{i}") for i in range(4)]), fmt="ndjson", batch_size=2,
                            pipeline=True)
    assert (report.created, report.updated) == (4, 0)
    assert calls.count("r2") == 2 and len(stored(ds)) == 4


def test_a_batch_is_reported_once_committed(require_postgres):
    """on_stored (gold answers, an Argilla export's responses) reads the batch's records on the caller's connection."""
    ds = DatasetFactory()
    visible = []
    report = records_import(dataset=ds, stream=ndjson(*[rec(f"r{i}") for i in range(60)]), fmt="ndjson", batch_size=1,
                            pipeline=True,
                            on_stored=lambda ids: visible.append(Record.objects.filter(dataset=ds, external_id__in=ids).count()))
    assert report.created == 60
    assert visible == [1] * 60
