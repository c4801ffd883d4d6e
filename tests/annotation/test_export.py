"""Triplet export on hand-made annotation sets whose answers are known."""
import csv
import io

import orjson
import pytest
from django.core.exceptions import ValidationError

from annotation.exports import columns_for, csv_chunks, jsonl_chunks, parquet_write, resolve_pairs, triplets_export
from annotation.models import Field, Response
from tests.factories import (
    DatasetFactory,
    QuestionFactory,
    RecordFactory,
    ResponseFactory,
    SuggestionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def ranking(*order, ties=()):
    """ranking("response-2", "response-1") -> best first; ties: groups sharing a rank."""
    out, rank = [], 0
    for item in order:
        rank += 1
        group = item if isinstance(item, tuple) else (item,)
        out.extend({"value": f, "rank": rank} for f in group)
    return out


def answer(record, values, status=Response.Status.SUBMITTED, user=None):
    return ResponseFactory(record=record, user=user or UserFactory(), values={"ranking": values}, status=status)


def export(dataset, **kw):
    return list(triplets_export(dataset=dataset, **kw))


def test_majority_two_against_one_gives_agreement_two_thirds():
    ds = DatasetFactory()
    rec = RecordFactory(dataset=ds)
    answer(rec, ranking("response-2", "response-1"))
    answer(rec, ranking("response-2", "response-1"))
    answer(rec, ranking("response-1", "response-2"))
    [row] = export(ds)
    assert row["prompt"] == rec.fields["prompt"]
    assert row["chosen"] == rec.fields["response-2"] and row["rejected"] == rec.fields["response-1"]
    assert (row["chosen_field"], row["rejected_field"]) == ("response-2", "response-1")
    assert row["annotators"] == 3
    assert row["agreement"] == pytest.approx(2 / 3)
    assert row["vote_margin"] == pytest.approx(1 / 3) and row["tie"] is False
    assert "margin" not in row  # TRL's RewardTrainer would read it: only with trl_margin
    assert row["source"] == "human" and row["record_id"] == rec.pk and row["external_id"] == rec.external_id


def test_vote_tie_left_out_unless_include_ties():
    ds = DatasetFactory()
    rec = RecordFactory(dataset=ds)
    answer(rec, ranking("response-2", "response-1"))
    answer(rec, ranking("response-1", "response-2"))
    clear = RecordFactory(dataset=ds)
    answer(clear, ranking("response-1", "response-2"))
    assert [r["record_id"] for r in export(ds)] == [clear.pk]
    rows = export(ds, include_ties=True)
    assert [r["record_id"] for r in rows] == [rec.pk, clear.pk]
    tie = rows[0]
    assert tie["vote_margin"] == 0 and tie["tie"] is True and tie["chosen_field"] == "response-1" and tie["rejected_field"] == "response-2"


def test_ranked_tie_from_one_annotator_only_with_include_ties():
    ds = DatasetFactory(allow_ties=True)
    rec = RecordFactory(dataset=ds)
    answer(rec, ranking(("response-1", "response-2")))
    assert export(ds) == []
    [row] = export(ds, include_ties=True)
    assert row["vote_margin"] == 0 and row["rank_margin"] == 0 and row["tie"] is True and row["agreement"] == 1.0


def test_discarded_and_draft_responses_never_count():
    ds = DatasetFactory()
    rec = RecordFactory(dataset=ds)
    answer(rec, ranking("response-1", "response-2"))
    answer(rec, ranking("response-2", "response-1"), status=Response.Status.DISCARDED)
    answer(rec, ranking("response-2", "response-1"), status=Response.Status.DRAFT)
    [row] = export(ds)
    assert row["chosen_field"] == "response-1" and row["annotators"] == 1 and row["agreement"] == 1.0
    only_drafts = RecordFactory(dataset=ds)
    answer(only_drafts, ranking("response-2", "response-1"), status=Response.Status.DRAFT)
    answer(only_drafts, ranking("response-2", "response-1"), status=Response.Status.DISCARDED)
    assert [r["record_id"] for r in export(ds)] == [rec.pk]


def test_pairs_modes_on_a_three_response_record():
    ds = DatasetFactory(responses=3)
    rec = RecordFactory(dataset=ds, fields={"prompt": "p", "response-1": "a", "response-2": "b", "response-3": "c"})
    answer(rec, ranking("response-3", "response-1", "response-2"))
    best_worst = export(ds, pairs="best_worst")
    assert [(r["chosen"], r["rejected"]) for r in best_worst] == [("c", "b")]
    all_pairs = export(ds, pairs="all")
    assert sorted((r["chosen"], r["rejected"]) for r in all_pairs) == [("a", "b"), ("c", "a"), ("c", "b")]
    rest = export(ds, pairs="best_vs_rest")
    assert sorted((r["chosen"], r["rejected"]) for r in rest) == [("c", "a"), ("c", "b")]


def test_best_worst_left_out_when_best_is_tied():
    ds = DatasetFactory(responses=3, allow_ties=True)
    rec = RecordFactory(dataset=ds, fields={"prompt": "p", "response-1": "a", "response-2": "b", "response-3": "c"})
    answer(rec, ranking(("response-1", "response-2"), "response-3"))
    assert export(ds, pairs="best_worst") == []
    [row] = export(ds, pairs="best_worst", include_ties=True)
    assert (row["chosen"], row["rejected"]) == ("a", "c") and row["vote_margin"] == 1.0 and row["rank_margin"] == 1.0
    assert sorted((r["chosen"], r["rejected"]) for r in export(ds, pairs="all")) == [("a", "c"), ("b", "c")]


def test_mean_rank_resolution():
    ds = DatasetFactory(responses=3)
    rec = RecordFactory(dataset=ds, fields={"prompt": "p", "response-1": "a", "response-2": "b", "response-3": "c"})
    # means: r1 = (1+2+1)/3 = 4/3, r2 = (2+1+3)/3 = 2, r3 = (3+3+2)/3 = 8/3
    answer(rec, ranking("response-1", "response-2", "response-3"))
    answer(rec, ranking("response-2", "response-1", "response-3"))
    answer(rec, ranking("response-1", "response-3", "response-2"))
    [row] = export(ds, resolve="mean_rank")
    assert (row["chosen_field"], row["rejected_field"]) == ("response-1", "response-3")
    assert row["rank_margin"] == pytest.approx(8 / 3 - 4 / 3)
    assert row["vote_margin"] == pytest.approx(1.0)  # all three put r1 above r3
    assert row["agreement"] == pytest.approx(1.0)  # everyone put r1 above r3
    rows = export(ds, resolve="mean_rank", pairs="all")
    by_pair = {(r["chosen_field"], r["rejected_field"]): r for r in rows}
    assert set(by_pair) == {("response-1", "response-2"), ("response-1", "response-3"), ("response-2", "response-3")}
    assert by_pair[("response-2", "response-3")]["agreement"] == pytest.approx(2 / 3)
    assert by_pair[("response-2", "response-3")]["rank_margin"] == pytest.approx(2 / 3)


def test_majority_and_mean_rank_can_disagree():
    # a beats b in 2 of 3 head-to-head votes, but one annotator put it last: mean ranks tie
    fields = ("a", "b", "c")
    votes = [{"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "c": 3}, {"a": 3, "b": 1, "c": 2}]
    maj = resolve_pairs(fields, votes, resolve="majority", pairs="all", include_ties=False)
    assert {(p.chosen, p.rejected) for p in maj} == {("a", "b"), ("a", "c"), ("b", "c")}
    mean = resolve_pairs(fields, votes, resolve="mean_rank", pairs="all", include_ties=False)
    # means a: 5/3, b: 5/3, c: 8/3 -> a and b tie, so that pair is left out
    assert {(p.chosen, p.rejected) for p in mean} == {("a", "c"), ("b", "c")}


def test_rating_compares_question():
    ds = DatasetFactory()
    ds.questions.all().delete()
    QuestionFactory(dataset=ds, name="better", kind="rating",
                    options={"values": [0, 1, 2], "compares": ["response-1", "response-2"]})
    first, second, tie = (RecordFactory(dataset=ds) for _ in range(3))
    for rec, value in ((first, 1), (second, 2), (tie, 0)):
        ResponseFactory(record=rec, values={"better": value})
    rows = export(ds)
    assert [(r["record_id"], r["chosen_field"]) for r in rows] == [(first.pk, "response-1"), (second.pk, "response-2")]
    assert len(export(ds, include_ties=True)) == 3
    with pytest.raises(ValidationError) as err:
        export(ds, question="nope")
    assert "question" in err.value.message_dict


def suggest(record, value, *, agent="judge", score=None, raw=None):
    return SuggestionFactory(record=record, question=record.dataset.questions.get(name="ranking"),
                             value=value, score=score, agent=agent, raw=raw)


def test_source_suggestions_and_both():
    ds = DatasetFactory()
    judged = RecordFactory(dataset=ds)
    suggest(judged, ranking("response-2", "response-1"), score=0.8,
            raw={"ratings": {"response-1": 2, "response-2": 5}})
    both = RecordFactory(dataset=ds)
    suggest(both, ranking("response-2", "response-1"))
    answer(both, ranking("response-1", "response-2"))
    human_only = RecordFactory(dataset=ds)
    answer(human_only, ranking("response-2", "response-1"))

    rows = export(ds, source="suggestions")
    assert [r["record_id"] for r in rows] == [judged.pk, both.pk]
    assert all(r["source"] == "suggestions" for r in rows)
    assert rows[0]["chosen_field"] == "response-2" and rows[0]["judge_margin"] == pytest.approx(0.8)
    assert rows[0]["ratings"] == {"chosen": 5.0, "rejected": 2.0}
    assert rows[1]["judge_margin"] is None and rows[1]["rank_margin"] == 1 and rows[1]["ratings"] is None
    assert rows[0]["strength_margin"] is None  # suggestions: judges' scores, never in the human column
    assert [r["record_id"] for r in export(ds, source="suggestions", min_margin=0.9)] == [both.pk]

    mixed = {r["record_id"]: r for r in export(ds, source="both")}
    assert mixed[judged.pk]["source"] == "suggestions"
    assert mixed[both.pk]["source"] == "human" and mixed[both.pk]["chosen_field"] == "response-1"
    assert mixed[human_only.pk]["source"] == "human"
    assert "ratings" not in export(ds)[0]


def test_several_agents_vote_like_annotators():
    ds = DatasetFactory()
    rec = RecordFactory(dataset=ds)
    suggest(rec, ranking("response-2", "response-1"), agent="a", score=0.9)
    suggest(rec, ranking("response-2", "response-1"), agent="b", score=0.6)
    suggest(rec, ranking("response-1", "response-2"), agent="c", score=0.3)
    [row] = export(ds, source="suggestions")
    assert row["chosen_field"] == "response-2" and row["annotators"] == 3
    assert row["agreement"] == pytest.approx(2 / 3)
    assert row["judge_margin"] == pytest.approx((0.9 + 0.6 - 0.3) / 3)


def test_conversational_style_with_system_and_chat_fields():
    ds = DatasetFactory()
    rec = RecordFactory(dataset=ds, metadata={"system": "Be brief."})
    answer(rec, ranking("response-1", "response-2"))
    [row] = export(ds, style="conversational")
    assert row["prompt"] == [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": rec.fields["prompt"]}]
    assert row["chosen"] == [{"role": "assistant", "content": rec.fields["response-1"]}]
    assert row["rejected"] == [{"role": "assistant", "content": rec.fields["response-2"]}]

    chat = DatasetFactory()
    Field.objects.filter(dataset=chat).update(kind=Field.Kind.CHAT)
    conv = [{"role": "user", "content": "hi"}]
    rec2 = RecordFactory(dataset=chat, fields={
        "prompt": conv,
        "response-1": conv + [{"role": "assistant", "content": "hello!"}],
        "response-2": conv + [{"role": "assistant", "content": "go away"}]})
    answer(rec2, ranking("response-1", "response-2"))
    [c] = export(chat, style="conversational")
    assert c["prompt"] == conv and c["chosen"] == [{"role": "assistant", "content": "hello!"}]
    [s] = export(chat)
    assert (s["prompt"], s["chosen"], s["rejected"]) == ("hi", "hello!", "go away")


def test_bad_parameters_name_the_parameter():
    ds = DatasetFactory()
    for kw, name in (({"pairs": "some"}, "pairs"), ({"resolve": "vote"}, "resolve"), ({"source": "x"}, "source"),
                     ({"style": "chatml"}, "style"), ({"min_margin": "big"}, "min_margin")):
        with pytest.raises(ValidationError) as err:
            triplets_export(dataset=ds, **kw)
        assert name in err.value.message_dict


def test_export_walks_many_chunks_in_id_order():
    ds = DatasetFactory()
    recs = [RecordFactory(dataset=ds) for _ in range(25)]
    for i, rec in enumerate(recs):
        if i % 5:
            answer(rec, ranking("response-2", "response-1"))
    seen = []
    rows = list(triplets_export(dataset=ds, chunk_size=4, on_progress=seen.append))
    assert [r["record_id"] for r in rows] == [r.pk for i, r in enumerate(recs) if i % 5]
    assert sum(seen) == 25


def test_export_reads_only_its_dataset_between_older_and_newer_ones():
    older, ds, newer = DatasetFactory(), DatasetFactory(), DatasetFactory()
    ours = []
    for i in range(18):  # created in turns: the three datasets' record ids interleave
        for dataset in (older, ds, newer):
            rec = RecordFactory(dataset=dataset)
            if i % 6:  # some records without answers: chunks are read both with and without their texts
                answer(rec, ranking("response-2", "response-1"))
            if dataset is ds:
                ours.append((i, rec))
    rows = list(triplets_export(dataset=ds, chunk_size=4))
    assert [r["record_id"] for r in rows] == [rec.pk for i, rec in ours if i % 6]
    assert {r["chosen"] for r in rows} == {rec.fields["response-2"] for i, rec in ours if i % 6}


def test_a_chunk_deep_into_a_dataset_starts_where_the_last_one_ended(require_postgres):
    """The chunk query starts its index scan at the last record read: one that stepped over the records
    already read would make an export quadratic in the dataset's size."""
    from django.db import connection

    from annotation.exports.reading import _PgTexts, after_params
    from annotation.models import Record

    ds = DatasetFactory()
    Record.objects.bulk_create([Record(dataset=ds, external_id=f"r{i}", fields={"prompt": "p", "response-1": "a",
                                                                               "response-2": "b"}, metadata={})
                                for i in range(20_000)], batch_size=5_000)
    last = Record.objects.filter(dataset=ds).order_by("-id").values_list("id", flat=True)[10]
    texts = _PgTexts(ds.pk, ["prompt", "response-1", "response-2"], False, include_gold=False)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + texts.chunk_sql, [*after_params(ds.pk, last), 5])
        plan = cursor.fetchone()[0]
    plan = (orjson.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    assert plan["Actual Rows"] == 5
    # a few index pages and one heap page; stepping over the 20,000 entries before it reads about 80
    assert plan["Shared Hit Blocks"] + plan["Shared Read Blocks"] < 20


def test_the_first_chunk_starts_at_the_datasets_first_record(require_postgres):
    """The first chunk's index scan starts at the dataset's first record, not at id 0: when the dataset is most
    of the table the planner may walk the primary key, and from id 0 it stepped over every record of the
    datasets before it before the first byte (25,300 pages, 0.25-2.6 s, for a 1M dataset after a 100k one)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    older, ds = DatasetFactory(), DatasetFactory()
    for _ in range(3):
        answer(RecordFactory(dataset=older), ranking("response-2", "response-1"))
    recs = [RecordFactory(dataset=ds) for _ in range(3)]
    for rec in recs:
        answer(rec, ranking("response-2", "response-1"))
    with CaptureQueriesContext(connection) as queries:
        rows = list(triplets_export(dataset=ds))
    assert [r["record_id"] for r in rows] == [rec.pk for rec in recs]
    chunk_sql = [q["sql"] for q in queries.captured_queries if "jsonb_to_record" in q["sql"]]
    assert len(chunk_sql) == 2  # the records, then none after the last
    assert f'r."id" > {recs[0].pk - 1} ' in chunk_sql[0]


def test_the_responses_export_pages_through_its_own_responses_between_older_and_newer_ones():
    from annotation.exports import responses_export

    older, ds, newer = DatasetFactory(), DatasetFactory(), DatasetFactory()
    ours = []
    for _ in range(7):  # created in turns: the three datasets' response ids interleave
        for dataset in (older, ds, newer):
            response = answer(RecordFactory(dataset=dataset), ranking("response-2", "response-1"))
            if dataset is ds:
                ours.append(response.pk)
    assert [r["response_id"] for r in responses_export(dataset=ds, chunk_size=2)] == ours
    assert list(responses_export(dataset=DatasetFactory())) == []


def test_the_responses_export_starts_at_the_datasets_first_response(require_postgres):
    """The responses export's first page is read from the dataset's first response on the (dataset, id) index:
    from id 0 it walked the primary key over every older dataset's response first (0.56 s before the first row
    of a dataset behind one of a million)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotation.exports import responses_export
    from annotation.models import Record

    older, ds = DatasetFactory(), DatasetFactory()
    user = UserFactory()
    records = Record.objects.bulk_create([Record(dataset=older, external_id=f"r{i}", fields={"prompt": "p"},
                                                 metadata={}) for i in range(5_000)])
    Response.objects.bulk_create([Response(record=r, dataset=older, user=user, status=Response.Status.SUBMITTED,
                                           values={"ranking": ranking("response-2", "response-1")}) for r in records])
    ours = [answer(RecordFactory(dataset=ds), ranking("response-2", "response-1")).pk for _ in range(3)]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE annotation_response")
    with CaptureQueriesContext(connection) as queries:
        rows = list(responses_export(dataset=ds))
    assert [r["response_id"] for r in rows] == ours
    page = next(q["sql"] for q in queries.captured_queries if "LIMIT" in q["sql"])
    assert f'"annotation_response"."id" > {ours[0] - 1}' in page
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + page)
        plan = cursor.fetchone()[0]
    plan = (orjson.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    # a few index and heap pages per table joined; stepping over the 5,000 older responses reads over a hundred
    assert plan["Shared Hit Blocks"] + plan["Shared Read Blocks"] < 60, plan


def test_export_freezes_the_old_objects_only_while_it_runs():
    import gc

    ds = DatasetFactory()
    for _ in range(3):
        answer(RecordFactory(dataset=ds), ranking("response-2", "response-1"))
    assert gc.get_freeze_count() == 0
    rows = triplets_export(dataset=ds, chunk_size=2)
    next(rows)
    assert gc.get_freeze_count() > 0  # the objects there before the export: out of the collector's full passes
    assert len(list(rows)) == 2
    assert gc.get_freeze_count() == 0  # all put back at the end
    rows = triplets_export(dataset=ds)
    next(rows)
    rows.close()  # a client that went away
    assert gc.get_freeze_count() == 0


def test_export_passes_over_young_objects_less_often_only_while_it_runs():
    import gc

    from annotation.exports.reading import YOUNG_THRESHOLD

    ds = DatasetFactory()
    for _ in range(3):
        answer(RecordFactory(dataset=ds), ranking("response-2", "response-1"))
    before = gc.get_threshold()
    assert before[0] < YOUNG_THRESHOLD
    first = triplets_export(dataset=ds, chunk_size=2)
    next(first)
    assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
    second = triplets_export(dataset=ds)  # two exports at once in one process
    next(second)
    first.close()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])  # the other one still runs
    assert len(list(second)) == 2
    assert gc.get_threshold() == before  # put back when the last one ends


def _small_export(style="standard", source="human"):
    ds = DatasetFactory()
    for i in range(3):
        rec = RecordFactory(dataset=ds, fields={"prompt": f"p{i}, \"quoted\"\nline", "response-1": f"a{i}",
                                                "response-2": f"b{i}"})
        answer(rec, ranking("response-2", "response-1"))
    return ds, export(ds, style=style, source=source)


def test_csv_output():
    _ds, rows = _small_export(style="conversational")
    data = b"".join(csv_chunks(rows, columns=columns_for("human"))).decode()
    parsed = list(csv.DictReader(io.StringIO(data)))
    assert len(parsed) == 3 and list(parsed[0])[:3] == ["prompt", "chosen", "rejected"]
    assert orjson.loads(parsed[0]["chosen"]) == [{"role": "assistant", "content": "b0"}]
    assert orjson.loads(parsed[2]["prompt"])[0]["content"] == "p2, \"quoted\"\nline"


def test_parquet_output(tmp_path):
    import pyarrow.parquet as pq

    _ds, rows = _small_export(source="both")
    path = tmp_path / "t.parquet"
    assert parquet_write(rows, str(path), style="standard", source="both") == 3
    table = pq.read_table(path)
    assert table.column_names[:3] == ["prompt", "chosen", "rejected"]
    assert table.column("chosen").to_pylist() == ["b0", "b1", "b2"]
    assert table.column("agreement").to_pylist() == [1.0, 1.0, 1.0]


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    return tmp_path / "hf-cache"


@pytest.mark.parametrize("style", ["standard", "conversational"])
def test_jsonl_and_parquet_load_with_datasets(tmp_path, hf_offline, style):
    from datasets import load_dataset

    _ds, rows = _small_export(style=style)
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_bytes(b"".join(jsonl_chunks(rows)))
    parquet = tmp_path / "t.parquet"
    parquet_write(rows, str(parquet), style=style, source="human")
    for kind, path in (("json", jsonl), ("parquet", parquet)):
        ds = load_dataset(kind, data_files=str(path), split="train", cache_dir=str(hf_offline))
        assert {"prompt", "chosen", "rejected"} <= set(ds.column_names)
        assert ds.num_rows == 3
        if style == "standard":
            assert ds[1]["chosen"] == "b1" and ds[1]["rejected"] == "a1"
        else:
            assert ds[1]["chosen"] == [{"role": "assistant", "content": "b1"}]
            assert ds[1]["prompt"][0]["role"] == "user"


@pytest.mark.parametrize("style", ["standard", "conversational"])
def test_dense_and_sparse_stretches_give_the_same_rows(style):
    ds = DatasetFactory()
    recs = [RecordFactory(dataset=ds, metadata={"system": f"s{i}"}) for i in range(30)]
    answered = recs[:20] + recs[27:]  # a dense stretch, a gap, a few at the end
    for rec in answered:
        answer(rec, ranking("response-2", "response-1"))
    rows = list(triplets_export(dataset=ds, chunk_size=4, style=style))
    assert [r["record_id"] for r in rows] == [r.pk for r in answered]
    for row, rec in zip(rows, answered):
        if style == "standard":
            assert (row["prompt"], row["chosen"], row["rejected"]) == (
                rec.fields["prompt"], rec.fields["response-2"], rec.fields["response-1"])
        else:
            assert row["prompt"][0] == {"role": "system", "content": rec.metadata["system"]}
            assert row["chosen"][0]["content"] == rec.fields["response-2"]


@pytest.mark.django_db(transaction=True)
def test_prefetching_export_matches_the_plain_one(require_postgres, monkeypatch):
    ds = DatasetFactory()
    recs = [RecordFactory(dataset=ds) for _ in range(30)]
    for rec in recs[:12] + recs[20:]:
        answer(rec, ranking("response-1", "response-2"))
    from annotation.exports import reading

    assert reading.prefetch_possible()  # no transaction open: the chunks are read on a second thread
    prefetched = list(triplets_export(dataset=ds, chunk_size=4))
    monkeypatch.setattr(reading, "prefetch_possible", lambda: False)
    plain = list(triplets_export(dataset=ds, chunk_size=4))
    assert prefetched == plain and len(plain) == 22


@pytest.mark.django_db(transaction=True)
def test_prefetching_export_raises_the_reader_error(require_postgres, monkeypatch):
    ds = DatasetFactory()
    answer(RecordFactory(dataset=ds), ranking("response-1", "response-2"))
    from annotation.exports import reading

    def broken(value, compares=None):
        raise RuntimeError("cannot read answers")

    monkeypatch.setattr(reading, "ranks_from_value", broken)
    with pytest.raises(RuntimeError, match="cannot read answers"):
        list(triplets_export(dataset=ds))


def test_chunks_shrink_for_large_records(monkeypatch):
    from annotation.exports import reading

    monkeypatch.setattr(reading, "CHUNK_BYTES", 100_000)
    monkeypatch.setattr(reading, "FIRST_CHUNK_RECORDS", 5)
    ds = DatasetFactory()
    for _ in range(60):
        rec = RecordFactory(dataset=ds, fields={"prompt": "p", "response-1": "a" * 1000, "response-2": "b" * 1000})
        answer(rec, ranking("response-1", "response-2"))
    seen = []
    rows = list(triplets_export(dataset=ds, on_progress=seen.append))
    assert len(rows) == 60 and sum(seen) == 60
    assert seen == [5, 49, 6]  # 2,001 bytes of text per record: 100,000 // 2,001 = 49 per chunk


def test_streamed_parquet_is_a_valid_file_in_row_groups(tmp_path):
    import pyarrow.parquet as pq

    from annotation.exports import parquet_chunks

    ds = DatasetFactory()
    for _ in range(25):
        answer(RecordFactory(dataset=ds), ranking("response-2", "response-1"))
    chunks = list(parquet_chunks(export(ds, style="conversational"), style="conversational", source="human",
                                 row_group=10))
    assert len(chunks) >= 3  # the row groups left one by one, before the footer
    path = tmp_path / "s.parquet"
    path.write_bytes(b"".join(chunks))
    f = pq.ParquetFile(path)
    assert f.num_row_groups == 3 and f.metadata.num_rows == 25
    assert f.read().column("chosen").to_pylist()[0][0]["role"] == "assistant"
    empty = b"".join(parquet_chunks([], style="standard", source="human"))
    path.write_bytes(empty)
    assert pq.read_table(path).num_rows == 0


def test_csv_cells_match_the_csv_module():
    rows = [{"prompt": 'a "quoted", multi\nline\r\ntext', "chosen": "plain", "rejected": "é, ünïcode",
             "record_id": 7, "external_id": "x,y", "chosen_field": "response-1", "rejected_field": "response-2",
             "annotators": 3, "agreement": 2 / 3, "vote_margin": 0.1, "rank_margin": 1.0, "strength_margin": None,
             "judge_margin": None, "tie": False, "source": "human", "reviewed": True, "reviewed_by": "rita, \"r\"",
             "ratings": {"chosen": 4.5, "rejected": None}},
            {"prompt": [{"role": "user", "content": 'say "hi"'}], "chosen": "", "rejected": " lead space",
             "record_id": 8, "external_id": "e", "chosen_field": "a", "rejected_field": "b", "annotators": 1,
             "agreement": 1.0, "vote_margin": 0.0, "rank_margin": 0.0, "strength_margin": None, "judge_margin": 0.5,
             "tie": True, "source": "suggestions", "reviewed": False, "reviewed_by": None, "ratings": None}]
    columns = columns_for("both")
    ours = b"".join(csv_chunks(rows, columns=columns)).decode()
    reference = io.StringIO()
    writer = csv.writer(reference)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([orjson.dumps(row[c]).decode() if isinstance(row[c], (list, dict))
                         else ("" if row[c] is None else row[c]) for c in columns])
    assert ours == reference.getvalue()
    assert list(csv.DictReader(io.StringIO(ours)))[0]["prompt"] == rows[0]["prompt"]


def test_csv_numbers_match_the_csv_module_when_they_repeat():
    """Numbers written from a cache of their texts: -0.0 stays -0.0, True stays True beside 1 and 1.0."""
    columns = ("a", "b", "c", "d")
    rows = [{"a": -0.0, "b": 0.0, "c": 1 / 3, "d": True}, {"a": 0.0, "b": -0.0, "c": 1 / 3, "d": 1},
            {"a": 1.0, "b": 1, "c": True, "d": float("nan")}, {"a": 1.0, "b": False, "c": 0, "d": None}]
    ours = b"".join(csv_chunks(rows, columns=columns)).decode()
    reference = io.StringIO()
    writer = csv.writer(reference)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in columns])
    assert ours == reference.getvalue()
    assert ours.splitlines()[1:3] == ["-0.0,0.0,0.3333333333333333,True", "0.0,-0.0,0.3333333333333333,1"]
