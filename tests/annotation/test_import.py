"""Record import: readers, bad lines, upsert, both write paths."""
import io
import json
from datetime import timedelta

import orjson
import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from annotation.imports import (
    ImportFormatError,
    chosen_position,
    pairs_dataset_create,
    pairs_import,
    read_json_array,
    records_batch_upsert,
    records_import,
)
from annotation.models import Field, Record, Response
from annotation.validation import FieldSpec, record_validate
from tests.factories import DatasetFactory, RecordFactory, ResponseFactory

pytestmark = pytest.mark.django_db


def rec(eid, prompt="p", a="a", b="b", **extra):
    return {"external_id": eid, "fields": {"prompt": prompt, "response-1": a, "response-2": b}, **extra}


def ndjson(*lines) -> io.BytesIO:
    out = []
    for line in lines:
        out.append(line if isinstance(line, bytes) else orjson.dumps(line))
    return io.BytesIO(b"\n".join(out) + b"\n")


@override_settings(PREFLAB_MAX_RECORD_BYTES=2_000)
def test_ndjson_good_and_bad_lines():
    ds = DatasetFactory()
    kept = RecordFactory(dataset=ds, external_id="old", fields={"prompt": "x", "response-1": "y", "response-2": "z"})
    stream = ndjson(
        rec("r1"),                                                    # 1 ok
        b'{"external_id": "bad", "fields": {',                        # 2 malformed JSON
        {"external_id": "r3", "fields": {"prompt": "p", "response-1": "a", "response-2": "b", "extra": "x"}},
        {"external_id": "r4", "fields": {"prompt": "p", "response-1": "a"}},            # 4 missing required
        rec("r5", a="x" * 3_000),                                     # 5 oversized
        rec("r6", a=42),                                              # 6 wrong type
        rec("old", prompt="changed", a=["not", "text"]),              # 7 wrong type for a stored record
        {"external_id": "r8", "fields": {"prompt": "p", "response-1": "a", "response-2": "b"}, "colour": 1},
        rec("r9"),                                                    # 9 ok
        rec("r10", b="nul \u0000 inside"),                           # 10 NUL: jsonb cannot hold it
    )
    report = records_import(dataset=ds, stream=stream, fmt="ndjson", batch_size=3)
    assert (report.created, report.updated, report.rejected_count, report.total_lines) == (2, 0, 8, 10)
    by_line = {r["line"]: r["reason"] for r in report.rejected}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8, 10]
    assert "NUL" in by_line[10]
    assert "malformed JSON" in by_line[2]
    assert "unknown fields: extra" in by_line[3]
    assert "fields.response-2: required" in by_line[4]
    assert "over the limit of 2000" in by_line[5]
    assert "fields.response-1: must be a string" in by_line[6]
    assert "unknown keys: colour" in by_line[8]
    assert set(Record.objects.filter(dataset=ds).values_list("external_id", flat=True)) == {"old", "r1", "r9"}
    kept.refresh_from_db()
    assert kept.fields["prompt"] == "x"  # the rejected line 7 changed nothing stored


def test_oversized_line_is_skipped_without_reading_it_whole():
    ds = DatasetFactory()
    huge = orjson.dumps(rec("big", a="y" * 300_000))
    with override_settings(PREFLAB_MAX_RECORD_BYTES=10_000):
        report = records_import(dataset=ds, stream=ndjson(huge, rec("after")), fmt="ndjson")
    assert report.rejected == [{"line": 1, "reason": f"record: record is {len(huge)} bytes, over the limit of 10000"}]
    assert list(Record.objects.filter(dataset=ds).values_list("external_id", flat=True)) == ["after"]


def test_resending_same_external_id_updates_and_keeps_responses():
    ds = DatasetFactory()
    records_import(dataset=ds, stream=ndjson(rec("a"), rec("b")), fmt="ndjson")
    record = Record.objects.get(dataset=ds, external_id="a")
    ResponseFactory(record=record, values={"ranking": [{"value": "response-1", "rank": 1},
                                                       {"value": "response-2", "rank": 2}]})
    report = records_import(dataset=ds, stream=ndjson(rec("a", prompt="new", metadata={"m": 1}), rec("c")),
                            fmt="ndjson")
    assert (report.created, report.updated) == (1, 1)
    assert Record.objects.filter(dataset=ds).count() == 3
    record.refresh_from_db()
    assert record.fields["prompt"] == "new" and record.metadata == {"m": 1}
    assert Response.objects.filter(record=record).count() == 1


