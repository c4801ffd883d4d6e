"""Per-annotator quality figures of a dataset and the anchoring comparison (selectors).

`dataset_quality_report` reads a dataset once: one streamed pass over its submitted responses (ordered
by record, one record's answers in memory at a time) beside one streamed pass over the judges'
suggestions of its ranked question, plus a fixed handful of small queries (questions, gold scores,
members, standings, former members' names) and, when asked, the competence model. The number of
queries does not grow with the number of annotators or records.

The rules, as the page and the API state them (RULES):

* gold: correct / answered over the annotator's submitted answers to gold records, scored by
  quality.gold.gold_answer_matches (the pause policy's own figures), with a Wilson 95% interval.
* time: the median of Response.duration over the annotator's submitted responses, gold records
  included (annotators cannot tell them apart, so the time is ordinary work); responses without a
  recorded duration (0) are left out.
* too fast: with the dataset's too_fast_seconds above 0, the share of timed submissions below it,
  and the flag when the annotator's median time is below it (so about half their records or more
  were answered faster than the threshold; one slow outlier does not clear it, one fast one does not
  raise it).
* agreement with the others: on each ordinary (not gold) record the annotator answered together with
  at least one other annotator, each pair of responses (a verdict: first / second / tie) is scored
  against the majority of the OTHER annotators' verdicts on that pair (leave-one-out, the agreement
  package's rule: a tied majority scores 0.5 and is counted as tied). Everyone else counts as
  "others": humans, simulated and imported annotators alike.
* anchoring: ordinary records' submitted responses with suggestion_shown True ("shown") or False
  ("hidden"); None (no suggestion to show, or answered before the experiment) is left out.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations

import orjson
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, Max, Q, Sum, TextField, Value
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import MD5, Cast, Concat
from django.http import Http404
from django.utils import timezone

from ..agreement.majority import leave_one_out_agreement
from ..agreement.rankings import ranks_from_value, unit_labels
from ..agreement.rates import CI_METHOD, Rate, median, rate_with_interval, rounded, wilson_interval
from ..annotate_page import suggestion_pick_key
from ..models import AnnotatorStanding, Dataset, Membership, Question, Record, Response, Suggestion
from ..selectors import compared_fields, dataset_questions, ranked_question_of
from .gold import GoldScore, answer_key, gold_scores, keys_match
from .standing import gold_below_threshold, pause_reason_text

RULES = {
    "gold": "answers to gold records that match the known answer, of those answered (Wilson 95% interval)",
    "median_seconds": ("median time on a record over the annotator's submitted answers, gold records included; "
                       "answers without a recorded time are left out"),
    "too_fast": ("share of timed answers faster than the dataset's too-fast threshold; flagged when the "
                 "annotator's median time is below it"),
    "agreement": ("on ordinary records shared with at least one other annotator: each pair of responses the "
                  "annotator ordered, scored against the majority of the other annotators (humans, simulated and "
                  "imported alike) on that pair; a tied majority scores 0.5 (Wilson 95% interval)"),
    "competence": ("one-coin Dawid-Skene competence fitted by EM on every answer (no gold needed): the probability "
                   "the annotator gives a pair's true verdict; shown once they share a record with someone"),
    "anchoring": ("ordinary records' submitted answers, split by whether the judge's suggestion was shown; answers "
                  "with no suggestion to show are left out. Agreement with the judge: the same best response (or "
                  "preferred side) as the suggestion shown on the record (the best scored, then the latest). "
                  "Median time with a distribution-free order-statistic 95% interval. Agreement between "
                  "annotators: verdicts on each pair of responses by two annotators of the same arm on the same "
                  "record that match. Differences are shown minus hidden, with Newcombe's 95% interval"),
}
KINDS = ("human", "simulated", "imported")


# --- small statistics ------------------------------------------------------------------------------

def _binomial_half_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    if k < 0:
        return 0.0
    log_half_n = -n * math.log(2.0)
    total = 0.0
    for i in range(0, min(k, n) + 1):
        total += math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n)
    return total


def median_interval(values: list[float], *, alpha: float = 0.05) -> tuple[float | None, float | None]:
    """A distribution-free (order-statistic) 95% interval for the median of `values`: [x_(j), x_(n-j+1)]
    of the sorted values with the largest j such that P(Binomial(n, 1/2) <= j - 1) <= alpha / 2, so the
    coverage is at least 95%. Exact binomial up to 2,000 values, the normal approximation above.
    (None, None) when there are too few values for any such interval (fewer than 6)."""
    n = len(values)
    if n == 0:
        return None, None
    if n <= 2000:
        j = 0
        while j + 1 <= n and _binomial_half_cdf(j, n) <= alpha / 2:
            j += 1
    else:
        j = int(math.floor(n / 2 - 1.959964 * math.sqrt(n) / 2))
    if j < 1:
        return None, None
    s = sorted(values)
    return float(s[j - 1]), float(s[n - j])


def difference_interval(p1: float | None, n1: int, p2: float | None, n2: int) -> tuple[float | None, float | None]:
    """Newcombe's hybrid score 95% interval for p1 - p2 (method 10 of Newcombe 1998), from the two
    Wilson intervals; (None, None) when either side has no cases."""
    if p1 is None or p2 is None or n1 <= 0 or n2 <= 0:
        return None, None
    l1, u1 = wilson_interval(p1, n1)
    l2, u2 = wilson_interval(p2, n2)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def _interval_dict(low, high) -> dict:
    return {"ci_low": rounded(low), "ci_high": rounded(high)}


# --- the figures -----------------------------------------------------------------------------------

@dataclass
class AnnotatorQuality:
    user_id: int
    username: str
    kind: str = "human"                  # human | simulated | imported
    member: bool = True                  # False: no longer a member of the workspace
    submitted: int = 0                   # submitted answers, gold records included
    gold_submitted: int = 0              # ... of which to gold records
    durations: list[float] = field(default_factory=list, repr=False)
    too_fast_count: int = 0              # timed answers below the dataset's too_fast_seconds
    too_fast: bool = False
    gold: GoldScore = field(default_factory=GoldScore)
    below_gold_threshold: bool = False   # the pause policy's condition holds (quality.standing)
    agreement: Rate = field(default_factory=Rate)
    shares_records: bool = False         # answered a record someone else answered too
    competence: float | None = None
    competence_verdicts: int = 0
    paused: bool = False
    pause_reason: str = ""
    excluded: bool = False
    _timing: tuple | None = field(default=None, repr=False)   # (timed, median) once compact() dropped the durations

    def compact(self) -> None:
        """Keep only the figures read from the durations (a cached report holds no per-answer list)."""
        self._timing = (len(self.durations), median(self.durations))
        self.durations = []

    @property
    def timed(self) -> int:
        return self._timing[0] if self._timing is not None else len(self.durations)

    @property
    def median_seconds(self) -> float | None:
        return self._timing[1] if self._timing is not None else median(self.durations)

    @property
    def too_fast_share(self) -> float | None:
        return self.too_fast_count / self.timed if self.timed else None

    @property
    def gold_interval(self) -> tuple[float | None, float | None]:
        return wilson_interval(self.gold.accuracy, self.gold.answered)

    @property
    def agreement_interval(self) -> tuple[float | None, float | None]:
        return wilson_interval(self.agreement.value, self.agreement.n)

    @property
    def flagged(self) -> bool:
        return self.too_fast or self.below_gold_threshold or self.paused

    def as_dict(self) -> dict:
        low, high = self.gold_interval
        return {
            "user_id": self.user_id, "username": self.username, "kind": self.kind, "member": self.member,
            "submitted": self.submitted, "gold_submitted": self.gold_submitted, "timed": self.timed,
            "median_seconds": rounded(self.median_seconds, 2), "too_fast_share": rounded(self.too_fast_share),
            "too_fast": self.too_fast,
            "gold": {"correct": self.gold.correct, "answered": self.gold.answered, "accuracy": rounded(self.gold.accuracy),
                     **_interval_dict(low, high), "ci_method": CI_METHOD},
            "below_gold_threshold": self.below_gold_threshold,
            "agreement": rate_with_interval(self.agreement),
            "competence": rounded(self.competence), "competence_verdicts": self.competence_verdicts,
            "paused": self.paused, "pause_reason": self.pause_reason, "excluded": self.excluded,
        }


@dataclass
class AnchoringArm:
    shown: bool
    responses: int = 0
    judge: Rate = field(default_factory=Rate)             # 1 per answer agreeing with the suggestion shown
    durations: list[float] = field(default_factory=list, repr=False)
    inter_annotator: Rate = field(default_factory=Rate)   # 1 per matching verdict of two annotators
    _timing: tuple | None = field(default=None, repr=False)   # (timed, median, interval) once compact() ran

    def compact(self) -> None:
        """Keep only the figures read from the durations (a cached report holds no per-answer list)."""
        self._timing = (len(self.durations), median(self.durations), median_interval(self.durations))
        self.durations = []

    @property
    def timed(self) -> int:
        return self._timing[0] if self._timing is not None else len(self.durations)

    @property
    def median_seconds(self) -> float | None:
        return self._timing[1] if self._timing is not None else median(self.durations)

    @property
    def median_interval(self) -> tuple[float | None, float | None]:
        return self._timing[2] if self._timing is not None else median_interval(self.durations)

    def as_dict(self) -> dict:
        low, high = self.median_interval
        return {"responses": self.responses, "agreement_with_judge": rate_with_interval(self.judge),
                "median_seconds": rounded(self.median_seconds, 2), "timed": self.timed,
                "median_ci_low": rounded(low, 2), "median_ci_high": rounded(high, 2),
                "median_ci_method": "order-statistic-95",
                "inter_annotator_agreement": rate_with_interval(self.inter_annotator)}


@dataclass
class Anchoring:
    shown: AnchoringArm = field(default_factory=lambda: AnchoringArm(shown=True))
    hidden: AnchoringArm = field(default_factory=lambda: AnchoringArm(shown=False))
    left_out: int = 0        # answers with suggestion_shown None

    def rate_difference(self, name: str) -> dict:
        a, b = getattr(self.shown, name), getattr(self.hidden, name)
        if a.value is None or b.value is None:
            return {"value": None, "ci_low": None, "ci_high": None}
        low, high = difference_interval(a.value, a.n, b.value, b.n)
        return {"value": rounded(a.value - b.value), **_interval_dict(low, high)}

    @property
    def judge_difference(self) -> dict:
        return self.rate_difference("judge")

    @property
    def inter_annotator_difference(self) -> dict:
        return self.rate_difference("inter_annotator")

    @property
    def median_seconds_difference(self) -> float | None:
        a, b = self.shown.median_seconds, self.hidden.median_seconds
        return None if a is None or b is None else a - b

    @property
    def has_data(self) -> bool:
        return bool(self.shown.responses or self.hidden.responses)

    def as_dict(self) -> dict:
        return {"shown": self.shown.as_dict(), "hidden": self.hidden.as_dict(), "left_out": self.left_out,
                "difference": {"agreement_with_judge": self.judge_difference,
                               "median_seconds": rounded(self.median_seconds_difference, 2),
                               "inter_annotator_agreement": self.inter_annotator_difference,
                               "ci_method": "newcombe-hybrid-score-95"}}


@dataclass
class QualityReport:
    dataset: Dataset
    question: str | None
    annotators: list[AnnotatorQuality]
    anchoring: Anchoring
    competence_fitted: bool = False
    computed_at: datetime | None = None    # when the figures were computed (a cached report keeps its time)

    def settings(self) -> dict:
        d = self.dataset
        return {"min_submitted": d.min_submitted, "gold_rate": d.gold_rate, "gold_pause_accuracy": d.gold_pause_accuracy,
                "gold_pause_min_answers": d.gold_pause_min_answers, "too_fast_seconds": d.too_fast_seconds,
                "exclude_removed_annotators": d.exclude_removed_annotators, "show_suggestions": d.show_suggestions,
                "suggestion_share": d.suggestion_share}

    def as_dict(self) -> dict:
        return {"dataset": self.dataset.pk, "question": self.question, "settings": self.settings(),
                "annotators": [a.as_dict() for a in self.annotators], "anchoring": self.anchoring.as_dict(),
                "computed_at": self.computed_at.isoformat() if self.computed_at else None, "rules": RULES}


# --- the pass --------------------------------------------------------------------------------------

MEMO_MAX = 50_000   # distinct answer texts decoded once per report (and their records' agreement figures)


def _answer_text_column(question: Question):
    """The question's answer of each response as JSON text. On PostgreSQL just that key of `values`, so
    identical answers have identical texts whatever else the response holds (and only that part travels);
    elsewhere the whole values text (read by `_Answers` with the question's name)."""
    if connection.vendor == "postgresql":
        return Cast(KeyTransform(question.name, "values"), TextField()), True
    return Cast("values", TextField()), False


def _loads(text: str):
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:   # what orjson refuses and json reads (integers beyond 64 bits)
        return json.loads(text)


@dataclass(frozen=True)
class _Answer:
    """One distinct answer text, read once: `key` (quality.gold.answer_key: what the judge's suggestion is
    compared on; None when there is no answer), the pair `labels` (None when it ranks nothing) and `memo_id`
    (an integer naming the text in the per-record memo; None once the memo is full)."""
    has_value: bool
    key: object
    labels: dict | None
    memo_id: int | None


class _Answers:
    """Answer texts decoded once each (a dataset's answers to a ranking question are a handful of texts)."""

    def __init__(self, question: Question, compares, fields: list[str], keyed: bool):
        self.question, self.compares, self.fields, self.keyed = question, compares, fields, keyed
        self.memo: dict[str | None, _Answer] = {}

    def get(self, text: str | None) -> _Answer:
        answer = self.memo.get(text)
        if answer is not None:
            return answer
        if text is None:
            value = None
        elif self.keyed:
            value = _loads(text)
        else:
            value = (_loads(text) or {}).get(self.question.name)
        ranks = ranks_from_value(value, compares=self.compares)
        answer = _Answer(has_value=value is not None,
                         key=answer_key(self.question, value) if value is not None else None,
                         labels=unit_labels(ranks, self.fields) if ranks else None,
                         memo_id=len(self.memo) if len(self.memo) < MEMO_MAX else None)
        if answer.memo_id is not None:
            self.memo[text] = answer
        return answer


class _ShownSuggestions:
    """The suggestion shown per record, read from a stream ordered by record beside the responses' stream
    (both walk the records in increasing id, so neither is held in memory); its answer key read once per
    distinct text."""

    def __init__(self, question: Question | None):
        self._rows: Iterator | None = None
        self.keys: dict[str, object] = {}
        self.question = question
        self._picked = False
        if question is not None:
            rows = Suggestion.objects.filter(question=question)
            if connection.vendor == "postgresql":
                # the pick in SQL (suggestion_pick_key's order: scored first, best score, latest), one row a record
                self._picked = True
                rows = (rows.order_by("record_id", F("score").desc(nulls_last=True), F("updated_at").desc())
                        .distinct("record_id").values_list("record_id", Cast("value", TextField())))
            else:
                rows = rows.values_list("record_id", Cast("value", TextField()), "score", "updated_at").order_by("record_id")
            self._rows = rows.iterator(chunk_size=5000)
        self._ahead = None

    def close(self) -> None:
        """Close the stream now (a server-side cursor on PostgreSQL), not whenever it is collected."""
        if self._rows is not None:
            self._rows.close()
            self._rows = None

    def key_for_record(self, record_id: int):
        """The answer key of the suggestion shown on `record_id` (None: none); call with increasing ids."""
        text = self._for_record(record_id)
        if text is None:
            return None
        key = self.keys.get(text, _MISSING)
        if key is _MISSING:
            value = _loads(text)
            key = answer_key(self.question, value) if value is not None else None
            if len(self.keys) < MEMO_MAX:
                self.keys[text] = key
        return key

    def _for_record(self, record_id: int):
        if self._rows is None:
            return None
        if self._picked:
            while True:
                if self._ahead is None:
                    self._ahead = next(self._rows, None)
                    if self._ahead is None:
                        self._rows = None
                        return None
                rec, value = self._ahead
                if rec > record_id:
                    return None
                self._ahead = None
                if rec == record_id:
                    return value
        best, best_key = None, None
        while True:
            if self._ahead is None:
                self._ahead = next(self._rows, None)
                if self._ahead is None:
                    self._rows = None
                    return best
            rec, value, score, updated_at = self._ahead
            if rec > record_id:
                return best
            if rec == record_id:
                key = suggestion_pick_key(score, updated_at)
                if best_key is None or key > best_key:
                    best, best_key = value, key
            self._ahead = None


_MISSING = object()


class _Pass:
    """One walk over the submitted responses, one record at a time. `full=False` (the dashboard's summary)
    skips the agreement figures (with the others, and between annotators of an arm). `units=True` also
    gathers every answer's pair verdicts as the competence model's units (annotation.agreement.datasets
    reads them the same way: by record, then response id), so the model does not read the answers again."""

    def __init__(self, dataset: Dataset, question: Question | None, *, full: bool = True, units: bool = False):
        self.dataset = dataset
        self.question = question
        self.full = full
        self.compares = compared_fields(question) if question is not None else None
        self.fields = list(self.compares or ((question.options or {}).get("values", []) if question else []))
        self.threshold = dataset.too_fast_seconds or 0.0
        self.rows: dict[int, AnnotatorQuality] = {}
        self.anchoring = Anchoring()
        self.suggestions = _ShownSuggestions(question)
        self.units: dict | None = defaultdict(dict) if units and question is not None else None
        self.answers: _Answers | None = None
        self.text_column = None
        if question is not None:
            self.text_column, keyed = _answer_text_column(question)
            self.answers = _Answers(question, self.compares, self.fields, keyed)
        self.consensus_memo: dict[tuple, list] = {}

    def annotator(self, user_id: int) -> AnnotatorQuality:
        row = self.rows.get(user_id)
        if row is None:
            row = self.rows[user_id] = AnnotatorQuality(user_id=user_id, username="")
        return row

    def run(self) -> None:
        text = self.text_column if self.text_column is not None else Value(None, output_field=TextField())
        order = ("record_id", "id") if self.units is not None else ("record_id",)
        # which records are gold: read apart (a small share, by its partial index) rather than joined to every answer
        gold = set(Record.objects.filter(dataset=self.dataset, is_gold=True).values_list("id", flat=True))
        rows = (Response.objects.filter(dataset=self.dataset, status=Response.Status.SUBMITTED)
                .values_list("record_id", "user_id", text, "duration", "suggestion_shown")
                .order_by(*order))
        current, answers = None, []
        try:
            for row in rows.iterator(chunk_size=5000):
                if row[0] != current:
                    if answers:
                        self.record(current, answers, current in gold)
                    current, answers = row[0], []
                answers.append(row)
            if answers:
                self.record(current, answers, current in gold)
        finally:
            self.suggestions.close()

    def record(self, record_id: int, answers: list, is_gold: bool) -> None:
        threshold = self.threshold
        for _rec, user_id, _text, duration, _shown in answers:
            row = self.rows.get(user_id) or self.annotator(user_id)
            row.submitted += 1
            if is_gold:
                row.gold_submitted += 1
            if duration and duration > 0:
                row.durations.append(duration)
                if threshold > 0 and duration < threshold:
                    row.too_fast_count += 1
        if self.question is None:
            return
        get = self.answers.get
        if self.units is not None:
            units = self.units
            for _rec, user_id, text, _duration, _shown in answers:
                labels = get(text).labels
                if labels:
                    for pair, label in labels.items():
                        units[(record_id, pair)][user_id] = label
        labelled: list[tuple[int, _Answer]] = []   # (user, answer) of the answers that rank something
        if self.full and len(answers) >= 2:
            for _rec, user_id, text, _duration, _shown in answers:
                answer = get(text)
                if answer.labels:
                    labelled.append((user_id, answer))
            if len(labelled) >= 2:
                for user_id, _answer in labelled:
                    self.rows[user_id].shares_records = True
        if is_gold:
            return
        self._consensus(labelled)
        self._anchoring(record_id, answers, labelled)

    def _consensus(self, labelled: list[tuple[int, _Answer]]) -> None:
        """Each annotator's leave-one-out agreement on this record's pairs. It depends only on the answers (in
        their order), so a record answered like an earlier one reuses its figures."""
        if len(labelled) < 2:
            return
        memo_key = tuple(answer.memo_id for _user, answer in labelled)
        per_position = self.consensus_memo.get(memo_key) if None not in memo_key else None
        if per_position is None:
            units: dict[tuple, dict[Hashable, int]] = defaultdict(dict)
            for position, (_user, answer) in enumerate(labelled):
                for pair, label in answer.labels.items():
                    units[pair][position] = label
            rates = leave_one_out_agreement(units).per_annotator
            per_position = [rates.get(position) for position in range(len(labelled))]
            if None not in memo_key and len(self.consensus_memo) < MEMO_MAX:
                self.consensus_memo[memo_key] = per_position
        for (user_id, _answer), rate in zip(labelled, per_position):
            if rate is not None:
                total = self.rows[user_id].agreement
                total.total += rate.total
                total.n += rate.n
                total.tied += rate.tied

    def _anchoring(self, record_id: int, answers: list, labelled: list[tuple[int, _Answer]]) -> None:
        arms: dict[bool, list[dict]] = {True: [], False: []}
        reference = None
        looked = False
        labels_of = {user_id: answer.labels for user_id, answer in labelled}
        get = self.answers.get
        for _rec, user_id, text, duration, shown in answers:
            if shown is None:
                self.anchoring.left_out += 1
                continue
            arm = self.anchoring.shown if shown else self.anchoring.hidden
            arm.responses += 1
            if duration and duration > 0:
                arm.durations.append(duration)
            if not looked:
                reference, looked = self.suggestions.key_for_record(record_id), True
            if reference is not None:
                answer = get(text)
                if answer.has_value:
                    arm.judge.add(1.0 if keys_match(reference, answer.key) else 0.0)
            if user_id in labels_of:
                arms[bool(shown)].append(labels_of[user_id])
        for shown, labelled_arm in arms.items():
            arm = self.anchoring.shown if shown else self.anchoring.hidden
            for x, y in combinations(labelled_arm, 2):
                for pair in x.keys() & y.keys():
                    arm.inter_annotator.add(1.0 if x[pair] == y[pair] else 0.0)


def dataset_quality_report(*, dataset: Dataset, competence: bool = True, agreement: bool = True) -> QualityReport:
    """Every annotator's quality figures and the anchoring comparison of `dataset` (see the module doc
    for the rules). Annotators listed: those with a submitted answer, and anyone with a standing on the
    dataset (a paused annotator stays listed). The dashboard's summary skips the competence model
    (`competence=False`: it reads the answers a second time) and the agreement figures (`agreement=False`:
    agreement with the others and between annotators of each anchoring arm stay empty)."""
    questions = dataset_questions(dataset)
    question = ranked_question_of(questions)
    run = _Pass(dataset, question, full=agreement, units=competence)
    run.run()
    for user_id, paused, excluded, reason in (AnnotatorStanding.objects.filter(dataset=dataset)
                                              .values_list("user_id", "paused", "excluded", "reason")):
        row = run.annotator(user_id)
        row.paused, row.excluded = paused, excluded
        row.pause_reason = pause_reason_text(reason) if paused else ""
    for user_id, score in gold_scores(dataset=dataset).items():
        row = run.annotator(user_id)
        row.gold = score
        row.below_gold_threshold = gold_below_threshold(dataset=dataset, score=score)
    _name(run.rows, dataset)
    for row in run.rows.values():
        row.too_fast = bool(run.threshold > 0 and row.median_seconds is not None and row.median_seconds < run.threshold)
    fitted = False
    if competence and question is not None and any(r.shares_records for r in run.rows.values()):
        from ..agreement.datasets import dataset_competence

        fit = dataset_competence(dataset, question, human_units=dict(run.units))
        fitted = True
        for user_id, row in run.rows.items():
            if row.shares_records and user_id in fit.competence:
                row.competence, row.competence_verdicts = fit.competence[user_id], fit.votes.get(user_id, 0)
    return QualityReport(dataset=dataset, question=question.name if question is not None else None,
                         annotators=sorted(run.rows.values(), key=lambda r: (r.username.lower(), r.user_id)),
                         anchoring=run.anchoring, competence_fitted=fitted, computed_at=timezone.now())


# --- the cache -------------------------------------------------------------------------------------

CACHE_SECONDS = 24 * 3600   # an entry nothing invalidated is dropped after a day


def _quality_inputs(dataset: Dataset) -> tuple:
    """What the figures are computed from, summarised in a few small aggregate queries: any new, changed or
    deleted answer (count and latest change of the dataset's responses), a change of standing, of gold records
    or their answers, of the judges' suggestions, of the workspace's members, of the dataset's settings or
    questions gives another value."""
    responses = Response.objects.filter(dataset=dataset).aggregate(n=Count("id"), latest=Max("updated_at"))
    standings = AnnotatorStanding.objects.filter(dataset=dataset).aggregate(n=Count("id"), latest=Max("updated_at"))
    suggestions = Suggestion.objects.filter(question__dataset=dataset).aggregate(n=Count("id"), latest=Max("updated_at"))
    members = Membership.objects.filter(workspace_id=dataset.workspace_id).aggregate(
        n=Count("id"), users=Sum("user_id"), simulated=Count("id", filter=Q(is_simulated=True)),
        imported=Count("id", filter=Q(is_imported=True)))
    gold = Record.objects.filter(dataset=dataset, is_gold=True)
    if connection.vendor == "postgresql":
        from django.contrib.postgres.aggregates import StringAgg

        gold_state = gold.aggregate(n=Count("id"), digest=MD5(StringAgg(
            Concat(Cast("id", TextField()), Value(":"), Cast("gold_answer", TextField()), output_field=TextField()),
            delimiter=",", order_by="id")))
    else:
        digest = hashlib.md5()
        for record_id, answer in gold.order_by("id").values_list("id", Cast("gold_answer", TextField())).iterator():
            digest.update(f"{record_id}:{answer},".encode())
        gold_state = {"digest": digest.hexdigest()}
    questions = [(q.pk, q.name, q.kind, q.options) for q in dataset_questions(dataset)]
    settings = {**QualityReport(dataset, None, [], Anchoring()).settings(), "allow_ties": dataset.allow_ties}
    return (sorted(responses.items()), sorted(standings.items()), sorted(suggestions.items()), sorted(members.items()),
            sorted(gold_state.items()), questions, sorted(settings.items()))


def _cache_key(dataset: Dataset, inputs: tuple, *, competence: bool, agreement: bool) -> str:
    digest = hashlib.sha256(repr(inputs).encode()).hexdigest()[:32]
    return f"preflab:quality-report:v1:{dataset.pk}:{int(competence)}{int(agreement)}:{digest}"


def dataset_quality_report_cached(*, dataset: Dataset, competence: bool = True, agreement: bool = True) -> QualityReport:
    """dataset_quality_report kept in Django's cache, keyed by the dataset and what its figures are computed
    from (_quality_inputs), so opening the page again is instant and any new answer, standing, gold or setting
    change recomputes it. The report says when its figures were computed (computed_at). A report without the
    competence model or the agreement figures is served from a full one when that is cached."""
    inputs = _quality_inputs(dataset)
    wanted = [(competence, agreement)] + ([(True, True)] if not (competence and agreement) else [])
    for flags in wanted:
        cached = cache.get(_cache_key(dataset, inputs, competence=flags[0], agreement=flags[1]))
        if cached is not None:
            if flags == (True, True) and not competence:   # a full report asked without the competence model
                for row in cached.annotators:
                    row.competence, row.competence_verdicts = None, 0
                cached.competence_fitted = False
            cached.dataset = dataset
            return cached
    report = dataset_quality_report(dataset=dataset, competence=competence, agreement=agreement)
    for row in report.annotators:
        row.compact()
    report.anchoring.shown.compact()
    report.anchoring.hidden.compact()
    report.dataset = None
    cache.set(_cache_key(dataset, inputs, competence=competence, agreement=agreement), report, CACHE_SECONDS)
    report.dataset = dataset
    return report


def _name(rows: dict[int, AnnotatorQuality], dataset: Dataset) -> None:
    """Names and kinds from the workspace's members; former members named from their accounts."""
    members = {user_id: (username, sim, imp) for user_id, username, sim, imp in
               Membership.objects.filter(workspace_id=dataset.workspace_id, user_id__in=list(rows))
               .values_list("user_id", "user__username", "is_simulated", "is_imported")}
    former = [u for u in rows if u not in members]
    names = dict(get_user_model().objects.filter(pk__in=former).values_list("pk", "username")) if former else {}
    for user_id, row in rows.items():
        if user_id in members:
            row.username, simulated, imported = members[user_id]
            row.kind = "simulated" if simulated else ("imported" if imported else "human")
        else:
            row.username, row.member = names.get(user_id, f"user-{user_id}"), False


@dataclass
class QualitySummary:
    annotators: int
    too_fast: list[str]
    below_gold: list[str]
    paused: list[str]
    excluded: list[str]
    anchoring: Anchoring
    computed_at: datetime | None = None


def dataset_quality_summary(*, dataset: Dataset) -> QualitySummary:
    """The dashboard's compact view of dataset_quality_report (no competence model, no agreement figures: it
    shows none; cached as dataset_quality_report_cached caches): who is flagged too fast, below the gold
    threshold, paused or excluded, and the anchoring arms."""
    report = dataset_quality_report_cached(dataset=dataset, competence=False, agreement=False)
    rows = report.annotators
    return QualitySummary(annotators=len(rows), too_fast=[r.username for r in rows if r.too_fast],
                          below_gold=[r.username for r in rows if r.below_gold_threshold],
                          paused=[r.username for r in rows if r.paused],
                          excluded=[r.username for r in rows if r.excluded], anchoring=report.anchoring,
                          computed_at=report.computed_at)


def dataset_annotator(*, dataset: Dataset, user_id) -> object:
    """The account of someone who annotates (or annotated) `dataset`: a member of its workspace or a user
    with a response in it; else Http404 (a standing is only set for them)."""
    from ..access import parse_pk

    pk = parse_pk(user_id)
    user = get_user_model().objects.filter(pk=pk).first()
    if user is None or not (Membership.objects.filter(workspace_id=dataset.workspace_id, user_id=pk).exists()
                            or Response.objects.filter(dataset=dataset, user_id=pk).exists()):
        raise Http404("No such annotator of this dataset.")
    return user
