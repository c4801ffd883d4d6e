"""Simulated annotators (AlpacaFarm's simulated preference pool).

A simulated annotator is a judge (judging.Judge: endpoint + method + template + params) plus a
label-flip probability p and a seed, acting as a flagged user `sim-<name>` (Membership.is_simulated).
It answers through the SAME path as a person:

    record = annotation.services.next_record_for(user, dataset)       # distribution, leases, overlap
    ... the judge decides (judges.calls_for -> generation.llm.chat_many -> parsers -> scoring) ...
    annotation.services.response_upsert(user=..., record=..., values=..., status="submitted",
                                        display_order=display_order_for(...))

so distribution, agreement, exports and the dashboard treat its answers like anyone's.

Noise (AlpacaFarm's form). With probability q = min(1, 2p) the judge's answer is replaced by a
uniformly random one: for a pair, a fair coin picks the winner; for N > 2 responses, a uniformly
random permutation (no ties). For two options the two forms are the same thing: the random winner
differs from the judge's with probability 1/2, so the answer is flipped with probability q/2 = p
(for 0 <= p <= 0.5). For p >= 0.5 the annotator is fully random (q = 1): this is what "p = 1 is
random" means here — an annotator that always flips would be adversarial, not noisy, and AlpacaFarm
does not model that. A judge tie (equal ratings, an inconsistent pairwise verdict) is kept as a
tie when the dataset allows ties, and otherwise broken at random, as a person forced to choose would.

Reproducible: the random draws of an annotator for a record come from random.Random seeded with
(annotator seed, annotator name, record external_id), independent of run order, worker or process.

A judge output that stays unreadable after judge.max_parse_retries re-asks (a refusal, a broken
format) is kept in SimulatedAnswer.error with the raw outputs and the record is *discarded* by that
annotator (status "discarded", as a person who cannot answer does) so the campaign moves on;
discarded responses never count in agreement or exports. A failed LLM call (endpoint down,
timeouts, after the client's own retries) is not the record's fault: no answer is written, the
annotator stops for this run (`SimulationResult.interrupted`) with the record still leased to it,
and the next run (or the job's retry) starts with that record.
"""
from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F

from annotation.errors import AnnotatorPaused
from annotation.jobs import ChunkContext, job_create, job_handler_register
from annotation.models import Dataset, Job, JobChunk, Membership, Question, Record, Response, Workspace
from annotation.services import (
    dataset_create,
    dataset_publish,
    display_order_for,
    member_remove,
    member_upsert,
    next_record_for,
    records_upsert,
    response_upsert,
)
from annotation.text import TEXT_CLEANED_KEY
from annotation.validation import NAME_RE, display_name_validate, field_specs_of, record_validate
from generation.llm import LLMConfigError, api_key_for, chat_many_groups
from generation.llm_types import ChatRequest

from .. import judges as J
from ..models import Judge
from ..parsers import JudgeParseError, parse_preference, parse_ratings
from ..scoring import pairwise_ranking, ranking_from_ratings
from .models import SimulatedAnnotator, SimulatedAnswer

log = logging.getLogger(__name__)

JOB_KIND = "simulation"
SIMULABLE_METHODS = (Judge.Method.ULTRAFEEDBACK, Judge.Method.PAIRWISE)


# --- annotators -----------------------------------------------------------------------------------

def simulated_username(name: str) -> str:
    return f"sim-{name}"


