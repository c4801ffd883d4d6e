"""Review and adjudication: the queue of records that need a reviewer's decision (worst first), and
the decisions themselves (accept one annotator's answer, set one's own verdict, send the record back
for more answers). A Review is kept beside the votes, never in place of them: no Response row is
ever changed here. One review per record; a new decision replaces the old one.

Why a record is in the queue (`review_queue`), each reason with its weight in the record's score
(the queue is ordered by score, highest first, then by record id):

* ``split``: the submitted answers to a question have no majority (two or more answers, the top
  count shared, e.g. 1-1 or 2-2): +1.
* ``low_agreement``: the answers do not all agree: +(1 - agreement), where agreement is the mean,
  over pairs of answers, of the share of response pairs they order the same way (ranking questions,
  annotation.agreement.pairwise.ranking_agreement), or of answers that match (other questions, by
  annotation.quality.gold.question_answer_matches, the rule gold answers are scored by). Over
  several questions the record's agreement is the lowest.
* ``judge``: a judge's suggestion does not match the majority of the submitted answers: +0.5.
* ``gold_miss``: a gold record some answers miss (maybe the gold answer itself is wrong):
  +(share of answers that miss it). Gold records are scored on gold only (no agreement reasons).
* ``flag``: annotators raised a flag: a label question named ``flags`` (FLAGS_QUESTION) answered
  with any label: +0.25 x (1 + share of answers flagged). That question is not a vote and takes no
  part in agreement.
* ``answered_again``: the record was sent back and new answers arrived since: +0.5.

Only the votes exports count are read: submitted answers, less those of annotators excluded on the
dataset (annotation.quality.standing.excluded_user_ids).

Records reviewed (accepted or own verdict) leave the queue; a record sent back returns once a
submitted answer newer than the review arrives.
"""
from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, TextField
from django.db.models.functions import Cast

from ..agreement.majority import rule_majority
from ..agreement.pairwise import ranking_agreement
from ..agreement.rankings import ranks_from_value
from ..annotate_page import preference_summary
from ..models import Dataset, Question, Record, Response, Review, Suggestion
from ..selectors import compared_fields, dataset_questions
from ..text import input_text_check
from ..validation import response_values_validate
from .gold import SCORED_KINDS, answer_key, gold_answer_matches, keys_match, question_answer_matches, record_completed_q
from .standing import excluded_user_ids

FLAGS_QUESTION = "flags"
MAX_NOTE = 5000
MAX_MORE = 10
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MEMO_MAX = 20_000   # verdicts kept per queue read, by the texts of a record's answers and suggestions

WEIGHT_SPLIT = 1.0
WEIGHT_JUDGE = 0.5
WEIGHT_FLAG = 0.25
WEIGHT_ANSWERED_AGAIN = 0.5


# --- writes ------------------------------------------------------------------------------------

def _note_clean(note: Any) -> str:
    if note is None:
        return ""
    if not isinstance(note, str):
        raise ValidationError({"note": "must be a string"})
    input_text_check(note, field="note")
    if len(note) > MAX_NOTE:
        raise ValidationError({"note": f"at most {MAX_NOTE} characters"})
    return note


def _review_put(*, record: Record, reviewer, decision: str, values: dict, note: str,
                accepted_response: Response | None = None) -> Review:
    review, _ = Review.objects.update_or_create(
        record=record, defaults={"dataset_id": record.dataset_id, "reviewer": reviewer, "decision": decision,
                                 "values": values, "accepted_response": accepted_response, "note": note})
    return review


@transaction.atomic
def review_accept(*, record: Record, response: Response | int, reviewer, note: str = "") -> Review:
    """Settle the record with one annotator's submitted answer (its values become the verdict;
    the response itself is not touched). ValidationError on "response" when it is not a
    submitted answer to this record."""
    note = _note_clean(note)
    response_id = response.pk if isinstance(response, Response) else response
    if isinstance(response_id, bool) or not isinstance(response_id, int):
        raise ValidationError({"response": "the id of a submitted answer to this record"})
    chosen = Response.objects.filter(pk=response_id, record=record, status=Response.Status.SUBMITTED).first()
    if chosen is None:
        raise ValidationError({"response": f"{response_id} is not a submitted answer to this record"})
    return _review_put(record=record, reviewer=reviewer, decision=Review.Decision.ACCEPTED,
                       values=dict(chosen.values or {}), accepted_response=chosen, note=note)


