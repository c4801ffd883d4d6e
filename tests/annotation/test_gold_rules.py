"""The gold rules by hand: which answers match a known answer, accuracy per annotator, the pause
policy, and the completion rule for gold records."""
import pytest
from django.core.exceptions import ValidationError

from annotation.models import AnnotatorStanding, Question, Record, Response
from annotation.quality.gold import (
    gold_answer_matches,
    gold_scores,
    question_answer_matches,
    records_gold_clear,
    records_gold_set,
)
from annotation.quality.standing import annotator_paused, excluded_user_ids, gold_policy_apply, standing_set
from annotation.services import records_completion_refresh
from tests.factories import MembershipFactory, RecordFactory, ResponseFactory, UserFactory

R1, R2 = "response-1", "response-2"


def ranking(*order):
    return [{"value": name, "rank": k} for k, name in enumerate(order, start=1)]


def test_a_ranking_matches_when_the_same_response_is_best():
    q = Question(name="ranking", kind=Question.Kind.RANKING, options={"values": [R1, R2, "response-3"]})
    gold = ranking(R1, R2, "response-3")
    assert question_answer_matches(q, gold, ranking(R1, "response-3", R2))        # best agrees, rest not scored
    assert not question_answer_matches(q, gold, ranking(R2, R1, "response-3"))
    tie = [{"value": R1, "rank": 1}, {"value": R2, "rank": 1}, {"value": "response-3", "rank": 2}]
    assert question_answer_matches(q, tie, tie)
    assert not question_answer_matches(q, tie, gold)                                # gold's tie for best is required


def test_a_preference_matches_on_the_side_not_the_strength():
    q = Question(name="pref", kind=Question.Kind.PREFERENCE,
                 options={"compares": [R1, R2], "both_bad": True, "scale": [{"label": "much", "value": 2},
                                                                             {"label": "slightly", "value": 1}]})
    assert question_answer_matches(q, {"preferred": R1, "strength": 2}, {"preferred": R1, "strength": 1})
    assert not question_answer_matches(q, {"preferred": R1, "strength": 2}, {"preferred": R2, "strength": 2})
    assert question_answer_matches(q, {"both_bad": True}, {"both_bad": True})
    assert not question_answer_matches(q, {"both_bad": True}, {"preferred": R1, "strength": 1})


def test_every_scored_question_of_the_gold_answer_must_match():
    questions = [Question(name="ranking", kind=Question.Kind.RANKING, options={"values": [R1, R2]}),
                 Question(name="flags", kind=Question.Kind.LABEL, options={"values": ["harmful", "refusal"], "multiple": True}),
                 Question(name="comment", kind=Question.Kind.TEXT)]
    gold = {"ranking": ranking(R2, R1), "flags": ["refusal"], "comment": "not scored"}
    assert gold_answer_matches(questions=questions, gold_answer=gold,
                               values={"ranking": ranking(R2, R1), "flags": ["refusal"], "comment": "x"}) is True
    assert gold_answer_matches(questions=questions, gold_answer=gold, values={"ranking": ranking(R2, R1)}) is False
    assert gold_answer_matches(questions=questions, gold_answer=None, values={}) is None


@pytest.mark.django_db
def test_marking_gold_validates_completes_and_clearing_restores(dataset):
    dataset.min_submitted = 2
    dataset.save()
    a, b = RecordFactory(dataset=dataset, submitted_count=2), RecordFactory(dataset=dataset, submitted_count=1)
    with pytest.raises(ValidationError) as err:
        records_gold_set(dataset=dataset, answers={a.pk: {"ranking": ranking(R1)}})  # a ranking must rank every field
    assert "gold_answer.ranking" in str(err.value)
    with pytest.raises(ValidationError):
        records_gold_set(dataset=dataset, answers={a.pk: {"nope": 1}})
    assert not Record.objects.filter(is_gold=True).exists()                     # nothing half-written
    assert records_gold_set(dataset=dataset, answers={a.pk: {"ranking": ranking(R1, R2)},
                                                      b.pk: {"ranking": ranking(R2, R1)}}) == 2
    b.refresh_from_db()
    assert b.is_gold and b.completed and b.gold_answer == {"ranking": ranking(R2, R1)}
    records_completion_refresh(dataset=dataset)
    b.refresh_from_db()
    assert b.completed                                                          # gold stays out of the queue
    assert records_gold_clear(dataset=dataset, record_ids=[a.pk, b.pk]) == 2
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.is_gold, a.completed, b.is_gold, b.completed, b.gold_answer) == (False, True, False, False, None)
    b.extra_wanted = 1
    b.submitted_count = 2
    b.save()
    records_completion_refresh(dataset=dataset)
    b.refresh_from_db()
    assert not b.completed                                                      # 2 of 2 + 1 more wanted


@pytest.mark.django_db
def test_scores_and_the_pause_policy(dataset, workspace):
    dataset.gold_pause_accuracy = 0.7
    dataset.gold_pause_min_answers = 4
    dataset.save()
    good, bad = UserFactory(username="good"), UserFactory(username="bad")
    golds = [RecordFactory(dataset=dataset) for _ in range(4)]
    records_gold_set(dataset=dataset, answers={r.pk: {"ranking": ranking(R1, R2)} for r in golds})
    ordinary = RecordFactory(dataset=dataset)
    for i, record in enumerate(golds):
        ResponseFactory(record=record, user=good, values={"ranking": ranking(R1, R2)})
        # bad gets 2 of 4 right
        ResponseFactory(record=record, user=bad, values={"ranking": ranking(R1, R2) if i < 2 else ranking(R2, R1)})
    ResponseFactory(record=ordinary, user=bad, values={"ranking": ranking(R2, R1)})        # not gold: not scored
    ResponseFactory(record=golds[0], user=UserFactory(), values={}, status=Response.Status.DRAFT)
    scores = gold_scores(dataset=dataset)
    assert (scores[good.pk].correct, scores[good.pk].answered) == (4, 4)
    assert (scores[bad.pk].correct, scores[bad.pk].answered, scores[bad.pk].accuracy) == (2, 4, 0.5)
    assert gold_policy_apply(dataset=dataset, user=good) is None
    reason = gold_policy_apply(dataset=dataset, user=bad)
    assert "2 of 4" in reason and "50%" in reason and "70%" in reason
    assert annotator_paused(dataset=dataset, user=bad) == reason
    assert annotator_paused(dataset=dataset, user=good) is None
    standing_set(dataset=dataset, user=bad, paused=False, by=good)
    assert annotator_paused(dataset=dataset, user=bad) is None


@pytest.mark.django_db
def test_excluded_annotators_are_the_excluded_and_optionally_the_removed(dataset, workspace):
    kept, excluded, removed = UserFactory(), UserFactory(), UserFactory()
    for user in (kept, excluded):
        MembershipFactory(user=user, workspace=workspace)
    record = RecordFactory(dataset=dataset)
    for user in (kept, excluded, removed):
        ResponseFactory(record=record, user=user, values={"ranking": ranking(R1, R2)})
    standing_set(dataset=dataset, user=excluded, excluded=True)
    assert excluded_user_ids(dataset=dataset) == {excluded.pk}
    dataset.exclude_removed_annotators = True
    dataset.save()
    assert excluded_user_ids(dataset=dataset) == {excluded.pk, removed.pk}
    standing_set(dataset=dataset, user=excluded, excluded=False)
    assert excluded_user_ids(dataset=dataset) == {removed.pk}
    assert AnnotatorStanding.objects.count() == 1