def _flip_validate(p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ValidationError({"flip_probability": "a number from 0 to 1 (AlpacaFarm used 0.25)"})
    return float(p)


@transaction.atomic
def simulated_annotator_create(*, workspace: Workspace, name: str, judge: Judge, flip_probability: float = 0.0,
                               seed: int = 0) -> SimulatedAnnotator:
    """Create a simulated annotator and its flagged user `sim-<name>` (an annotator member of the workspace)."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValidationError({"name": "letters, digits, '-' and '_' only (1-100 characters)"})
    if SimulatedAnnotator.objects.filter(workspace=workspace, name=name).exists():
        raise ValidationError({"name": f"a simulated annotator named {name!r} exists in this workspace"})
    if judge.workspace_id != workspace.pk:
        raise ValidationError({"judge": "no such judge in this workspace"})
    if judge.method not in SIMULABLE_METHODS:
        raise ValidationError({"judge": f"a simulated annotator needs a judge that ranks (method "
                                        f"{' or '.join(SIMULABLE_METHODS)}), not {judge.method!r}"})
    p = _flip_validate(flip_probability)
    if isinstance(seed, bool) or not isinstance(seed, int) or abs(seed) >= 2**62:
        raise ValidationError({"seed": "an integer"})
    display_name_validate(name, field="name")
    username = simulated_username(name)
    from django.contrib.auth import get_user_model

    existing = get_user_model().objects.filter(username=username).first()
    # A left-over simulated user (its workspace or annotator was deleted) may be reused; a person's never.
    if existing is not None and (SimulatedAnnotator.objects.filter(user=existing).exists()
                                 or Membership.objects.filter(user=existing, is_simulated=False).exists()
                                 or existing.has_usable_password() or existing.is_staff):
        raise ValidationError({"name": f"the user name {username!r} is taken"})
    membership, _token, _created = member_upsert(workspace=workspace, username=username,
                                                 role=Membership.Role.ANNOTATOR, is_simulated=True)
    return SimulatedAnnotator.objects.create(workspace=workspace, name=name, judge=judge, user=membership.user,
                                             flip_probability=p, seed=seed)


@transaction.atomic
def simulated_annotator_update(*, annotator: SimulatedAnnotator, judge: Judge | None = None,
                               flip_probability: float | None = None, seed: int | None = None) -> SimulatedAnnotator:
    """Reconfigure a simulated annotator (judge, flip probability, seed); its answers so far stay."""
    if judge is not None:
        if judge.workspace_id != annotator.workspace_id:
            raise ValidationError({"judge": "no such judge in this workspace"})
        if judge.method not in SIMULABLE_METHODS:
            raise ValidationError({"judge": f"a simulated annotator needs a judge that ranks (method "
                                            f"{' or '.join(SIMULABLE_METHODS)}), not {judge.method!r}"})
        annotator.judge = judge
    if flip_probability is not None:
        annotator.flip_probability = _flip_validate(flip_probability)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or abs(seed) >= 2**62:
            raise ValidationError({"seed": "an integer"})
        annotator.seed = seed
    annotator.save(update_fields=["judge", "flip_probability", "seed"])
    return annotator


@transaction.atomic
def simulated_annotator_delete(*, annotator: SimulatedAnnotator) -> None:
    """Remove a simulated annotator; like a person who left, its user and submitted answers stay
    (its membership goes, so it is no longer offered records)."""
    member_remove(workspace=annotator.workspace, user=annotator.user)
    annotator.delete()


def simulated_annotators_resolve(*, workspace: Workspace, names: Iterable[Any] | None) -> list[SimulatedAnnotator]:
    """Annotators of the workspace by name or id; all of them when `names` is empty."""
    qs = SimulatedAnnotator.objects.filter(workspace=workspace).select_related("judge", "judge__endpoint", "user")
    names = list(names or [])
    if not names:
        found = list(qs.order_by("name"))
        if not found:
            raise ValidationError({"annotators": "this workspace has no simulated annotators; create one first"})
        return found
    out = []
    for item in names:
        obj = None
        if isinstance(item, int) and not isinstance(item, bool):
            obj = qs.filter(pk=item).first()
        elif isinstance(item, str):
            obj = qs.filter(name=item).first()
        if obj is None:
            raise ValidationError({"annotators": f"no simulated annotator {item!r} in this workspace"})
        if obj not in out:
            out.append(obj)
    return out


# --- noise ------------------------------------------------------------------------------------------

def annotator_rng(annotator: SimulatedAnnotator, record: Record) -> random.Random:
    return random.Random(f"simulate:{annotator.seed}:{annotator.name}:{record.external_id}")


def noise_apply(ranks: dict[str, int], *, fields: Sequence[str], flip_probability: float, rng: random.Random,
                allow_ties: bool) -> tuple[dict[str, int], bool]:
    """AlpacaFarm's noise: with probability min(1, 2p) a uniformly random answer replaces the judge's.

    Returns (ranks, replaced). Ties left in the answer are broken at random when not allowed.
    The rng draws are always made in the same order, so a given seed gives the same answers.
    """
    fields = list(fields)
    replace = rng.random() < min(1.0, 2.0 * flip_probability)
    permutation = list(fields)
    rng.shuffle(permutation)
    tie_breaker = {f: rng.random() for f in fields}
    if replace:
        return {f: i + 1 for i, f in enumerate(permutation)}, True
    if not allow_ties and len(set(ranks[f] for f in fields)) != len(fields):
        order = sorted(fields, key=lambda f: (ranks[f], tie_breaker[f]))
        return {f: i + 1 for i, f in enumerate(order)}, False
    return {f: ranks[f] for f in fields}, False


# --- the judge's decision ------------------------------------------------------------------------------

@dataclass
class Decision:
    ranks: dict[str, int] | None
    raw: list[dict] = field(default_factory=list)
    error: str = ""
    transient: bool = False  # the LLM call itself failed (after the client's retries): try again later


def _parse(call: J.PlannedCall, text: str | None) -> dict:
    if call.kind == "ratings":
        parsed = parse_ratings(text, len(call.shown_order))
        return {"ratings": dict(zip(call.shown_order, parsed.ratings))}
    if call.kind == "pair":
        return {"preferred": parse_preference(text).preferred}
    raise JudgeParseError(f"calls of kind {call.kind!r} do not rank responses")


def _combine(judge: Judge, fields: list[str], parsed: dict[str, dict], calls: list[J.PlannedCall]) -> dict[str, int]:
    """The judge's ranking from its parsed calls, by the same rules as the judge jobs
    (judging.scoring): mean rating over aspects; pairwise = both orders combined, then wins."""
    if judge.method == Judge.Method.PAIRWISE:
        verdicts = J.pair_verdicts(fields, {key: out["preferred"] for key, out in parsed.items()})
        ranking = pairwise_ranking(verdicts, fields)
    else:
        per_call = [parsed[c.call_key]["ratings"] for c in calls]
        ratings = {f: sum(r[f] for r in per_call) / len(per_call) for f in fields}
        ranking = ranking_from_ratings(ratings, fields)
    return {item["value"]: item["rank"] for item in ranking}


def judge_decisions(items: Sequence[tuple[str, Judge, Record]], *, prompt_field: str,
                    fields: list[str]) -> dict[str, Decision]:
    """Judge many (key, judge, record) items at once: every planned call of every item goes through
    generation.llm.chat_many_groups (one group per endpoint, each with its own concurrency limit);
    unreadable outputs are asked again with the format reminder up to judge.max_parse_retries times."""
    plans: dict[str, tuple[Judge, list[J.PlannedCall]]] = {}
    for key, judge, record in items:
        plans[key] = (judge, J.calls_for(judge, record, prompt_field=prompt_field, fields=fields))
    parsed: dict[str, dict[str, dict]] = {key: {} for key in plans}
    raw: dict[str, list[dict]] = {key: [] for key in plans}
    failed: dict[str, str] = {}
    transient: set[str] = set()
    pending = [(key, call, 0, None) for key, (judge, calls) in plans.items() for call in calls]
    while pending:
        groups: dict[int, tuple[Any, list[ChatRequest]]] = {}
        index: dict[str, tuple[str, J.PlannedCall, int]] = {}
        for key, call, attempt, last_error in pending:
            judge = plans[key][0]
            messages = call.messages if attempt == 0 else J.retry_messages(call, last_error or "")
            params = call.params if attempt == 0 else J.retry_params(call, attempt)
            req_key = f"{key}|{call.call_key}|{attempt}"
            index[req_key] = (key, call, attempt)
            groups.setdefault(judge.endpoint_id, (judge.endpoint, []))[1].append(
                ChatRequest(key=req_key, messages=messages, params=params))
        results = chat_many_groups(list(groups.values()))
        pending = []
        for result in results:
            key, call, attempt = index[result.key]
            if key in failed:
                continue
            judge = plans[key][0]
            if not result.ok:
                raw[key].append({"call_key": call.call_key, "text": None, "error": f"LLM call failed: {result.error}"})
                failed[key] = f"{call.call_key}: LLM call failed: {result.error}"
                transient.add(key)
                continue
            # the text is the model's, cleaned of what cannot be stored (annotation.text); the note says what was removed
            note = {TEXT_CLEANED_KEY: result.text_cleaned} if result.text_cleaned else {}
            try:
                parsed[key][call.call_key] = _parse(call, result.text)
                raw[key].append({"call_key": call.call_key, "text": result.text, "error": "", **note})
            except JudgeParseError as exc:
                raw[key].append({"call_key": call.call_key, "text": result.text, "error": str(exc), **note})
                if attempt < judge.max_parse_retries:
                    pending.append((key, call, attempt + 1, str(exc)))
                else:
                    failed[key] = f"{call.call_key}: {exc} (after {attempt + 1} attempts)"
        pending = [p for p in pending if p[0] not in failed]
    out = {}
    for key, (judge, calls) in plans.items():
        if key in failed:
            out[key] = Decision(ranks=None, raw=raw[key], error=failed[key], transient=key in transient)
        else:
            out[key] = Decision(ranks=_combine(judge, fields, parsed[key], calls), raw=raw[key])
    return out


# --- the campaign ---------------------------------------------------------------------------------------

@dataclass
class _Target:
    question: Question
    fields: list[str]
    compares: list[str] | None


def simulation_target(dataset: Dataset) -> _Target:
    """The question simulated annotators answer: the ranking question, or a comparison rating.
    Any other *required* question cannot be answered by a judge: refused with a clear error."""
    questions = list(dataset.questions.all())
    target = next((q for q in questions if q.kind == Question.Kind.RANKING), None)
    if target is None:
        target = next((q for q in questions if q.kind == Question.Kind.RATING and (q.options or {}).get("compares")), None)
    if target is None:
        raise ValidationError({"dataset": "simulated annotators need a ranking question or a comparison "
                                          "rating question (options.compares)"})
    others = [q.name for q in questions if q.pk != target.pk and q.required]
    if others:
        raise ValidationError({"dataset": f"simulated annotators only answer {target.name!r}; these questions are "
                                          f"required too: {', '.join(others)}"})
    compares = list(target.options["compares"]) if target.kind == Question.Kind.RATING else None
    fields = compares or list(target.options.get("values", []))
    return _Target(question=target, fields=fields, compares=compares)


def _value_for(target: _Target, ranks: dict[str, int]) -> Any:
    if target.compares:
        a, b = target.compares
        return 0 if ranks[a] == ranks[b] else (1 if ranks[a] < ranks[b] else 2)
    return [{"value": f, "rank": ranks[f]} for f in sorted(target.fields, key=lambda f: (ranks[f], target.fields.index(f)))]


@dataclass
class AnnotatorTally:
    submitted: int = 0
    discarded: int = 0
    noised: int = 0


@dataclass
class SimulationResult:
    per_annotator: dict[str, AnnotatorTally] = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)
    rounds: int = 0
    # annotators stopped because their judge's LLM calls failed (endpoint down, timeouts): their
    # record stays leased to them and is retried first by the next run
    interrupted: dict[str, str] = field(default_factory=dict)

    @property
    def submitted(self) -> int:
        return sum(t.submitted for t in self.per_annotator.values())

    @property
    def discarded(self) -> int:
        return sum(t.discarded for t in self.per_annotator.values())

    def as_dict(self) -> dict:
        return {"submitted": self.submitted, "discarded": self.discarded, "rounds": self.rounds,
                "annotators": {name: vars(t) for name, t in self.per_annotator.items()},
                "errors": self.errors[:100], "interrupted": self.interrupted}


def _plan_ahead(dataset: Dataset, leased: list[tuple[SimulatedAnnotator, Record]],
                sizes: dict[int, int]) -> dict[int, list[Record]]:
    """Predict which records `next_record_for` will hand each annotator next, when they take turns.

    Candidates are the open records under the overlap, by priority then id (next_record_for's
    order); the annotators pick in turn the first candidate that still has room (min_submitted
    minus submitted minus leased), that they have not answered and not picked. With every annotator
    answering every record (overlap = pool size) each gets the same next records; with overlap 1
    they get alternate ones — as the distribution will hand them out. Only a prediction, to judge
    ahead in parallel: what is answered is still decided by next_record_for.
    """
    plans: dict[int, list[Record]] = {a.pk: [record] for a, record in leased}
    want = {a.pk: sizes[a.pk] - 1 for a, _ in leased}
    if sum(want.values()) <= 0:
        return plans
    candidates = list(Record.objects.filter(dataset=dataset, completed=False)
                      .alias(load=F("submitted_count") + F("leased_count")).filter(load__lt=dataset.min_submitted)
                      .order_by("-priority", "id")[:sum(want.values()) + len(leased)])
    room = {r.pk: dataset.min_submitted - r.submitted_count - r.leased_count for r in candidates}
    users = {a.user_id: a.pk for a, _ in leased}
    answered = {(users[u], r) for r, u in Response.objects.filter(record__in=[r.pk for r in candidates],
                                                                   user_id__in=list(users))
                .values_list("record_id", "user_id")}
    taken = {(a.pk, record.pk) for a, record in leased}
    pointer = {a.pk: 0 for a, _ in leased}
    turn = [a for a, _ in leased if want[a.pk] > 0]
    while turn:
        for a in list(turn):
            i = pointer[a.pk]
            while i < len(candidates):
                r = candidates[i]
                i += 1
                if room[r.pk] > 0 and (a.pk, r.pk) not in answered and (a.pk, r.pk) not in taken:
                    room[r.pk] -= 1
                    taken.add((a.pk, r.pk))
                    plans[a.pk].append(r)
                    want[a.pk] -= 1
                    break
            pointer[a.pk] = i
            if want[a.pk] <= 0 or i >= len(candidates):
                turn.remove(a)
    return plans


def _annotators_check(dataset: Dataset, annotators: Sequence[SimulatedAnnotator]) -> None:
    for a in annotators:
        if a.workspace_id != dataset.workspace_id:
            raise ValidationError({"annotators": f"{a.name!r} is not an annotator of this dataset's workspace"})


def _run_checked(dataset: Dataset, annotators: Sequence[SimulatedAnnotator], max_records: Any,
                 lookahead: Any) -> _Target:
    """The question simulation_run answers, once its arguments are known to be sound."""
    if dataset.status == Dataset.Status.ARCHIVED:
        raise ValidationError({"dataset": "the dataset is archived"})
    if max_records is not None and (isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 0):
        raise ValidationError({"max_records": "a non-negative integer"})
    if lookahead is not None and (isinstance(lookahead, bool) or not isinstance(lookahead, int) or lookahead < 1):
        raise ValidationError({"lookahead": "a positive integer"})
    target = simulation_target(dataset)
    _annotators_check(dataset, annotators)
    return target


class _Campaign:
    """The state of one simulation_run: who still answers, how many each answered, the result."""

    def __init__(self, *, dataset: Dataset, annotators: Sequence[SimulatedAnnotator], target: _Target,
                 max_records: int | None, lookahead: int | None,
                 on_answer: Callable[[SimulatedAnnotator, Record, str, str], None] | None):
        self.dataset, self.target, self.max_records, self.lookahead = dataset, target, max_records, lookahead
        self.on_answer = on_answer
        self.prompt_field = (dataset.prompt_field if dataset.fields.filter(name=dataset.prompt_field).exists()
                             else "")
        self.result = SimulationResult(per_annotator={a.name: AnnotatorTally() for a in annotators})
        self.active = [a for a in annotators if max_records is None or max_records > 0]
        self.answered = {a.pk: 0 for a in annotators}

    def room(self, a: SimulatedAnnotator) -> int | None:
        return None if self.max_records is None else self.max_records - self.answered[a.pk]

    def lease(self) -> list[tuple[SimulatedAnnotator, Record]]:
        """Each active annotator's next record from next_record_for; one that gets none is done."""
        leased = []
        for a in list(self.active):
            record = _next_unless_paused(a.user, self.dataset)
            if record is None:
                self.active.remove(a)
                continue
            leased.append((a, record))
        return leased

    def judge_ahead(self, leased: list[tuple[SimulatedAnnotator, Record]]) -> dict[str, Decision]:
        """Decisions on each leased record and on the next ones its annotator is likely to get
        (`_plan_ahead`), all annotators' calls in one batch. Keys: "<annotator pk>:<record pk>"."""
        sizes = {}
        for a, _record in leased:
            size = self.lookahead or max(1, min(64, a.judge.endpoint.max_concurrency or 1))
            left = self.room(a)
            sizes[a.pk] = size if left is None else max(1, min(size, left))
        plans = _plan_ahead(self.dataset, leased, sizes)
        return judge_decisions([(f"{a.pk}:{r.pk}", a.judge, r) for a, _ in leased for r in plans[a.pk]],
                               prompt_field=self.prompt_field, fields=self.target.fields)

    def answer_in_turns(self, leased: list[tuple[SimulatedAnnotator, Record]], decisions: dict[str, Decision]) -> None:
        """The annotators take turns answering what next_record_for hands them, for as long as that
        record was judged ahead; one that was not stays leased to them for the next round."""
        current: dict[int, Record] = {a.pk: record for a, record in leased}
        turn = [a for a, _ in leased]
        while turn:
            for a in list(turn):
                record = current.pop(a.pk)
                decision = decisions.pop(f"{a.pk}:{record.pk}")
                if decision.transient:
                    self._interrupt(a, record, decision)
                    turn.remove(a)
                    continue
                self._submit(a, record, decision)
                nxt = self._next_record(a)
                if nxt is None:
                    self.active.remove(a)
                    turn.remove(a)
                elif f"{a.pk}:{nxt.pk}" in decisions:
                    current[a.pk] = nxt
                else:  # not judged ahead: it stays leased to `a` and comes first in the next round
                    turn.remove(a)

    def _interrupt(self, a: SimulatedAnnotator, record: Record, decision: Decision) -> None:
        """The judge's LLM call failed: not the record's fault, so no answer (a discard would be
        final); this annotator stops for this run."""
        self.result.interrupted[a.name] = f"record {record.external_id}: {decision.error}"
        self.result.errors.append({"annotator": a.name, "record": record.external_id, "error": decision.error,
                                   "transient": True})
        self.active.remove(a)

    def _submit(self, a: SimulatedAnnotator, record: Record, decision: Decision) -> None:
        status, error = _answer(a, record, decision, target=self.target, dataset=self.dataset,
                                tally=self.result.per_annotator[a.name])
        if error:
            self.result.errors.append({"annotator": a.name, "record": record.external_id, "error": error})
        if self.on_answer is not None:
            self.on_answer(a, record, status, error)
        self.answered[a.pk] += 1

    def _next_record(self, a: SimulatedAnnotator) -> Record | None:
        left = self.room(a)
        return None if left is not None and left <= 0 else _next_unless_paused(a.user, self.dataset)


def _next_unless_paused(user, dataset: Dataset) -> Record | None:
    """next_record_for; a simulated annotator paused on the dataset (the gold policy) is done, as a
    person would be."""
    try:
        return next_record_for(user, dataset)
    except AnnotatorPaused:
        return None


def simulation_run(*, dataset: Dataset, annotators: Sequence[SimulatedAnnotator], max_records: int | None = None,
                   lookahead: int | None = None,
                   on_answer: Callable[[SimulatedAnnotator, Record, str, str], None] | None = None,
                   between_rounds: Callable[[], None] | None = None) -> SimulationResult:
    """Let simulated annotators answer a dataset until nothing is left for them.

    Each annotator takes its records one at a time from `next_record_for` (so the dataset's
    overlap, priorities and leases apply) and submits each answer with `response_upsert`, like a
    person. To keep the LLM endpoints busy, each round judges ahead: for every active annotator its
    leased record plus the next `lookahead` - 1 records it is likely to get (`_plan_ahead`; default
    lookahead: its judge endpoint's max_concurrency, at most 64), all annotators' calls in one batch
    (generation.llm.chat_many_groups). Then the annotators take turns answering what next_record_for
    hands them, for as long as that record was judged ahead; one that was not stays leased to them
    and is judged first in the next round.

    `max_records` caps how many records each annotator answers in this run. `on_answer(annotator,
    record, status, error)` is called after each answer; `between_rounds()` may raise to stop.
    """
    target = _run_checked(dataset, annotators, max_records, lookahead)
    campaign = _Campaign(dataset=dataset, annotators=annotators, target=target, max_records=max_records,
                         lookahead=lookahead, on_answer=on_answer)
    while campaign.active:
        if between_rounds is not None:
            between_rounds()
        leased = campaign.lease()
        if not leased:
            break
        campaign.result.rounds += 1
        campaign.answer_in_turns(leased, campaign.judge_ahead(leased))
    return campaign.result


def _answer_store(a: SimulatedAnnotator, record: Record, **values: Any) -> None:
    """Insert or replace the SimulatedAnswer of (annotator, record) in one statement."""
    SimulatedAnswer.objects.bulk_create([SimulatedAnswer(annotator=a, record=record, **values)], update_conflicts=True,
                                        unique_fields=["annotator", "record"],
                                        update_fields=["judge_value", "value", "noised", "raw", "error", "updated_at"])


def _answer(a: SimulatedAnnotator, record: Record, decision: Decision, *, target: _Target, dataset: Dataset,
            tally: AnnotatorTally) -> tuple[str, str]:
    order = display_order_for(record=record, user_id=a.user_id, field_names=target.fields,
                              shuffle=dataset.shuffle_responses)
    with transaction.atomic():
        if decision.ranks is None:
            response_upsert(user=a.user, record=record, values={}, status=Response.Status.DISCARDED, display_order=order)
            _answer_store(a, record, judge_value=None, value=None, noised=False, raw=decision.raw,
                          error=decision.error[:10_000])
            tally.discarded += 1
            return Response.Status.DISCARDED, decision.error
        ranks, noised = noise_apply(decision.ranks, fields=target.fields, flip_probability=a.flip_probability,
                                    rng=annotator_rng(a, record), allow_ties=dataset.allow_ties)
        value = _value_for(target, ranks)
        response_upsert(user=a.user, record=record, values={target.question.name: value},
                        status=Response.Status.SUBMITTED, display_order=order)
        _answer_store(a, record, judge_value=_value_for(target, decision.ranks), value=value, noised=noised,
                      raw=decision.raw, error="")
    tally.submitted += 1
    tally.noised += int(noised)
    return Response.Status.SUBMITTED, ""


# --- the job ------------------------------------------------------------------------------------------------

def simulation_job_create(*, dataset: Dataset, annotators: Sequence[SimulatedAnnotator], max_records: int | None = None,
                          created_by=None, start: bool = True) -> Job:
    """A job of kind "simulation": one chunk per annotator (they run side by side on workers)."""
    simulation_target(dataset)
    if not annotators:
        raise ValidationError({"annotators": "at least one simulated annotator"})
    if max_records is not None and (isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1):
        raise ValidationError({"max_records": "a positive integer"})
    _annotators_check(dataset, annotators)
    return job_create(kind=JOB_KIND, workspace=dataset.workspace, dataset=dataset, created_by=created_by,
                      name=f"simulate {dataset.name} ({', '.join(a.name for a in annotators)})"[:200],
                      params={"annotators": [a.pk for a in annotators], "max_records": max_records}, start=start)


def _answers_of(annotator: SimulatedAnnotator, dataset_id: int) -> tuple[int, int]:
    qs = Response.objects.filter(dataset_id=dataset_id, user_id=annotator.user_id)
    return (qs.filter(status=Response.Status.SUBMITTED).count(), qs.filter(status=Response.Status.DISCARDED).count())


def _answers_since_plan(annotator: SimulatedAnnotator, dataset_id: int, spec: dict) -> tuple[int, int]:
    """What the annotator of a chunk answered since the job planned it: (submitted, discarded)."""
    submitted, discarded = _answers_of(annotator, dataset_id)
    return (max(0, submitted - spec.get("baseline_submitted", 0)),
            max(0, discarded - spec.get("baseline_discarded", 0)))


class SimulationInterrupted(RuntimeError):
    """A simulated annotator's judge could not be reached; the chunk is retried later."""


class SimulationJobHandler:
    """kind "simulation". Chunk = one annotator. Idempotent: answered records are never handed out
    again to the same user, and a re-run recounts what the annotator answered since the job planned."""

    kind = JOB_KIND
    items_word = "answers"
    done_word = "simulated"
    item_label = "Annotator:record"

    def plan(self, job: Job, plan_input: object = None) -> list[dict]:
        annotators = list(SimulatedAnnotator.objects.filter(pk__in=job.params.get("annotators") or []).order_by("name"))
        records = Record.objects.filter(dataset_id=job.dataset_id).count()
        cap = job.params.get("max_records")
        specs = []
        total = 0
        for a in annotators:
            submitted, discarded = _answers_of(a, job.dataset_id)
            specs.append({"annotator": a.pk, "baseline_submitted": submitted, "baseline_discarded": discarded})
            total += min(records - submitted - discarded, cap if cap is not None else records)
        open_slots = sum(max(0, job.dataset.min_submitted - n) for n in
                         Record.objects.filter(dataset_id=job.dataset_id).values_list("submitted_count", flat=True))
        job.total = max(0, min(total, open_slots))
        return specs

    def run_chunk(self, job: Job, chunk: JobChunk, ctx: ChunkContext) -> None:
        annotator = (SimulatedAnnotator.objects.select_related("judge", "judge__endpoint", "user")
                     .filter(pk=chunk.spec["annotator"]).first())
        if annotator is None:  # deleted (with its judge) since the job was planned: nothing to do
            ctx.error(item=f"annotator {chunk.spec['annotator']}", error="the simulated annotator was deleted")
            return
        dataset = job.dataset
        # what an earlier run answered counts from the responses, under the chunk's lock (a second copy
        # of this chunk running at the same time cannot count the same answers again)
        found: list[tuple[int, int]] = []
        ctx.counts_set(lambda: found.append(_answers_since_plan(annotator, dataset.pk, chunk.spec)) or found[-1])
        done_before, failed_before = found[-1]
        cap = job.params.get("max_records")
        remaining = None if cap is None else max(0, cap - done_before - failed_before)

        def on_answer(a, record, status, error):
            if status == Response.Status.SUBMITTED:
                ctx.clear_error(item=f"{a.name}:{record.external_id}")
                ctx.progress(done=1)
            else:
                raw = "\n\n".join(f"[{r.get('call_key')}] {r.get('text') or ''}" for r in
                                  SimulatedAnswer.objects.filter(annotator=a, record=record).values_list("raw", flat=True).first() or [])
                ctx.error(item=f"{a.name}:{record.external_id}", error=error, raw=raw)
                ctx.progress(failed=1)

        result = simulation_run(dataset=dataset, annotators=[annotator], max_records=remaining, on_answer=on_answer,
                                between_rounds=ctx.check_cancelled)
        if result.interrupted:  # the chunk is retried with backoff by the job mechanism (Celery)
            raise SimulationInterrupted("; ".join(f"{k}: {v}" for k, v in result.interrupted.items()))

    def finish(self, job: Job) -> None:
        # The counters are recounted from the responses: two copies of a chunk that ran at once after
        # a worker was killed (redelivery) may both have counted the answers they saw.
        annotators = {a.pk: a for a in SimulatedAnnotator.objects.filter(pk__in=job.params.get("annotators") or [])}
        job.done = job.failed = 0
        for spec in job.chunks.values_list("spec", flat=True):
            if spec.get("annotator") in annotators:
                done, failed = _answers_since_plan(annotators[spec["annotator"]], job.dataset_id, spec)
                job.done, job.failed = job.done + done, job.failed + failed
        per = {}
        for a in annotators.values():
            submitted, discarded = _answers_of(a, job.dataset_id)
            per[a.name] = {"submitted_total": submitted, "discarded_total": discarded}
        job.result = {"annotators": per, "submitted": job.done, "discarded": job.failed}
        job.total = job.done + job.failed


job_handler_register(SimulationJobHandler())


# --- annotate_pairs / annotate_samples (AlpacaFarm's API) ---------------------------------------------------

PAIR_KEYS = ("instruction", "output_1", "output_2")
PAIR_OPTIONAL = ("generator_1", "generator_2", "id", "input")
MAX_PAIRS = 100_000


def _pairs_validate(pairs: Any) -> list[dict]:
    if not isinstance(pairs, list):
        raise ValidationError({"pairs": "must be a JSON list of {instruction, output_1, output_2}"})
    if not pairs:
        raise ValidationError({"pairs": "the list is empty"})
    if len(pairs) > MAX_PAIRS:
        raise ValidationError({"pairs": f"at most {MAX_PAIRS} pairs at once"})
    errors: dict[str, str] = {}
    for i, item in enumerate(pairs):
        if not isinstance(item, dict):
            errors[f"[{i}]"] = "must be an object"
            continue
        for key in PAIR_KEYS:
            if not isinstance(item.get(key), str):
                errors[f"[{i}].{key}"] = "required, a string"
                break
        unknown = set(item) - set(PAIR_KEYS) - set(PAIR_OPTIONAL) - {"preference"}
        if unknown:
            errors[f"[{i}]"] = f"unknown keys: {', '.join(sorted(unknown))}"
        if len(errors) >= 100:
            break
    if errors:
        raise ValidationError(errors)
    return pairs


def _scratch_dataset(*, workspace: Workspace, created_by) -> Dataset:
    """The dataset annotate_pairs' pairs become: one record per pair, overlap 1, ties allowed."""
    return dataset_create(
        workspace=workspace, name=f"scratch-annotate-pairs-{uuid.uuid4().hex[:12]}", created_by=created_by,
        fields=[{"name": "instruction", "kind": "text"}, {"name": "output_1", "kind": "text", "required": False},
                {"name": "output_2", "kind": "text", "required": False}],
        questions=[{"name": "preference", "kind": "ranking", "options": {"values": ["output_1", "output_2"]}}],
        guidelines="Scratch dataset of annotate_pairs (simulated annotators).", min_submitted=1, allow_ties=True,
        shuffle_responses=True, prompt_field="instruction")


def _pairs_records_add(dataset: Dataset, pairs: list[dict]) -> None:
    """The pairs as records of the scratch dataset (external_id = the index in the list), then published."""
    specs = field_specs_of(dataset)
    rows = []
    for i, item in enumerate(pairs):
        instruction = item["instruction"]
        if isinstance(item.get("input"), str) and item["input"].strip():  # AlpacaFarm's optional input
            instruction = f"{instruction}\n\n{item['input']}"
        fields = {"instruction": instruction or "(empty instruction)", "output_1": item["output_1"],
                  "output_2": item["output_2"]}
        metadata = {"models": {"output_1": item.get("generator_1"), "output_2": item.get("generator_2")}}
        try:
            rows.append(record_validate({"external_id": str(i), "fields": fields, "metadata": metadata}, specs))
        except ValidationError as exc:
            raise ValidationError({f"[{i}].{k}": v for k, v in exc.message_dict.items()}) from None
    for start in range(0, len(rows), 2000):
        records_upsert(dataset=dataset, rows=rows[start:start + 2000])
    dataset_publish(dataset=dataset)


def _pool_preferences(dataset: Dataset, annotators: Sequence[SimulatedAnnotator]) -> dict[str, dict]:
    """Per record external_id: the annotator who answered it and, when submitted, its AlpacaEval
    preference (1 = output_1 better, 2 = output_2 better, 1.5 = tie)."""
    by_record: dict[str, dict] = {}
    names = {a.user_id: a.name for a in annotators}
    for external_id, user_id, status, values in (Response.objects.filter(dataset=dataset)
                                                 .exclude(status=Response.Status.DRAFT)
                                                 .values_list("record__external_id", "user_id", "status", "values")):
        entry = {"annotator": names.get(user_id)}
        if status == Response.Status.SUBMITTED:
            ranks = {i["value"]: i["rank"] for i in values["preference"]}
            entry["preference"] = 1.5 if ranks["output_1"] == ranks["output_2"] else (
                1 if ranks["output_1"] < ranks["output_2"] else 2)
        by_record.setdefault(external_id, entry)
    return by_record


def _annotated_pairs(pairs: list[dict], by_record: dict[str, dict], result: SimulationResult) -> list[dict]:
    """Each input pair with `preference` and `annotator`, and `error` when it was not annotated."""
    errors = {e["record"]: e["error"] for e in result.errors}
    out = []
    for i, item in enumerate(pairs):
        entry = by_record.get(str(i), {})
        row = {k: item[k] for k in (*PAIR_KEYS, *PAIR_OPTIONAL) if k in item}
        row["preference"] = entry.get("preference")
        row["annotator"] = entry.get("annotator")
        if row["preference"] is None:
            row["error"] = errors.get(str(i)) or ("not annotated: the pool stopped, " + next(iter(
                result.interrupted.values())) if result.interrupted else "not annotated")
        out.append(row)
    return out


def _pool_keys_check(annotators: Sequence[SimulatedAnnotator]) -> None:
    """annotate_pairs calls the LLM endpoints in this process (the API: in the web request), not on a
    worker: an API key variable set only in the workers' environment is a 400 naming it, before
    anything is written, instead of a failure half-way."""
    for annotator in annotators:
        try:
            api_key_for(annotator.judge.endpoint)
        except LLMConfigError:
            variable = annotator.judge.endpoint.api_key_env
            raise ValidationError({"annotators": (
                f"{annotator.name}: its judge's endpoint {annotator.judge.endpoint.name!r} reads its API key from the "
                f"environment variable {variable}, which is not set in this process; annotate-pairs and "
                "annotate-samples call the LLM here, not on a worker. Set it here too, or run the pool on the "
                "workers: put the pairs in a dataset and POST /api/v1/datasets/<id>/simulate/")})


def pairs_annotate(*, workspace: Workspace, pairs: Any, annotators: Sequence[SimulatedAnnotator],
                   created_by=None, keep_dataset: bool = False) -> dict:
    """AlpacaFarm's `annotate_pairs`: preferences of the simulated pool for a list of
    {instruction, output_1, output_2} (optional generator_1/generator_2/id/input are passed through).

    The pairs become a scratch dataset (one record per pair, overlap 1, ties allowed) that the pool
    answers through the normal path; each pair is answered by one annotator of the pool (the
    distribution hands records out in turn). Returns {"annotations": [...], "dataset": id or None}
    where each annotation is the input item plus `preference` (1 = output_1 better, 2 = output_2
    better, 1.5 = tie — AlpacaEval's convention, so the list feeds the leaderboard import as is),
    `annotator`, and `error` when no annotator could judge it. The scratch dataset is deleted
    afterwards unless `keep_dataset`.
    """
    pairs = _pairs_validate(pairs)
    if not annotators:
        raise ValidationError({"annotators": "at least one simulated annotator"})
    _pool_keys_check(annotators)
    dataset = _scratch_dataset(workspace=workspace, created_by=created_by)
    try:
        _pairs_records_add(dataset, pairs)
        result = simulation_run(dataset=dataset, annotators=annotators)
        out = _annotated_pairs(pairs, _pool_preferences(dataset, annotators), result)
    finally:
        if not keep_dataset:
            dataset.delete()
    return {"annotations": out, "dataset": dataset.pk if keep_dataset else None,
            "annotated": sum(1 for r in out if r["preference"] is not None), "failed": sum(1 for r in out if r["preference"] is None)}


def samples_to_pairs(samples: Any, *, pairs_per_instruction: int = 1, seed: int = 0) -> list[dict]:
    """AlpacaFarm's `annotate_samples` step one: for each {instruction, outputs: [...], generators?: [...]},
    draw `pairs_per_instruction` distinct random pairs of different outputs (seeded, reproducible)."""
    if not isinstance(samples, list) or not samples:
        raise ValidationError({"samples": "must be a non-empty JSON list of {instruction, outputs: [...]}"})
    if isinstance(pairs_per_instruction, bool) or not isinstance(pairs_per_instruction, int) or pairs_per_instruction < 1:
        raise ValidationError({"pairs_per_instruction": "a positive integer"})
    errors: dict[str, str] = {}
    pairs = []
    for i, item in enumerate(samples):
        if not isinstance(item, dict):
            errors[f"[{i}]"] = "must be an object"
            continue
        outputs, generators = item.get("outputs"), item.get("generators")
        if not isinstance(item.get("instruction"), str):
            errors[f"[{i}].instruction"] = "required, a string"
            continue
        if not isinstance(outputs, list) or len(outputs) < 2 or not all(isinstance(o, str) for o in outputs):
            errors[f"[{i}].outputs"] = "a list of at least two strings"
            continue
        if generators is not None and (not isinstance(generators, list) or len(generators) != len(outputs)
                                       or not all(isinstance(g, str) for g in generators)):
            errors[f"[{i}].generators"] = "a list of strings, one per output"
            continue
        rng = random.Random(f"samples:{seed}:{i}")
        all_pairs = [(a, b) for a in range(len(outputs)) for b in range(a + 1, len(outputs))]
        for a, b in rng.sample(all_pairs, min(pairs_per_instruction, len(all_pairs))):
            if rng.random() < 0.5:
                a, b = b, a
            pair = {"instruction": item["instruction"], "output_1": outputs[a], "output_2": outputs[b],
                    "id": f"{i}:{a}:{b}"}
            if generators is not None:
                pair["generator_1"], pair["generator_2"] = generators[a], generators[b]
            pairs.append(pair)
    if errors:
        raise ValidationError(errors)
    return pairs


def samples_annotate(*, workspace: Workspace, samples: Any, annotators: Sequence[SimulatedAnnotator],
                     pairs_per_instruction: int = 1, seed: int = 0, created_by=None) -> dict:
    """AlpacaFarm's `annotate_samples`: random pairs from the outputs of each instruction, then
    `pairs_annotate`. Each annotation's `id` is "<sample index>:<output index 1>:<output index 2>"."""
    pairs = samples_to_pairs(samples, pairs_per_instruction=pairs_per_instruction, seed=seed)
    return pairs_annotate(workspace=workspace, pairs=pairs, annotators=annotators, created_by=created_by)