@transaction.atomic
def review_set(*, record: Record, values: Any, reviewer, note: str = "") -> Review:
    """Settle the record with the reviewer's own verdict: response values ({question name: value}),
    checked as a submitted answer is (every required question answered; 400 names values.<question>)."""
    note = _note_clean(note)
    dataset = record.dataset
    clean = response_values_validate(questions=dataset_questions(dataset), values=values, status="submitted",
                                     allow_ties=dataset.allow_ties)
    return _review_put(record=record, reviewer=reviewer, decision=Review.Decision.OWN, values=clean, note=note)


@transaction.atomic
def review_send_back(*, record: Record, reviewer, note: str = "", more: Any = 1) -> Review:
    """Ask for `more` answers beyond those the record has (or was to get, if more): it is handed out
    again (Record.extra_wanted raised, completion recomputed by the one completion rule) and leaves
    the queue until a new answer arrives. Gold records are served to everyone and cannot be sent back."""
    note = _note_clean(note)
    if isinstance(more, bool) or not isinstance(more, int) or not 1 <= more <= MAX_MORE:
        raise ValidationError({"more": f"a whole number of answers from 1 to {MAX_MORE}"})
    dataset = record.dataset
    locked = Record.objects.select_for_update().get(pk=record.pk)
    if locked.is_gold:
        raise ValidationError({"decision": "a gold record is served to every annotator: it cannot be sent back "
                                           "(accept an answer or set your verdict)"})
    extra = max(locked.extra_wanted, locked.submitted_count - dataset.min_submitted) + more
    Record.objects.filter(pk=record.pk).update(extra_wanted=min(extra, 32767))
    Record.objects.filter(pk=record.pk).update(completed=record_completed_q(dataset))
    record.extra_wanted, record.completed = Record.objects.filter(pk=record.pk).values_list(
        "extra_wanted", "completed").get()
    return _review_put(record=record, reviewer=reviewer, decision=Review.Decision.SENT_BACK, values={}, note=note)


@transaction.atomic
def review_clear(*, record: Record) -> bool:
    """Forget the record's review (the votes count again in exports). Answers a send-back asked for
    stay wanted. Returns whether there was one."""
    deleted, _ = Review.objects.filter(record=record).delete()
    return bool(deleted)


# --- reads: one record -------------------------------------------------------------------------

def review_of(*, record: Record) -> Review | None:
    return Review.objects.filter(record=record).select_related("reviewer", "accepted_response").first()


def answer_in_words(question: Question, value: Any, titles: Mapping[str, str]) -> Any:
    """An answer as a reviewer reads it, by field title: "Response 1 > Response 2", a preference in
    words ("response-2 much better (2)"); other answers as they are."""
    if question.kind == Question.Kind.PREFERENCE:
        return preference_summary(question, value)
    ranks = ranks_from_value(value) if question.kind == Question.Kind.RANKING else None
    if ranks:
        return " > ".join(" = ".join(sorted(titles.get(n, n) for n, k in ranks.items() if k == rank))
                          for rank in sorted(set(ranks.values())))
    return value


def record_answers(*, record: Record, questions: list[Question], titles: Mapping[str, str]) -> list[dict]:
    """Every annotator's response to the record (submitted first, then by name), each answer in
    words, whether the annotator is excluded from exports (their vote does not count in the queue
    either), and for a gold record whether it matches the gold answer."""
    rows = []
    excluded = excluded_user_ids(dataset=record.dataset)
    order = {Response.Status.SUBMITTED: 0, Response.Status.DRAFT: 1, Response.Status.DISCARDED: 2}
    responses = sorted(Response.objects.filter(record=record).select_related("user"),
                       key=lambda r: (order.get(r.status, 3), r.user.username))
    for r in responses:
        values = r.values or {}
        rows.append({"response": r, "excluded": r.user_id in excluded,
                     "answers": [{"q": q, "value": answer_in_words(q, values.get(q.name), titles)} for q in questions],
                     "gold_match": (gold_answer_matches(questions=questions, gold_answer=record.gold_answer, values=values)
                                    if record.is_gold and r.status == Response.Status.SUBMITTED else None)})
    return rows


# --- reads: the queue --------------------------------------------------------------------------

