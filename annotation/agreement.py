"""Extended agreement measures (issue #6): per annotator, leave-one-out, judge vs human majority,
position bias and Krippendorff's alpha — pure functions over (record, annotator, ranking) data plus
one selector, `dataset_agreement`, that computes all of them for a dataset in one pass over its
submitted responses and its suggestions.

Vocabulary
----------
* A **ranking** is a mapping field name -> rank (1 = best; equal ranks are a tie). The stored form
  `[{"value": field, "rank": k}, ...]`, a plain best-first list of names, and a comparison rating
  (`{"values": [0, 1, 2], "compares": [f1, f2]}`, 1 = f1 better, 2 = f2 better, 0 = tie) are all
  turned into it by `ranks_from_value`.
* A **unit** is one pair of fields of one record: `(record, (a, b))` with `a` before `b` in the
  question's field order. A record with N ranked responses has N*(N-1)/2 units; a pairwise dataset
  has exactly one unit per record, so for pairwise data every figure below is "per record".
* A **label** is an annotator's verdict on a unit: `FIRST` (a better), `SECOND` (b better) or
  `TIE` (equal ranks). Labels are nominal: a tie is a verdict of its own, so two annotators agree on
  a unit only when their labels are equal (tie = tie agrees; tie vs a preference disagrees).

Reuse: pairwise agreement between annotators and the ordinal alpha over ranks are
annotation.metrics' functions (what the dashboard shows), so both pages give the same figures; this
module adds the label-based measures (majorities, leave-one-out, judge agreement, position bias) and
a nominal alpha over pair verdicts (`krippendorff_alpha`, where a tie is a category of its own).

Tie rules (explicit, the same everywhere)
----------------------------------------
* **Majority** of a set of labels = the most frequent label. When two or more labels share the top
  count (e.g. one annotator says FIRST and one SECOND, or FIRST/SECOND/TIE once each) there is no
  majority: the majority is *tied* (`None`).
* Agreement with a majority (leave-one-out, judge vs humans) scores 1 when the label equals the
  majority, 0 when it differs, and **0.5 when the majority is tied** — the expected score of
  breaking the tie at random, as a coin flip would. Such cases are counted (`tied`) in every result,
  so they can be judged separately.
* Position bias only looks at responses whose best rank is held by exactly one field; a response
  with a tie at the top is not a "choice" of a position and is left out (counted as `ties`).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Hashable, Iterable, Mapping, Sequence

from . import metrics

TIE, FIRST, SECOND = 0, 1, 2
LABEL_NAMES = {TIE: "tie", FIRST: "first", SECOND: "second"}

Unit = tuple[Hashable, tuple[str, str]]


# --- turning stored values into rankings and labels ---------------------------------------------

def ranks_from_value(value: Any, *, compares: Sequence[str] | None = None) -> dict[str, int] | None:
    """Field -> rank from a stored answer; None when the value is not a ranking.

    `compares` is given for a comparison rating question: 1 = compares[0] better, 2 = compares[1]
    better, 0 = tie (the Argilla comparison convention the data model uses).
    """
    if compares is not None:
        if isinstance(value, bool) or value not in (0, 1, 2):
            return None
        a, b = compares
        return {a: 1, b: 1} if value == 0 else ({a: 1, b: 2} if value == 1 else {a: 2, b: 1})
    if isinstance(value, Mapping):
        if "value" in value and len(value) == 1:
            return ranks_from_value(value["value"])
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
            return {str(k): int(v) for k, v in value.items()}
        return None
    return metrics.ranking_from_value(value)


def pair_label(ranks: Mapping[str, int], a: str, b: str) -> int | None:
    """FIRST when a is ranked better than b, SECOND when worse, TIE when equal; None if either is missing."""
    if a not in ranks or b not in ranks:
        return None
    ra, rb = ranks[a], ranks[b]
    return TIE if ra == rb else (FIRST if ra < rb else SECOND)


def field_pairs(fields: Sequence[str]) -> list[tuple[str, str]]:
    """All pairs of ranked fields, each in the question's order."""
    return list(combinations(fields, 2))


def unit_labels(ranks: Mapping[str, int], fields: Sequence[str]) -> dict[tuple[str, str], int]:
    out = {}
    for a, b in field_pairs(fields):
        label = pair_label(ranks, a, b)
        if label is not None:
            out[(a, b)] = label
    return out


# --- majority -----------------------------------------------------------------------------------