def test_duplicate_external_id_within_a_batch_last_wins():
    ds = DatasetFactory()
    report = records_import(dataset=ds, stream=ndjson(rec("a", prompt="one"), rec("a", prompt="two")), fmt="ndjson")
    assert report.created == 1 and report.rejected_count == 0
    assert Record.objects.get(dataset=ds, external_id="a").fields["prompt"] == "two"


def test_json_array_streamed_element_by_element():
    ds = DatasetFactory()
    body = json.dumps([rec("a"), rec("b", a=1), rec("c", prompt="é" * 70_000)], indent=1).encode()
    report = records_import(dataset=ds, stream=io.BytesIO(body), fmt="json")
    assert (report.created, report.rejected) == (2, [{"line": 2, "reason": "fields.response-1: must be a string"}])
    assert Record.objects.get(dataset=ds, external_id="c").fields["prompt"] == "é" * 70_000


def test_json_array_reader_handles_tiny_reads_and_numbers_at_edges():
    class Trickle(io.BytesIO):
        def read(self, n=-1):
            return super().read(min(n, 3) if n and n > 0 else 3)

    items = list(read_json_array(Trickle(b' [ 12345, {"a": [1, 2]}, "x,]" , 7 ] '), max_bytes=1000))
    assert [(line, obj) for line, obj, _ in items] == [(1, 12345), (2, {"a": [1, 2]}), (3, "x,]"), (4, 7)]


@pytest.mark.parametrize("body", [b'{"external_id": "a"}', b"not json", b""])
def test_json_body_that_is_not_an_array_cannot_be_read(body):
    with pytest.raises(ImportFormatError):
        records_import(dataset=DatasetFactory(), stream=io.BytesIO(body), fmt="json")


def test_json_array_cut_in_the_middle_reports_the_element():
    ds = DatasetFactory()
    body = b"[" + orjson.dumps(rec("a")) + b", {\"external_id\": \"b\", "
    report = records_import(dataset=ds, stream=io.BytesIO(body), fmt="json")
    assert report.created == 1 and report.rejected[0]["line"] == 2
    assert "malformed JSON" in report.rejected[0]["reason"]


def test_csv_columns():
    ds = DatasetFactory()
    body = (b"external_id,prompt,response-1,response-2,metadata.model,priority\n"
            b'c1,"Hello, world","multi\nline",b,gpt,2.5\n'
            b"c2,p,a,,m,1\n"
            b"c3,p,a,b,m,high\n"
            b"c4,p,a,b\n")
    report = records_import(dataset=ds, stream=io.BytesIO(body), fmt="csv")
    assert report.created == 1
    by_line = {r["line"]: r["reason"] for r in report.rejected}
    assert "fields.response-2: required" in by_line[4]
    assert "priority" in by_line[5]
    assert "4 values for 6 columns" in by_line[6]
    c1 = Record.objects.get(dataset=ds, external_id="c1")
    assert c1.fields == {"prompt": "Hello, world", "response-1": "multi\nline", "response-2": "b"}
    assert c1.metadata == {"model": "gpt"} and c1.priority == 2.5


def test_parquet_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ds = DatasetFactory()
    Field.objects.filter(dataset=ds, name="prompt").update(kind=Field.Kind.CHAT)
    table = pa.table({"external_id": ["q1", "q2", "q3"],
                      "prompt": ['[{"role": "user", "content": "hi"}]', '[{"role": "user", "content": "yo"}]', "[]"],
                      "response-1": ["a", "a", "a"], "response-2": ["b", None, "b"],
                      "metadata.model": ["m1", "m2", "m3"]})
    path = tmp_path / "r.parquet"
    pq.write_table(table, path, row_group_size=2)
    with open(path, "rb") as f:
        report = records_import(dataset=ds, stream=f, fmt="parquet")
    assert report.created == 1 and [r["line"] for r in report.rejected] == [2, 3]
    q1 = Record.objects.get(dataset=ds, external_id="q1")
    assert q1.fields["prompt"] == [{"role": "user", "content": "hi"}] and q1.metadata == {"model": "m1"}


def test_rejected_list_is_capped_but_every_line_counted(monkeypatch):
    monkeypatch.setattr("annotation.imports.report.MAX_REJECTED_KEPT", 5)
    report = records_import(dataset=DatasetFactory(), stream=ndjson(*[b"{bad"] * 12), fmt="ndjson")
    assert report.rejected_count == 12 and len(report.rejected) == 5
    assert report.as_dict()["rejected_not_listed"] == 7


