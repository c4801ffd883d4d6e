"""Gold records: records with a known answer, served to every annotator at the dataset's gold_rate
(annotation.services.next_record_for) and never counted toward min_submitted or completion. An
answer to a gold record is scored against the known answer by one rule, `gold_answer_matches`.

A gold answer is response values ({question name: value}) for one or more of the dataset's
ranking, preference, rating or label questions; text questions are not scored.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Q

from ..agreement.rankings import pair_vote_from_value, ranks_from_value
from ..models import Dataset, Question, Record, Response
from ..selectors import compared_fields, dataset_questions
from ..validation import question_value_validate

SCORED_KINDS = (Question.Kind.RANKING, Question.Kind.PREFERENCE, Question.Kind.RATING, Question.Kind.LABEL)


def gold_answer_validate(*, questions: list[Question], answer: Any, allow_ties: bool) -> dict:
    """A gold answer checked against the dataset's questions ({question: value}, Argilla's wrapped
    {"q": {"value": v}} read too): ValidationError naming the bad part. At least one scored question
    (ranking, preference, rating, label) must be answered; a ranking must rank every field."""
    if not isinstance(answer, dict) or not answer:
        raise ValidationError({"gold_answer": "an object of question name to the known answer, "
                                              'e.g. {"ranking": ["response-1", "response-2"]}'})
    by_name = {q.name: q for q in questions}
    unknown = set(answer) - set(by_name)
    if unknown:
        raise ValidationError({"gold_answer": f"unknown questions: {', '.join(sorted(unknown))}"})
    out: dict[str, Any] = {}
    for name, value in answer.items():
        if isinstance(value, dict) and set(value) == {"value"}:
            value = value["value"]
        if value is None:
            continue
        try:
            out[name] = question_value_validate(by_name[name], value, allow_ties=allow_ties)
        except ValidationError as exc:
            raise ValidationError({f"gold_answer.{name}": exc.messages}) from None
    if not any(by_name[name].kind in SCORED_KINDS for name in out):
        raise ValidationError({"gold_answer": "answer at least one ranking, preference, rating or label question "
                                              "(text questions are not scored)"})
    return out


def _best(ranks: Mapping[str, Any] | None) -> frozenset[str] | None:
    if not ranks:
        return None
    top = min(ranks.values())
    return frozenset(name for name, rank in ranks.items() if rank == top)


def _label_set(value: Any) -> frozenset:
    return frozenset(map(str, value)) if isinstance(value, list) else frozenset([str(value)])


_UNSCORED = object()   # an answer that holds nothing to score (no ranking, no pair vote)


def answer_key(question: Question, value: Any) -> Any:
    """What an answer to `question` is scored on (two answers match when their keys are equal):
    - ranking: the set of responses ranked best;
    - preference / comparison rating: the preferred response, or "both bad" when it prefers neither;
    - rating: the value; label: the set of labels.
    Readers that compare many answers with one reference (the anchoring figures) compute the reference's
    key once; `question_answer_matches` is the rule."""
    compares = compared_fields(question)
    if question.kind == Question.Kind.PREFERENCE or (question.kind == Question.Kind.RATING and compares):
        vote = pair_vote_from_value(value, compares)
        if vote is None:
            return _UNSCORED
        return (_best(vote.ranks), vote.both_bad if vote.ranks is None else None)
    if question.kind == Question.Kind.RANKING:
        return ranking_key(ranks_from_value(value))
    if question.kind == Question.Kind.LABEL:
        return _label_set(value)
    return value


def ranking_key(ranks: Mapping[str, Any] | None) -> Any:
    """answer_key of a ranking question's answer already read by ranks_from_value."""
    best = _best(ranks)
    return _UNSCORED if best is None else best


def keys_match(reference_key: Any, answer_key_: Any) -> bool:
    """Whether an answer's key (answer_key) matches a reference's (a gold answer, a judge's suggestion)."""
    return reference_key is not _UNSCORED and reference_key == answer_key_


def question_answer_matches(question: Question, gold: Any, answer: Any) -> bool:
    """Whether one answer agrees with the gold answer to one question:
    - ranking: the same response(s) ranked best (a tie for best in gold needs the same tie);
    - preference / comparison rating: the same preferred response (strength not scored), or both
      called bad / a tie when gold says so;
    - rating: the same value; label: the same label(s)."""
    return keys_match(answer_key(question, gold), answer_key(question, answer))