def majority_label(labels: Iterable[int]) -> int | None:
    """The most frequent label, or None when the top count is shared (a tied majority) or there are none."""
    counts = Counter(labels).most_common()
    if not counts:
        return None
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0]


def agreement_score(label: int, majority: int | None) -> float:
    """1 if label equals the majority, 0 if not, 0.5 when the majority is tied (see module doc)."""
    if majority is None:
        return 0.5
    return 1.0 if label == majority else 0.0


@dataclass
class Rate:
    """A mean of per-case scores: value = total / n (None when n == 0); `tied` = cases scored 0.5
    because the reference majority was tied."""

    total: float = 0.0
    n: int = 0
    tied: int = 0

    def add(self, score: float, *, tied: bool = False) -> None:
        self.total += score
        self.n += 1
        self.tied += int(tied)

    @property
    def value(self) -> float | None:
        return self.total / self.n if self.n else None

    def as_dict(self) -> dict:
        return {"value": _round(self.value), "n": self.n, "tied": self.tied}


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, digits)


def _container(who):
    """None stays None (= everyone); sets and objects with __contains__ are used as they are."""
    if who is None or isinstance(who, (set, frozenset)) or (hasattr(who, "__contains__") and not isinstance(who, (list, tuple))):
        return who
    return set(who)


# --- pairwise agreement ---------------------------------------------------------------------------

@dataclass
class PairwiseAgreement:
    overall: Rate
    per_annotator: dict[Hashable, Rate]
    per_pair: dict[tuple[Hashable, Hashable], Rate]


def pairwise_agreement(triples: Iterable[tuple[Hashable, Hashable, Mapping[str, int]]]) -> PairwiseAgreement:
    """Agreement between annotators, from annotation.metrics (the dashboard's definition, reused):
    for each pair of annotators and each record both ranked, the share of response pairs they order
    the same way (a before b / tie / b before a — tie vs tie agrees, tie vs a preference does not);
    a pair's figure is the mean over its shared records, the overall and per-annotator figures are
    record-weighted means. For two responses per record: the share of shared records with the same
    verdict. `n` counts (annotator pair, shared record) comparisons; `per_pair` keys are sorted.
    """
    overall = Rate()
    per_annotator: dict[Hashable, Rate] = defaultdict(Rate)
    per_pair: dict[tuple, Rate] = {}
    for pair in metrics.pairwise_agreement(triples):
        total = pair.agreement * pair.records
        per_pair[(pair.a, pair.b)] = Rate(total=total, n=pair.records)
        for rate in (overall, per_annotator[pair.a], per_annotator[pair.b]):
            rate.total += total
            rate.n += pair.records
    return PairwiseAgreement(overall, dict(per_annotator), per_pair)


# --- leave-one-out ------------------------------------------------------------------------------------

@dataclass
class LeaveOneOut:
    overall: Rate
    per_annotator: dict[Hashable, Rate]


def leave_one_out_agreement(units: Mapping[Unit, Mapping[Hashable, int]], *,
                            others: Iterable[Hashable] | None = None) -> LeaveOneOut:
    """Each annotator against the majority of the OTHER annotators of the same unit (AlpacaEval's
    "human agreement": hold one annotator out, compare with the mode of the rest).

    Only units with at least one other annotator count. When the others' majority is tied the case
    scores 0.5 and is counted in `tied`. `others`, when given, restricts who may form the majority
    (e.g. only human annotators), while every annotator is still held out in turn.
    """
    allowed = _container(others)
    overall = Rate()
    per_annotator: dict[Hashable, Rate] = defaultdict(Rate)
    for labels in units.values():
        if len(labels) < 2:
            continue
        voters = labels if allowed is None else {who: lab for who, lab in labels.items() if who in allowed}
        counts = Counter(voters.values())  # the votes once per unit; each held-out vote is taken off
        for annotator, label in labels.items():
            own = annotator in voters
            if own:
                counts[label] -= 1
            if sum(counts.values()) > 0:
                majority = _majority_of_counts(counts)
                score = agreement_score(label, majority)
                overall.add(score, tied=majority is None)
                per_annotator[annotator].add(score, tied=majority is None)
            if own:
                counts[label] += 1
    return LeaveOneOut(overall, dict(per_annotator))


def _majority_of_counts(counts: Mapping[int, int]) -> int | None:
    """majority_label over label counts (zero counts ignored): None when the top count is shared."""
    best, best_n, shared = None, 0, False
    for label, n in counts.items():
        if n > best_n:
            best, best_n, shared = label, n, False
        elif n == best_n and n > 0:
            shared = True
    return None if shared or best_n == 0 else best