@dataclass
class Reason:
    code: str
    text: str
    weight: float


@dataclass
class RecordScore:
    """Why one record needs a decision; `score` orders the queue (see the module doc)."""

    reasons: list[Reason] = field(default_factory=list)
    agreement: float | None = None   # the lowest agreement over the record's questions (None: < 2 answers)

    @property
    def score(self) -> float:
        return round(sum(r.weight for r in self.reasons), 6)


def _groups(question: Question, values: list[Any]) -> list[list]:
    """The answers grouped by the gold-matching rule (equal answer_key): [representative, count] per
    distinct answer; an answer with nothing to score matches none, not even another such."""
    groups: dict[Any, list] = {}
    unscored: list[list] = []
    for value in values:
        key = answer_key(question, value)
        if keys_match(key, key):
            groups.setdefault(key, [value, 0])[1] += 1
        else:
            unscored.append([value, 1])
    return [*groups.values(), *unscored]


def _agreement(question: Question, values: list[Any], groups: list[list]) -> float | None:
    n = len(values)
    if n < 2:
        return None
    if question.kind == Question.Kind.RANKING:
        ranks = [ranks_from_value(v) or {} for v in values]
        scores = [s for x, y in itertools.combinations(ranks, 2) if (s := ranking_agreement(x, y)) is not None]
        return sum(scores) / len(scores) if scores else None
    return sum(c * (c - 1) / 2 for _, c in groups) / (n * (n - 1) / 2)


def _best_words(question: Question, value: Any) -> str:
    """An answer's verdict in a few words for a reason's text (the best response(s), the label...)."""
    compares = compared_fields(question)
    ranks = ranks_from_value(value, compares=compares) if (compares or question.kind == Question.Kind.RANKING) else None
    if question.kind == Question.Kind.RANKING or compares:
        if not ranks:
            return "both bad" if isinstance(value, dict) and value.get("both_bad") else "no preference"
        top = min(ranks.values())
        best = sorted(n for n, k in ranks.items() if k == top)
        return "tie" if len(best) > 1 and compares else " = ".join(best)
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def record_review_score(*, questions: list[Question], answers: list[Mapping[str, Any]],
                        suggestions: Iterable[tuple[int, Any, str]] = (), is_gold: bool = False,
                        gold_answer: Mapping[str, Any] | None = None) -> RecordScore:
    """The reasons one record needs a decision, from its submitted answers (values dicts), its
    judges' suggestions ((question id, value, agent)) and its gold answer. Pure: no query."""
    out = RecordScore()
    n = len(answers)
    if n == 0:
        return out
    flags_q = next((q for q in questions if q.name == FLAGS_QUESTION and q.kind == Question.Kind.LABEL), None)
    if flags_q is not None:
        flagged = Counter()
        flaggers = 0
        for a in answers:
            labels = a.get(FLAGS_QUESTION)
            labels = labels if isinstance(labels, list) else ([labels] if labels not in (None, "") else [])
            if labels:
                flaggers += 1
                flagged.update(map(str, labels))
        if flaggers:
            words = ", ".join(f"{label} ({k})" for label, k in sorted(flagged.items()))
            out.reasons.append(Reason("flag", f"flagged by {flaggers} of {n}: {words}",
                                      WEIGHT_FLAG * (1 + flaggers / n)))
    if is_gold:
        verdicts = [gold_answer_matches(questions=questions, gold_answer=gold_answer, values=a) for a in answers]
        scored = [v for v in verdicts if v is not None]
        misses = sum(1 for v in scored if v is False)
        if misses:
            hint = " (is the gold answer right?)" if misses * 2 > len(scored) else ""
            out.reasons.append(Reason("gold_miss", f"{misses} of {len(scored)} answers miss the gold answer{hint}",
                                      misses / len(scored)))
        return out
    by_question: dict[int, list[tuple[Any, str]]] = {}
    for question_id, value, agent in suggestions:
        by_question.setdefault(question_id, []).append((value, agent))
    lowest: float | None = None
    split_words, judge_words = [], []
    for q in questions:
        if q.kind not in SCORED_KINDS or q is flags_q:
            continue
        values = [a[q.name] for a in answers if a.get(q.name) is not None]
        if not values:
            continue
        groups = _groups(q, values)
        agreement = _agreement(q, values, groups)
        if agreement is not None:
            lowest = agreement if lowest is None else min(lowest, agreement)
        majority, tied = rule_majority(Counter({i: c for i, (_, c) in enumerate(groups)}), "preflab")
        if tied and len(values) >= 2:
            sides = sorted(((c, _best_words(q, rep)) for rep, c in groups), key=lambda cw: (-cw[0], cw[1]))
            split_words.append(f"{q.name}: " + " vs ".join(f"{words} ({c})" for c, words in sides))
            continue
        if majority is None:
            continue
        rep = groups[majority][0]
        for value, agent in by_question.get(q.pk, []):
            if not question_answer_matches(q, rep, value):
                judge_words.append(f"{agent or 'judge'} on {q.name}: {_best_words(q, value)}, "
                                   f"the majority {_best_words(q, rep)}")
    out.agreement = lowest
    if split_words:
        out.reasons.append(Reason("split", "split vote, " + "; ".join(split_words), WEIGHT_SPLIT))
    if lowest is not None and lowest < 1:
        out.reasons.append(Reason("low_agreement", f"agreement {lowest:.2f} among {n} answers", 1 - lowest))
    if judge_words:
        out.reasons.append(Reason("judge", "judge disagrees: " + "; ".join(judge_words), WEIGHT_JUDGE))
    return out