def gold_answer_matches(*, questions: Iterable[Question], gold_answer: Mapping[str, Any] | None,
                        values: Mapping[str, Any] | None) -> bool | None:
    """Whether a response's values agree with a record's gold answer on every scored question the
    gold answer holds (None when there is nothing to score: no gold answer)."""
    if not gold_answer:
        return None
    values = values or {}
    by_name = {q.name: q for q in questions}
    scored = [name for name in gold_answer if name in by_name and by_name[name].kind in SCORED_KINDS]
    if not scored:
        return None
    return all(name in values and question_answer_matches(by_name[name], gold_answer[name], values[name])
               for name in scored)


# --- writes ------------------------------------------------------------------------------------

def record_completed_q(dataset: Dataset) -> ExpressionWrapper:
    """The one completion rule as an SQL expression: gold records are always complete (they are
    served apart); others once submitted_count reaches min_submitted plus any extra answers wanted."""
    return ExpressionWrapper(Q(is_gold=True) | Q(submitted_count__gte=F("extra_wanted") + dataset.min_submitted),
                             output_field=BooleanField())


def record_completed(*, is_gold: bool, submitted: int, min_submitted: int, extra_wanted: int) -> bool:
    """record_completed_q for one record's values at hand (the submit path computes it in Python)."""
    return bool(is_gold) or submitted >= min_submitted + extra_wanted


@transaction.atomic
def records_gold_set(*, dataset: Dataset, answers: Mapping[int, Any]) -> int:
    """Mark records of `dataset` as gold with their known answers ({record id: answer}), or change
    the answer of gold records. All answers are checked first (ValidationError naming the record
    and the problem; nothing changes); unknown record ids are refused. Returns how many were set.
    Existing responses to them are kept (they stop counting toward completion)."""
    questions = dataset_questions(dataset)
    clean: dict[int, dict] = {}
    for record_id, answer in answers.items():
        try:
            clean[int(record_id)] = gold_answer_validate(questions=questions, answer=answer,
                                                         allow_ties=dataset.allow_ties)
        except ValidationError as exc:
            raise ValidationError({key: [f"record {record_id}: {m}" for m in messages]
                                   for key, messages in exc.message_dict.items()}) from None
    found = set(Record.objects.filter(dataset=dataset, pk__in=list(clean)).values_list("pk", flat=True))
    missing = sorted(set(clean) - found)
    if missing:
        raise ValidationError({"record": f"no such record in this dataset: {', '.join(map(str, missing[:10]))}"})
    # one UPDATE per distinct answer (a pairwise dataset's gold file holds two), not one per record
    by_answer: dict[bytes, tuple[dict, list[int]]] = {}
    for record_id, answer in clean.items():
        by_answer.setdefault(orjson.dumps(answer, option=orjson.OPT_SORT_KEYS), (answer, []))[1].append(record_id)
    for answer, ids in by_answer.values():
        for start in range(0, len(ids), 2000):
            Record.objects.filter(pk__in=ids[start:start + 2000]).update(is_gold=True, gold_answer=answer, completed=True)
    return len(clean)


@transaction.atomic
def records_gold_clear(*, dataset: Dataset, record_ids: Iterable[int]) -> int:
    """Make gold records of `dataset` ordinary again (their answer forgotten, completion by the
    usual rule). Returns how many changed."""
    ids = list(Record.objects.filter(dataset=dataset, pk__in=list(record_ids), is_gold=True).values_list("pk", flat=True))
    Record.objects.filter(pk__in=ids).update(is_gold=False, gold_answer=None)
    Record.objects.filter(pk__in=ids).update(completed=record_completed_q(dataset))
    return len(ids)


# --- reads -------------------------------------------------------------------------------------

@dataclass
class GoldScore:
    correct: int = 0
    answered: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.answered if self.answered else None


def gold_scores(*, dataset: Dataset, user_ids: Iterable[int] | None = None) -> dict[int, GoldScore]:
    """Per annotator: how many gold records they submitted an answer to and how many of those
    agree with the gold answer. One query over the dataset's submitted answers to gold records."""
    questions = dataset_questions(dataset)
    rows = (Response.objects.filter(dataset=dataset, status=Response.Status.SUBMITTED, record__is_gold=True)
            .values_list("user_id", "values", "record__gold_answer"))
    if user_ids is not None:
        rows = rows.filter(user_id__in=list(user_ids))
    scores: dict[int, GoldScore] = {}
    for user_id, values, gold_answer in rows.iterator(chunk_size=2000):
        verdict = gold_answer_matches(questions=questions, gold_answer=gold_answer, values=values)
        if verdict is None:
            continue
        score = scores.setdefault(user_id, GoldScore())
        score.answered += 1
        score.correct += int(verdict)
    return scores