def agreement_with_majority(labels_of: Mapping[Unit, int], units: Mapping[Unit, Mapping[Hashable, int]], *,
                            voters: Iterable[Hashable] | None = None) -> Rate:
    """Agreement of one outside rater (a judge) with the majority of the annotators of each unit.

    `labels_of` are the rater's labels per unit; `voters` restricts the majority to some annotators
    (e.g. humans only). Units without any voter are skipped; a tied majority scores 0.5 (`tied`).
    """
    allowed = _container(voters)
    rate = Rate()
    for unit, label in labels_of.items():
        votes = [lab for who, lab in units.get(unit, {}).items() if allowed is None or who in allowed]
        if not votes:
            continue
        majority = majority_label(votes)
        rate.add(agreement_score(label, majority), tied=majority is None)
    return rate


# --- position bias ------------------------------------------------------------------------------------

@dataclass
class PositionBias:
    """Share of choices that went to the response shown first.

    `rate` = first-position choices / choices. A choice is a response with exactly one best-ranked
    field and a known display order; responses with a tie at the top are counted in `ties` and left
    out. `chance` is the rate an annotator without position bias would have on these responses
    (the mean of 1 / number of shown responses; 0.5 for pairs).
    """

    first: int = 0
    choices: int = 0
    ties: int = 0
    chance_total: float = 0.0

    @property
    def rate(self) -> float | None:
        return self.first / self.choices if self.choices else None

    @property
    def chance(self) -> float | None:
        return self.chance_total / self.choices if self.choices else None

    def as_dict(self) -> dict:
        return {"rate": _round(self.rate), "chance": _round(self.chance), "first": self.first,
                "choices": self.choices, "ties": self.ties}


def position_bias_add(bias: PositionBias, ranks: Mapping[str, int], display_order: Sequence[str]) -> None:
    shown = [f for f in display_order if f in ranks]
    if len(shown) < 2:
        return
    best = min(ranks[f] for f in shown)
    winners = [f for f in shown if ranks[f] == best]
    if len(winners) != 1:
        bias.ties += 1
        return
    bias.choices += 1
    bias.chance_total += 1.0 / len(shown)
    bias.first += int(winners[0] == shown[0])


def position_bias(items: Iterable[tuple[Mapping[str, int], Sequence[str]]]) -> PositionBias:
    """Position bias over (ranking, display order) pairs; see PositionBias."""
    bias = PositionBias()
    for ranks, order in items:
        position_bias_add(bias, ranks, order)
    return bias


# --- Krippendorff's alpha ---------------------------------------------------------------------------

def krippendorff_alpha(units: Mapping[Unit, Mapping[Hashable, int]], *, level: str = "nominal") -> float | None:
    """Krippendorff's alpha over the pair units (annotators x units, labels nominal by default),
    computed with the `krippendorff` package. Units labelled by a single annotator carry no
    pairable value and do not count; None when nothing is pairable or every label is the same
    (alpha is undefined when there is no variation at all)."""
    import krippendorff
    import numpy as np

    pairable = [labels for labels in units.values() if len(labels) >= 2]
    if not pairable:
        return None
    values = {lab for labels in pairable for lab in labels.values()}
    if len(values) < 2:
        return None
    annotators = sorted({who for labels in pairable for who in labels}, key=str)
    index = {who: i for i, who in enumerate(annotators)}
    data = np.full((len(annotators), len(pairable)), np.nan)
    for j, labels in enumerate(pairable):
        for who, lab in labels.items():
            data[index[who], j] = lab
    try:
        alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement=level,
                                         value_domain=[TIE, FIRST, SECOND] if level != "nominal" else None))
    except (ValueError, ZeroDivisionError):
        return None
    return None if math.isnan(alpha) else alpha


# --- everything for one table -------------------------------------------------------------------------

@dataclass
class AnnotationRow:
    record: Hashable
    annotator: Hashable
    ranks: Mapping[str, int]
    display_order: Sequence[str] = ()


@dataclass
class AgreementReport:
    fields: list[str]
    units: dict[Unit, dict[Hashable, int]]
    pairwise: PairwiseAgreement
    leave_one_out: LeaveOneOut
    alpha: float | None
    alpha_ordinal: float | None
    position: PositionBias
    position_per_annotator: dict[Hashable, PositionBias]
    human_leave_one_out: LeaveOneOut | None = None
    judges: dict[Hashable, dict[str, Rate]] = field(default_factory=dict)
    records: int = 0
    annotations: int = 0