@dataclass
class QueueItem:
    record_id: int
    score: float
    reasons: list[Reason]
    answers: int
    agreement: float | None
    sent_back: bool = False
    external_id: str = ""
    is_gold: bool = False


@dataclass
class ReviewQueue:
    items: list[QueueItem]
    total: int          # records in the queue (all pages)
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def page_params(page: Any, page_size: Any) -> tuple[int, int]:
    """?page= and ?page_size= of the queue (ValidationError naming the parameter)."""
    try:
        page = int(page) if page not in (None, "") else 1
    except (TypeError, ValueError):
        raise ValidationError({"page": "a whole number from 1"}) from None
    try:
        page_size = int(page_size) if page_size not in (None, "") else PAGE_SIZE
    except (TypeError, ValueError):
        raise ValidationError({"page_size": f"a whole number from 1 to {MAX_PAGE_SIZE}"}) from None
    if page < 1 or page > 10_000:
        raise ValidationError({"page": "a whole number from 1 to 10000"})
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValidationError({"page_size": f"a whole number from 1 to {MAX_PAGE_SIZE}"})
    return page, page_size


def review_queue(dataset: Dataset, *, page: int = 1, page_size: int = PAGE_SIZE,
                 exclude_record: int | None = None) -> ReviewQueue:
    """The records of `dataset` that need a reviewer's decision, worst first (score, then record
    id), one page of them, each with its reasons (see the module doc).

    How it scales: a fixed number of queries whatever the size (questions, the dataset's reviews,
    the answers that came after a send-back, its gold answers, then two streams ordered by record
    id: the submitted answers and the judges' suggestions, as JSON text, merged in Python; then the
    page's external ids). Memory holds one record's answers at a time, the reviews of the dataset,
    and a heap of the page * page_size worst records. Records whose answers and suggestions read
    the same as another record's (the same texts) reuse its verdict instead of decoding them again,
    so the time is about linear in the submitted answers at a few microseconds each
    (bench/bench_review_queue.py prints it).
    """
    questions = dataset_questions(dataset)
    keep = page * page_size
    reviews = dict(Review.objects.filter(dataset=dataset).values_list("record_id", "decision"))
    sent_back = [rid for rid, decision in reviews.items() if decision == Review.Decision.SENT_BACK]
    again = dict(Response.objects.filter(record_id__in=sent_back, status=Response.Status.SUBMITTED,
                                         updated_at__gt=F("record__review__updated_at"))
                 .values_list("record_id").annotate(n=Count("id")).values_list("record_id", "n")) if sent_back else {}
    gold = dict(Record.objects.filter(dataset=dataset, is_gold=True).values_list("pk", "gold_answer"))
    scored_ids = [q.pk for q in questions if q.kind in SCORED_KINDS and q.name != FLAGS_QUESTION]
    answers = Response.objects.filter(dataset=dataset, status=Response.Status.SUBMITTED)
    excluded = excluded_user_ids(dataset=dataset)   # their votes do not count (as in exports)
    if excluded:
        answers = answers.exclude(user_id__in=excluded)
    answers = answers.order_by("record_id").values_list("record_id", Cast("values", TextField())).iterator(chunk_size=5000)
    # a dataset's questions are its own: filtering on them finds its suggestions without a join
    suggestion_rows = (Suggestion.objects.filter(question_id__in=scored_ids).order_by("record_id")
                       .values_list("record_id", "question_id", Cast("value", TextField()), "agent")
                       .iterator(chunk_size=5000)) if scored_ids else iter(())
    pending = next(suggestion_rows, None)
    heap: list[tuple[float, int, QueueItem]] = []
    memo: dict[tuple, RecordScore] = {}
    total = 0
    for record_id, rows in itertools.groupby(answers, key=lambda row: row[0]):
        texts = tuple(sorted(row[1] for row in rows))
        suggestions = []
        while pending is not None and pending[0] < record_id:
            pending = next(suggestion_rows, None)
        while pending is not None and pending[0] == record_id:
            suggestions.append(pending[1:])
            pending = next(suggestion_rows, None)
        decision = reviews.get(record_id)
        if record_id == exclude_record or (decision is not None and not again.get(record_id)):
            continue
        is_gold = record_id in gold
        key = (texts, tuple(suggestions)) if not is_gold else None
        result = memo.get(key) if key is not None else None
        if result is None:
            result = record_review_score(
                questions=questions, answers=[orjson.loads(t) or {} for t in texts],
                suggestions=[(qid, orjson.loads(v), agent) for qid, v, agent in suggestions],
                is_gold=is_gold, gold_answer=gold.get(record_id))
            if key is not None:
                if len(memo) > MEMO_MAX:
                    memo.clear()
                memo[key] = result
        reasons = result.reasons
        if decision is not None:
            n = again[record_id]
            reasons = [*reasons, Reason("answered_again", f"sent back; {n} new answer{'s' if n != 1 else ''} since",
                                        WEIGHT_ANSWERED_AGAIN)]
        if not reasons:
            continue
        total += 1
        score = round(sum(r.weight for r in reasons), 6)
        entry = (score, -record_id)
        if len(heap) >= keep and entry <= heap[0][:2]:
            continue
        item = QueueItem(record_id=record_id, score=score, reasons=reasons, answers=len(texts),
                         agreement=result.agreement, sent_back=decision is not None, is_gold=is_gold)
        if len(heap) < keep:
            heapq.heappush(heap, (*entry, item))
        else:
            heapq.heapreplace(heap, (*entry, item))
    worst = sorted(heap, key=lambda e: (-e[0], -e[1]))
    items = [e[2] for e in worst[(page - 1) * page_size:keep]]
    ext = dict(Record.objects.filter(pk__in=[i.record_id for i in items]).values_list("pk", "external_id"))
    for item in items:
        item.external_id = ext.get(item.record_id, str(item.record_id))
    return ReviewQueue(items=items, total=total, page=page, page_size=page_size)


