"""annotation.bulk: rows_upsert (COPY + INSERT .. ON CONFLICT on PostgreSQL, executemany elsewhere) and IdsIn."""
import pytest

from annotation.bulk import IdsIn, json_text, rows_upsert
from annotation.models import Record, Suggestion
from annotation.services import suggestions_upsert
from tests.factories import RecordFactory

pytestmark = pytest.mark.django_db

AWKWARD = 'tab\there, newline\nthere, backslash \\ and \\n, quote " and \' , é, 🙂, "\\N"'
RANKING = [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]


def _suggestion_row(record, question_id, *, agent, rationale, raw, score):
    from django.utils import timezone

    now = timezone.now()
    return (record.pk, question_id, json_text(RANKING), score, agent, rationale, json_text(raw), now, now)


def test_rows_keep_awkward_text_and_json_and_a_conflict_updates_only_the_named_columns(dataset):
    record = RecordFactory(dataset=dataset)
    question = dataset.questions.get(name="ranking")
    columns = ("record_id", "question_id", "value", "score", "agent", "rationale", "raw", "created_at", "updated_at")
    raw = {"text": AWKWARD, "nested": {"list": [1, 2.5, None, True], "empty": ""}, "3": "a key that was an int"}
    written = rows_upsert(model=Suggestion, columns=columns, conflict=["record_id", "question_id", "agent"],
                          update=["rationale", "raw", "updated_at"],
                          rows=[_suggestion_row(record, question.pk, agent="a", rationale=AWKWARD, raw=raw, score=1.5),
                                _suggestion_row(record, question.pk, agent="b", rationale="", raw=None, score=None)])
    assert written == 2
    a = Suggestion.objects.get(record=record, agent="a")
    assert (a.rationale, a.raw, a.value, a.score) == (AWKWARD, raw, RANKING, 1.5)
    b = Suggestion.objects.get(record=record, agent="b")
    assert (b.raw, b.score) == (None, None)

    # the same key again: rationale and raw replaced, score (not named in update) kept
    again = rows_upsert(model=Suggestion, columns=columns, conflict=["record_id", "question_id", "agent"],
                        update=["rationale", "raw", "updated_at"],
                        rows=[_suggestion_row(record, question.pk, agent="a", rationale="second", raw=[1], score=9.0)])
    assert again == 1
    a.refresh_from_db()
    assert (a.rationale, a.raw, a.score) == ("second", [1], 1.5)
    assert Suggestion.objects.filter(record=record).count() == 2


def test_do_nothing_counts_only_the_rows_it_inserted(dataset):
    record = RecordFactory(dataset=dataset)
    question = dataset.questions.get(name="ranking")
    columns = ("record_id", "question_id", "value", "score", "agent", "rationale", "raw", "created_at", "updated_at")
    first = [_suggestion_row(record, question.pk, agent=f"j{i}", rationale="first", raw=None, score=1.0) for i in range(3)]
    assert rows_upsert(model=Suggestion, columns=columns, conflict=["record_id", "question_id", "agent"], update=None,
                       rows=first) == 3
    second = [_suggestion_row(record, question.pk, agent=f"j{i}", rationale="second", raw=None, score=2.0)
              for i in range(4)]
    assert rows_upsert(model=Suggestion, columns=columns, conflict=["record_id", "question_id", "agent"], update=None,
                       rows=second) == 1
    assert sorted(Suggestion.objects.filter(record=record).values_list("agent", "rationale")) == [
        ("j0", "first"), ("j1", "first"), ("j2", "first"), ("j3", "second")]
    assert rows_upsert(model=Suggestion, columns=columns, conflict=["record_id"], update=None, rows=[]) == 0


def test_ids_in_matches_like_an_in_list_and_ignores_ids_no_bigint_holds(dataset):
    records = [RecordFactory(dataset=dataset) for _ in range(3)]
    ids = [records[0].pk, records[2].pk, 10**30, -(10**30)]
    assert sorted(Record.objects.filter(IdsIn("pk", ids)).values_list("pk", flat=True)) == sorted([records[0].pk,
                                                                                                   records[2].pk])
    assert not Record.objects.filter(IdsIn("pk", [])).exists()
    assert Record.objects.filter(IdsIn("pk", [r.pk for r in records])).update(priority=2.0) == 3


def test_suggestions_upsert_reports_a_record_id_no_database_holds_as_a_bad_item(dataset):
    record = RecordFactory(dataset=dataset)
    counts = suggestions_upsert(dataset=dataset, items=[
        {"record": record.pk, "question": "ranking", "value": RANKING, "agent": "j", "rationale": AWKWARD},
        {"record": 10**30, "question": "ranking", "value": RANKING, "agent": "j"}])
    assert (counts.created, counts.updated) == (1, 0)
    assert counts.errors == [{"index": 1, "errors": {"record": ["no such record in this dataset"]}}]
    assert Suggestion.objects.get(record=record).rationale == AWKWARD