@pytest.mark.parametrize("fast", [False, True])
def test_both_upsert_paths_agree(fast):
    if fast and connection.vendor != "postgresql":
        pytest.skip("the COPY path is PostgreSQL only")
    ds = DatasetFactory()
    rows = [{"external_id": f"e{i}\tx\\", "fields": {"prompt": f"p{i}\t\\n\"x\"\r\n", "response-1": "a\\", "response-2": "b"},
             "metadata": {"k": i}, "priority": float(i)} for i in range(5)]
    counts = records_batch_upsert(dataset=ds, rows=rows, fast=fast)
    assert (counts.created, counts.updated) == (5, 0)
    rows[0]["fields"]["prompt"] = "changed"
    counts = records_batch_upsert(dataset=ds, rows=rows[:1] + [dict(rows[1], external_id="new")], fast=fast)
    assert (counts.created, counts.updated) == (1, 1)
    got = {r.external_id.split("\t")[0]: r for r in Record.objects.filter(dataset=ds)}
    assert len(got) == 6 and got["e0"].fields["prompt"] == "changed"
    assert got["e3"].external_id == "e3\tx\\"
    assert got["e3"].fields == {"prompt": "p3\t\\n\"x\"\r\n", "response-1": "a\\", "response-2": "b"}
    assert got["e3"].metadata == {"k": 3} and got["e3"].priority == 3.0
    assert got["new"].submitted_count == 0 and got["new"].completed is False


def test_postgres_fast_path_is_used_by_records_import(require_postgres):
    ds = DatasetFactory()
    report = records_import(dataset=ds, stream=ndjson(rec("a"), rec("b"), rec("a", prompt="z")), fmt="ndjson",
                            batch_size=2)
    assert (report.created, report.updated) == (2, 1)
    assert Record.objects.get(dataset=ds, external_id="a").fields["prompt"] == "z"


# --- existing preference pairs -----------------------------------------------------------------

def test_import_pairs_shuffles_and_keeps_original_chosen():
    ds = DatasetFactory()
    lines = [{"id": f"p{i}", "prompt": f"q{i}", "chosen": f"good{i}", "rejected": f"bad{i}"} for i in range(40)]
    lines.append({"prompt": "q", "chosen": "c", "rejected": "r", "system": "You are terse."})
    lines.append({"prompt": "q", "chosen": "c"})
    report = pairs_import(dataset=ds, stream=ndjson(*lines), seed=7)
    assert report.created == 41 and report.rejected == [{"line": 42, "reason": "rejected: required"}]
    positions = set()
    for record in Record.objects.filter(dataset=ds):
        where = record.metadata["original_chosen"]
        other = "response-2" if where == "response-1" else "response-1"
        assert record.fields[where].startswith(("good", "c")) and record.fields[other].startswith(("bad", "r"))
        assert record.metadata["source"] == "import_pairs"
        assert where == chosen_position(external_id=record.external_id, seed=7)
        positions.add(where)
    assert positions == {"response-1", "response-2"}  # really shuffled
    system = Record.objects.get(dataset=ds, fields__prompt="q")
    assert system.metadata["system"] == "You are terse."
    again = pairs_import(dataset=ds, stream=ndjson(*lines), seed=7)
    assert (again.created, again.updated) == (0, 41)  # stable: same places, no duplicates


def test_import_pairs_needs_pairwise_fields(workspace):
    ds = DatasetFactory(responses=3)
    Field.objects.filter(dataset=ds, name="response-2").update(name="answer-b")
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as err:
        pairs_import(dataset=ds, stream=ndjson({"prompt": "q", "chosen": "c", "rejected": "r"}))
    assert "response-2" in str(err.value)
    created = pairs_dataset_create(workspace=workspace, name="pairs")
    assert list(created.fields.values_list("name", flat=True)) == ["prompt", "response-1", "response-2"]
    assert created.questions.get().options == {"values": ["response-1", "response-2"]}
    assert pairs_import(dataset=created, stream=ndjson({"prompt": "q", "chosen": "c", "rejected": "r"})).created == 1


def test_postgres_fast_path_survives_a_concurrent_insert(require_postgres, monkeypatch):
    ds = DatasetFactory()
    records_batch_upsert(dataset=ds, rows=[dict(rec("a"), metadata={}, priority=0.0)])
    # as if another import stored "a" between our lookup and our COPY
    monkeypatch.setattr("annotation.imports.postgres._stored_ids", lambda cursor, dataset, ids: set())
    counts = records_batch_upsert(dataset=ds, rows=[dict(rec("a", prompt="new"), metadata={}, priority=0.0),
                                                    dict(rec("b"), metadata={}, priority=0.0)])
    assert (counts.created, counts.updated) == (1, 1)
    assert Record.objects.get(dataset=ds, external_id="a").fields["prompt"] == "new"
    assert Record.objects.filter(dataset=ds).count() == 2