NEXT_CACHE_SECONDS = 300
NEXT_CACHE_SIZE = 100


def review_queue_next(dataset: Dataset, *, after: int | None = None) -> int | None:
    """The record a reviewer goes to after a decision: the worst of the queue other than `after`,
    or None when the queue is empty. A navigation aid, so it need not read the whole dataset after
    every decision: the queue's worst NEXT_CACHE_SIZE record ids are kept in the cache for
    NEXT_CACHE_SECONDS and the first one not reviewed since is taken (one small query); the queue is
    read again when the list is used up or has expired. (The queue page always reads it afresh.)"""
    from django.core.cache import cache
    from django.utils import timezone

    key = f"preflab:review-next:{dataset.pk}"
    cached = cache.get(key)
    if cached is not None:
        ids, since = cached
        settled = set(Review.objects.filter(record_id__in=ids, updated_at__gte=since).values_list("record_id", flat=True))
        left = [rid for rid in ids if rid not in settled and rid != after]
        if left:
            return left[0]
    now = timezone.now()
    queue = review_queue(dataset, page=1, page_size=NEXT_CACHE_SIZE)
    ids = [item.record_id for item in queue.items]
    cache.set(key, (ids, now), NEXT_CACHE_SECONDS)
    return next((rid for rid in ids if rid != after), None)