def _alpha_ordinal(triples) -> float | None:
    return metrics.krippendorff_alpha_ordinal(triples)


def units_from_rows(rows: Iterable[AnnotationRow], fields: Sequence[str]) -> dict[Unit, dict[Hashable, int]]:
    units: dict[Unit, dict[Hashable, int]] = defaultdict(dict)
    for row in rows:
        for pair, label in unit_labels(row.ranks, fields).items():
            units[(row.record, pair)][row.annotator] = label
    return dict(units)


def agreement_report(rows: Iterable[AnnotationRow], fields: Sequence[str], *,
                     humans: Iterable[Hashable] | None = None,
                     judges: Mapping[Hashable, Mapping[Hashable, Mapping[str, int]]] | None = None) -> AgreementReport:
    """All measures for a table of annotations.

    `humans`: the annotators who are people (the rest are simulated); when given, every annotator
    also gets a leave-one-out agreement against the majority of the other *humans*.
    `judges`: agent -> record -> ranks (suggestions); each judge gets its agreement with the
    majority of the human annotators (`humans`, or all annotators when not given) and with the
    majority of all annotators.
    """
    fields = list(fields)
    units: dict[Unit, dict[Hashable, int]] = defaultdict(dict)
    triples: list[tuple[Hashable, Hashable, Mapping[str, int]]] = []
    bias = PositionBias()
    bias_per: dict[Hashable, PositionBias] = defaultdict(PositionBias)
    records: set = set()
    n = 0
    for row in rows:
        n += 1
        records.add(row.record)
        triples.append((row.record, row.annotator, row.ranks))
        for pair, label in unit_labels(row.ranks, fields).items():
            units[(row.record, pair)][row.annotator] = label
        if row.display_order:
            position_bias_add(bias, row.ranks, row.display_order)
            position_bias_add(bias_per[row.annotator], row.ranks, row.display_order)
    units = dict(units)
    human_set = _container(humans)
    report = AgreementReport(
        fields=fields, units=units, pairwise=pairwise_agreement(triples),
        leave_one_out=leave_one_out_agreement(units), alpha=krippendorff_alpha(units),
        alpha_ordinal=_alpha_ordinal(triples), position=bias,
        position_per_annotator=dict(bias_per), records=len(records), annotations=n,
        human_leave_one_out=leave_one_out_agreement(units, others=human_set) if human_set is not None else None,
    )
    for agent, by_record in (judges or {}).items():
        labels_of: dict[Unit, int] = {}
        for record, ranks in by_record.items():
            for pair, label in unit_labels(ranks, fields).items():
                labels_of[(record, pair)] = label
        report.judges[agent] = {
            "human_majority": agreement_with_majority(labels_of, units, voters=human_set),
            "annotator_majority": agreement_with_majority(labels_of, units),
            "units": Rate(total=0.0, n=len(labels_of)),
        }
    return report


# --- selector: one dataset ------------------------------------------------------------------------------