@pytest.mark.django_db(transaction=True)
def test_pipelined_import_writes_on_a_second_thread_and_reports_in_order():
    ds = DatasetFactory()
    lines = [rec(f"r{i}") if i % 4 else b"{bad" for i in range(1, 21)]
    seen = []
    report = records_import(dataset=ds, stream=ndjson(*lines), fmt="ndjson", batch_size=3, pipeline=True,
                            on_progress=lambda stored, rejected, rows: seen.append((stored, [r[0] for r in rows])))
    assert (report.created, report.rejected_count) == (15, 5)
    assert [r["line"] for r in report.rejected] == [4, 8, 12, 16, 20]
    assert sum(s for s, _ in seen) == 15 and [x for _, rows in seen for x in rows] == [4, 8, 12, 16, 20]
    assert Record.objects.filter(dataset=ds).count() == 15
    again = records_import(dataset=ds, stream=ndjson(*lines), fmt="ndjson", batch_size=3, pipeline=True)
    assert (again.created, again.updated) == (0, 15)


@pytest.mark.django_db(transaction=True)
def test_pipelined_import_raises_the_writer_error(monkeypatch):
    ds = DatasetFactory()
    calls = []

    def failing(*, dataset, rows, **kwargs):
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("database went away")
        from annotation.services import UpsertCounts

        return UpsertCounts(created=len(rows))

    monkeypatch.setattr("annotation.imports.records.records_batch_upsert", failing)
    with pytest.raises(RuntimeError, match="went away"):
        records_import(dataset=ds, stream=ndjson(*[rec(f"r{i}") for i in range(30)]), fmt="ndjson", batch_size=3,
                       pipeline=True)
    assert len(calls) == 2  # nothing written after the failure


def test_stream_over_the_upload_limit_stops_and_keeps_stored_batches():
    from annotation.imports import CountingStream, UploadTooLarge

    ds = DatasetFactory()
    body = ndjson(*[rec(f"r{i}") for i in range(50_000)])
    with pytest.raises(UploadTooLarge):
        records_import(dataset=ds, stream=CountingStream(body, limit=1_000_000), fmt="ndjson", batch_size=1000)
    stored = Record.objects.filter(dataset=ds).count()
    assert 0 < stored < 50_000 and stored % 1000 == 0  # whole batches only


def test_postgres_copy_keeps_unicode_priorities_and_times(require_postgres):
    """New records go to PostgreSQL in COPY's binary format: every value arrives as it was sent."""
    ds = DatasetFactory()
    before = timezone.now()
    rows = [{"external_id": "é-雪-🙂", "fields": {"prompt": "naïve 🙂 \u2028 ü", "response-1": "ä" * 3000, "response-2": "b"},
             "metadata": {"ключ": ["значение", 1.5, None, True]}, "priority": -2.25e10}]
    counts = records_batch_upsert(dataset=ds, rows=rows, fast=True)
    assert (counts.created, counts.updated) == (1, 0)
    got = Record.objects.get(dataset=ds)
    assert got.external_id == "é-雪-🙂" and got.fields == rows[0]["fields"] and got.metadata == rows[0]["metadata"]
    assert got.priority == -2.25e10 and got.extra_wanted == 0 and got.is_gold is False and got.leased_count == 0
    assert before - timedelta(seconds=1) <= got.created_at == got.updated_at <= timezone.now()


def test_record_checks_of_each_field_kind():
    """A chat field takes a list of messages (a plain text is refused), a text field a text; an
    optional field left empty is dropped, a required one is refused."""
    specs = {"prompt": FieldSpec("prompt", "chat", True), "answer": FieldSpec("answer", "text", True),
             "note": FieldSpec("note", "text", False)}
    ok = record_validate({"external_id": "a", "fields": {"prompt": [{"role": "user", "content": "hi"}], "answer": "x",
                                                         "note": ""}}, specs)
    assert ok["fields"] == {"prompt": [{"role": "user", "content": "hi"}], "answer": "x"}
    for fields, reason in (({"prompt": "hi", "answer": "x"}, "a chat is a list"),
                           ({"prompt": [{"role": "user", "content": "hi"}], "answer": 3}, "must be a string"),
                           ({"prompt": [{"role": "user", "content": "hi"}], "answer": ""}, "required"),
                           ({"prompt": [{"role": "robot", "content": "hi"}], "answer": "x"}, "needs a role")):
        with pytest.raises(ValidationError, match=reason):
            record_validate({"fields": fields}, specs)