def dataset_agreement(dataset, *, question=None) -> dict:
    """Agreement figures of a dataset (submitted responses only; drafts and discards never count).

    One pass over the submitted responses (values, display order, annotator) and one over the
    suggestions of the question; the ranking question of the dataset is used, or its comparison
    rating question. Returns a JSON-ready dict (see docs of the functions above for tie rules).
    """
    from .models import Membership, Question, Response, Suggestion

    if question is None:
        question = (dataset.questions.filter(kind=Question.Kind.RANKING).order_by("position", "id").first()
                    or next((q for q in dataset.questions.filter(kind=Question.Kind.RATING).order_by("position", "id")
                             if (q.options or {}).get("compares")), None))
    if question is None:
        return {"question": None, "error": "this dataset has no ranking or comparison question"}
    compares = (question.options or {}).get("compares") if question.kind == Question.Kind.RATING else None
    fields = list(compares or (question.options or {}).get("values", []))

    usernames: dict[int, str] = {}
    simulated: dict[int, bool] = {}
    for user_id, username, is_sim in (Membership.objects.filter(workspace_id=dataset.workspace_id)
                                      .values_list("user_id", "user__username", "is_simulated")):
        usernames[user_id] = username
        simulated[user_id] = is_sim
    responses_per: Counter = Counter()

    def rows():
        qs = (Response.objects.filter(dataset=dataset, status=Response.Status.SUBMITTED)
              .values_list("record_id", "user_id", "values", "display_order").order_by("record_id", "id"))
        for record_id, user_id, values, order in qs.iterator(chunk_size=2000):
            ranks = ranks_from_value((values or {}).get(question.name), compares=compares)
            if ranks is None:
                continue
            responses_per[user_id] += 1
            yield AnnotationRow(record=record_id, annotator=user_id, ranks=ranks, display_order=order or ())

    judges: dict[str, dict[int, dict[str, int]]] = defaultdict(dict)
    # A judge that saw the responses in a recorded order (raw.shown_order, e.g. UltraFeedback's
    # per-record shuffle) gets the same position-bias rate as the annotators.
    judge_bias: dict[str, PositionBias] = defaultdict(PositionBias)
    for record_id, agent, value, shown in (Suggestion.objects.filter(question=question)
                                           .values_list("record_id", "agent", "value", "raw__shown_order")
                                           .iterator(chunk_size=2000)):
        ranks = ranks_from_value(value, compares=compares)
        if ranks is not None:
            agent = agent or "(no agent)"
            judges[agent][record_id] = ranks
            if isinstance(shown, list) and all(isinstance(f, str) for f in shown):
                position_bias_add(judge_bias[agent], ranks, shown)

    # Humans = annotators not flagged simulated (a user without membership counts as human).
    row_list = rows()
    report = agreement_report(row_list, fields, judges=judges,
                              humans=_HumanSet(simulated))

    missing = [u for u in responses_per if u not in usernames]  # former members: still named
    if missing:
        from django.contrib.auth import get_user_model

        usernames.update(get_user_model().objects.filter(pk__in=missing).values_list("pk", "username"))

    def name(user_id):
        return usernames.get(user_id, f"user-{user_id}")

    annotators = []
    for user_id in sorted(responses_per, key=lambda u: name(u)):
        pw = report.pairwise.per_annotator.get(user_id, Rate())
        loo = report.leave_one_out.per_annotator.get(user_id, Rate())
        hloo = report.human_leave_one_out.per_annotator.get(user_id, Rate()) if report.human_leave_one_out else Rate()
        bias = report.position_per_annotator.get(user_id, PositionBias())
        annotators.append({
            "username": name(user_id), "simulated": simulated.get(user_id, False),
            "responses": responses_per[user_id],
            "pairwise_agreement": pw.as_dict(),
            "leave_one_out": loo.as_dict(),
            "human_majority": hloo.as_dict(),
            "position_bias": bias.as_dict(),
        })
    pairs = [{"a": name(u), "b": name(v), **rate.as_dict()}
             for (u, v), rate in sorted(report.pairwise.per_pair.items(), key=lambda kv: (name(kv[0][0]), name(kv[0][1])))]
    judge_rows = [{"agent": agent, "units": rates["units"].n,
                   "human_majority": rates["human_majority"].as_dict(),
                   "annotator_majority": rates["annotator_majority"].as_dict(),
                   "position_bias": judge_bias[agent].as_dict() if agent in judge_bias else None}
                  for agent, rates in sorted(report.judges.items())]
    multi = sum(1 for labels in report.units.values() if len(labels) >= 2)
    return {
        "question": question.name,
        "fields": fields,
        "records": report.records,
        "submitted_responses": report.annotations,
        "units": len(report.units),
        "units_with_overlap": multi,
        "pairwise_agreement": report.pairwise.overall.as_dict(),
        "leave_one_out": report.leave_one_out.overall.as_dict(),
        "human_leave_one_out": report.human_leave_one_out.overall.as_dict() if report.human_leave_one_out else None,
        "krippendorff_alpha": _round(report.alpha),
        "krippendorff_alpha_ordinal": _round(report.alpha_ordinal),
        "position_bias": report.position.as_dict(),
        "annotators": annotators,
        "pairs": pairs,
        "judges": judge_rows,
        "tie_rule": ("labels are first/second/tie per pair of responses; agreement = equal labels; "
                     "a tied majority scores 0.5 and is counted in 'tied'"),
    }


class _HumanSet:
    """Membership test for 'is a human annotator' without listing every user up front."""

    def __init__(self, simulated: Mapping[int, bool]):
        self._simulated = simulated

    def __contains__(self, user_id) -> bool:
        return not self._simulated.get(user_id, False)

    def __iter__(self):  # set(...) of this is only used for membership; iterate the humans we know
        return (u for u, sim in self._simulated.items() if not sim)
