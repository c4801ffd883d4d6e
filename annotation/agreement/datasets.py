"""The agreement figures of one dataset, read from the database in one pass over its submitted
responses: `dataset_quality` (the dashboard) and `dataset_agreement` (the agreement page and API)."""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from .majority import DEFAULT_SCORING_RULE
from .pairwise import (
    AgreementAccumulator,
    PairAgreement,
    RecordDisagreement,
    pairwise_summary,
)
from .position import PositionBias, position_bias_add
from .rankings import both_bad_by_majority, pair_vote_from_value, ranks_from_value
from .rates import Rate, median, rate_with_interval, rounded
from .report import AgreementReport, AnnotationRow, agreement_report

# --- the dashboard ----------------------------------------------------------------------------------


@dataclass
class AnnotatorStats:
    user_id: int
    username: str
    submitted: int = 0
    discarded: int = 0
    draft: int = 0
    median_seconds: float | None = None
    agreement: float | None = None   # mean agreement with the other annotators on shared records


@dataclass
class DatasetQuality:
    question: str | None
    annotators: list[AnnotatorStats]
    pairs: list[PairAgreement]
    overall_agreement: float | None
    alpha: float | None
    disagreements: list[RecordDisagreement]
    records_with_overlap: int
    both_bad_records: int | None = None  # records most annotators called both bad (None: no such choice)


def dataset_quality(dataset, *, disagreement_limit: int = 50) -> DatasetQuality:
    """Per-annotator counts and time, agreement and alpha on the first ranking question (else the
    first pairwise question: a comparison rating or a graded preference), and the records annotators
    called both bad when that question offers the choice.

    Four queries whatever the size: the questions, counts per (user, status), one streamed pass over
    the submitted responses (values_list: record, user, values, duration), and the usernames.
    """
    from django.contrib.auth import get_user_model

    from ..selectors import compared_fields, ranked_question_of

    target = ranked_question_of(dataset.questions.order_by("position", "id"))
    question = target.name if target is not None else None
    compares = compared_fields(target) if target is not None else None
    stats = _status_counts(dataset)
    acc = AgreementAccumulator(disagreement_limit=disagreement_limit)
    both_bad = _BothBad() if target is not None and (target.options or {}).get("both_bad") else None
    durations = _submitted_pass(dataset, question, acc, compares=compares, both_bad=both_bad)
    names = dict(get_user_model().objects.filter(pk__in=list(stats)).values_list("pk", "username"))
    pairs = acc.pairs()
    summary = pairwise_summary(pairs)
    for user_id, row in stats.items():
        row.username = names.get(user_id, f"user {user_id}")
        row.median_seconds = median(durations.get(user_id, []))
        row.agreement = summary.per_annotator.get(user_id, Rate()).value
    return DatasetQuality(
        question=question,
        annotators=sorted(stats.values(), key=lambda r: (-r.submitted, r.username)),
        pairs=pairs, overall_agreement=summary.overall.value, alpha=acc.alpha(),
        disagreements=acc.worst(), records_with_overlap=acc.records_with_overlap,
        both_bad_records=both_bad.records if both_bad is not None else None)


class _BothBad:
    """Counts the records most annotators called both bad (rankings.both_bad_by_majority), one
    record's answers at a time."""

    def __init__(self):
        self.records = 0

    def add(self, answers: int, both_bad: int) -> None:
        if answers and both_bad_by_majority(both_bad, answers):
            self.records += 1


def _status_counts(dataset) -> dict[int, AnnotatorStats]:
    """Each annotator's responses counted per status (submitted, discarded, draft)."""
    from django.db.models import Count

    from ..models import Response

    stats: dict[int, AnnotatorStats] = {}
    for user_id, status, n in (Response.objects.filter(dataset=dataset).values_list("user_id", "status")
                               .annotate(n=Count("id")).order_by()):
        row = stats.setdefault(user_id, AnnotatorStats(user_id=user_id, username=""))
        setattr(row, status, n)
    return stats


def _submitted_pass(dataset, question: str | None, acc: AgreementAccumulator, *, compares=None,
                    both_bad: _BothBad | None = None) -> dict[int, list[float]]:
    """Feed each record's submitted rankings of `question` to `acc` (and its both-bad calls to
    `both_bad`); returns the durations per user."""
    from ..models import Response

    durations: dict[int, list[float]] = defaultdict(list)
    current, by_annotator = None, {}
    answers = called_bad = 0
    # ordered by record (index response_status_idx): one record's answers at a time, nothing held
    rows = (Response.objects.filter(dataset=dataset, status=Response.Status.SUBMITTED)
            .values_list("record_id", "user_id", "values", "duration").order_by("record_id"))
    for record_id, user_id, values, duration in rows.iterator(chunk_size=5000):
        if duration:
            durations[user_id].append(duration)
        if not question:
            continue
        if record_id != current:
            if by_annotator:
                acc.add(current, by_annotator)
            if both_bad is not None:
                both_bad.add(answers, called_bad)
            current, by_annotator = record_id, {}
            answers = called_bad = 0
        value = (values or {}).get(question)
        if compares is not None:
            vote = pair_vote_from_value(value, compares)
            ranking = vote.ranks if vote is not None else None
            if vote is not None:
                answers += 1
                called_bad += vote.both_bad
        else:
            ranking = ranks_from_value(value)
        if ranking:
            by_annotator[user_id] = ranking
    if by_annotator:
        acc.add(current, by_annotator)
    if both_bad is not None:
        both_bad.add(answers, called_bad)
    return durations


# --- the agreement page -----------------------------------------------------------------------------

TIE_RULES = {
    "preflab": ("labels are first/second/tie per pair of responses; agreement = equal labels (a tie against a "
                "preference scores 0); a tied majority scores 0.5 and is counted in 'tied'"),
    "zero_one": ("AlpacaEval's zero_one: agreement = equal labels; a tied majority is broken as AlpacaEval's "
                 "_random_mode breaks it (deterministic) and counted in 'tied'"),
    "absolute": ("AlpacaEval's absolute: score = 1 - |difference| of the preferences 1, 1.5 (tie), 2, so a tie "
                 "against a preference scores 0.5; a tied majority is broken as AlpacaEval's _random_mode breaks "
                 "it (deterministic) and counted in 'tied'"),
}


def dataset_agreement(dataset, *, question=None, scoring_rule: str = DEFAULT_SCORING_RULE) -> dict:
    """Agreement figures of a dataset (submitted responses only; drafts and discards never count).

    One pass over the submitted responses (values, display order, annotator) and one over the
    suggestions of the question; the ranking question of the dataset is used, or its comparison
    rating question (selectors.ranked_question_of). Returns a JSON-ready dict (see the package
    docs for the tie rules; `scoring_rule` one of majority.SCORING_RULES, default "preflab"). The human
    leave-one-out figure is over human annotators only; a judge's agreement with the human majority has a
    Wilson 95% interval.
    """
    from ..selectors import compared_fields, ranked_question_of

    if question is None:
        question = ranked_question_of(dataset.questions.all())
    if question is None:
        return {"question": None, "error": "this dataset has no ranking or comparison question"}
    compares = compared_fields(question)
    fields = list(compares or (question.options or {}).get("values", []))
    members = _Members(dataset)
    responses_per: Counter = Counter()
    judges, judge_bias = _judge_rankings(question, compares)
    rows = _submitted_rows(dataset, question, compares, responses_per)
    report = agreement_report(rows, fields, judges=judges, humans=members.humans(), scoring_rule=scoring_rule)
    competence = _competence(report, judges, fields)
    members.name_former(responses_per)
    return {
        "question": question.name,
        "fields": fields,
        "records": report.records,
        "submitted_responses": report.annotations,
        "units": len(report.units),
        "units_with_overlap": sum(1 for labels in report.units.values() if len(labels) >= 2),
        "pairwise_agreement": report.pairwise.overall.as_dict(),
        "leave_one_out": report.leave_one_out.overall.as_dict(),
        "human_leave_one_out": report.human_leave_one_out.overall.as_dict() if report.human_leave_one_out else None,
        "krippendorff_alpha": rounded(report.alpha),
        "krippendorff_alpha_ordinal": rounded(report.alpha_ordinal),
        "position_bias": report.position.as_dict(),
        "annotators": _annotator_rows(report, members, responses_per, competence),
        "pairs": [{"a": members.name(u), "b": members.name(v), **rate.as_dict()}
                  for (u, v), rate in sorted(report.pairwise.per_pair.items(),
                                             key=lambda kv: (members.name(kv[0][0]), members.name(kv[0][1])))],
        "judges": _judge_rows(report, judge_bias, competence),
        "competence_model": COMPETENCE_MODEL,
        "scoring_rule": scoring_rule,
        "tie_rule": TIE_RULES[scoring_rule],
    }


class _Members:
    """The workspace's members (name, simulated or not), and former members named on demand."""

    def __init__(self, dataset):
        from ..models import Membership

        self.usernames: dict[int, str] = {}
        self.simulated: dict[int, bool] = {}
        for user_id, username, is_sim in (Membership.objects.filter(workspace_id=dataset.workspace_id)
                                          .values_list("user_id", "user__username", "is_simulated")):
            self.usernames[user_id] = username
            self.simulated[user_id] = is_sim

    def humans(self) -> _HumanSet:
        """Annotators not flagged simulated (a user without membership counts as human)."""
        return _HumanSet(self.simulated)

    def name_former(self, user_ids) -> None:
        """Look up the names of annotators who are no longer members (they are still named)."""
        missing = [u for u in user_ids if u not in self.usernames]
        if missing:
            from django.contrib.auth import get_user_model

            self.usernames.update(get_user_model().objects.filter(pk__in=missing).values_list("pk", "username"))

    def name(self, user_id) -> str:
        return self.usernames.get(user_id, f"user-{user_id}")


class _HumanSet:
    """Membership test for 'is a human annotator' without listing every user up front."""

    def __init__(self, simulated: Mapping[int, bool]):
        self._simulated = simulated

    def __contains__(self, user_id) -> bool:
        return not self._simulated.get(user_id, False)

    def __iter__(self):  # set(...) of this is only used for membership; iterate the humans we know
        return (u for u, sim in self._simulated.items() if not sim)


def _submitted_rows(dataset, question, compares, responses_per: Counter):
    """The submitted rankings of `question` as AnnotationRows, streamed; counts them per annotator."""
    from ..models import Response

    qs = (Response.objects.filter(dataset=dataset, status=Response.Status.SUBMITTED)
          .values_list("record_id", "user_id", "values", "display_order").order_by("record_id", "id"))
    for record_id, user_id, values, order in qs.iterator(chunk_size=2000):
        ranks = ranks_from_value((values or {}).get(question.name), compares=compares)
        if ranks is None:
            continue
        responses_per[user_id] += 1
        yield AnnotationRow(record=record_id, annotator=user_id, ranks=ranks, display_order=order or ())


def _judge_rankings(question, compares) -> tuple[dict[str, dict[int, dict]], dict[str, PositionBias]]:
    """agent -> record -> ranks of the question's suggestions, and each agent's position bias when
    it saw the responses in a recorded order (raw.shown_order, e.g. UltraFeedback's per-record
    shuffle), measured as the annotators' is."""
    from ..models import Suggestion

    judges: dict[str, dict[int, dict]] = defaultdict(dict)
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
    return judges, judge_bias


COMPETENCE_MODEL = ("one-coin Dawid-Skene fitted by EM over every pair verdict (annotation.agreement.competence): the "
                    "probability that the annotator (or judge) gives a pair's true label, estimated from agreement "
                    "without gold; shown once the annotator shares a pair with someone else")


def _competence(report: AgreementReport, judges: Mapping[str, Mapping[int, Mapping[str, int]]],
                fields: list[str]) -> dict[object, tuple[float, int]]:
    """Competence of every annotator and judge (judges keyed ("judge", agent)) as (competence,
    verdicts on units shared with someone else); annotators who share no unit with anyone are left
    out (nothing to measure them against)."""
    units = _competence_units(report.units, judges, fields)
    shared: Counter = Counter(a for labels in units.values() if len(labels) >= 2 for a in labels)
    if not shared:
        return {}
    from .competence import one_coin_dawid_skene

    fit = one_coin_dawid_skene(units)
    return {a: (round(fit.competence[a], 4), n) for a, n in shared.items()}


def _competence_units(human_units, judges: Mapping[str, Mapping[int, Mapping[str, int]]], fields: list[str]) -> dict:
    """The units the competence model is fitted on: the pair verdicts of the units humans answered,
    with the judges' verdicts on those units beside them (keyed ("judge", agent))."""
    from .rankings import unit_labels

    units = {unit: dict(labels) for unit, labels in human_units.items()}
    for agent, by_record in judges.items():
        for record, ranks in by_record.items():
            for pair, label in unit_labels(ranks, fields).items():
                if (record, pair) in units:
                    units[(record, pair)][judge_key(agent)] = label
    return units


def judge_key(agent: str) -> tuple[str, str]:
    """How a judge (suggestion agent) is named among annotators in the competence model."""
    return ("judge", agent or "(no agent)")


def dataset_competence(dataset, question, *, human_units=None):
    """The competence model of a dataset's question (annotation.agreement.competence), fitted on its
    submitted answers and its judges' suggestions: what `resolve=weighted` exports weigh votes by.
    Reads the answers once (the units of a million pairs take a few hundred MB), unless the caller read
    them already: `human_units`, the units of the submitted answers by record then response id."""
    from ..selectors import compared_fields
    from .competence import one_coin_dawid_skene
    from .report import units_from_rows

    compares = compared_fields(question)
    fields = list(compares or (question.options or {}).get("values", []))
    judges, _bias = _judge_rankings(question, compares)
    human = human_units if human_units is not None else units_from_rows(_submitted_rows(dataset, question, compares, Counter()), fields)
    return one_coin_dawid_skene(_competence_units(human, judges, fields))


def dataset_competence_votes(dataset, question, *, leave_out: frozenset = frozenset()):
    """dataset_competence's fit, for exports: the answers and the judges' suggestions are read in record
    order and kept as three arrays (unit, annotator, label), not as per-unit dicts, and the fit keeps no
    posteriors (competence.one_coin_dawid_skene_votes), so a million records take tens of MB, not a GB.
    The same units, votes and order within a unit as dataset_competence (humans in answer order, then the
    judges); the competences agree with it to rounding. `leave_out`: user ids whose answers are not read
    (the annotators an export leaves out)."""
    import numpy as np

    from ..models import Suggestion
    from ..selectors import compared_fields
    from .competence import one_coin_dawid_skene_votes
    from .rankings import unit_labels

    compares = compared_fields(question)
    fields = list(compares or (question.options or {}).get("values", []))
    u_idx, who, label_of = (np.zeros(1 << 16, dtype=np.int64) for _ in range(3))
    n = 0
    keys: dict = {}  # annotator (user id or judge key) -> index, in order of first vote

    def add(unit: int, annotator, label: int) -> None:
        nonlocal n, u_idx, who, label_of
        if n == len(u_idx):
            u_idx, who, label_of = (np.concatenate([a, np.zeros_like(a)]) for a in (u_idx, who, label_of))
        u_idx[n], who[n], label_of[n] = unit, keys.setdefault(annotator, len(keys)), label
        n += 1

    agents: dict[str, int] = {}  # agent -> order of first appearance (the judges' order within a unit)
    suggestions = iter(Suggestion.objects.filter(question=question).order_by("record_id")
                       .values_list("record_id", "agent", "value").iterator(chunk_size=2000))
    pending = next(suggestions, None)
    n_units = 0
    record, units = None, {}

    def judges_of(record_id, units: dict) -> None:
        nonlocal pending
        found = []
        while pending is not None and pending[0] <= record_id:
            rid, agent, value = pending
            pending = next(suggestions, None)
            if rid != record_id:
                continue
            ranks = ranks_from_value(value, compares=compares)
            if ranks is not None:
                agent = agent or "(no agent)"
                found.append((agents.setdefault(agent, len(agents)), agent, ranks))
        for _order, agent, ranks in sorted(found, key=lambda f: f[0]):
            for pair, label in unit_labels(ranks, fields).items():
                if pair in units:
                    add(units[pair], judge_key(agent), label)

    for row in _submitted_rows(dataset, question, compares, Counter()):
        if row.annotator in leave_out:
            continue
        if row.record != record:
            if record is not None:
                judges_of(record, units)
            record, units = row.record, {}
        for pair, label in unit_labels(row.ranks, fields).items():
            if pair not in units:
                units[pair] = n_units
                n_units += 1
            add(units[pair], row.annotator, label)
    if record is not None:
        judges_of(record, units)
    u_idx, who, label_of = u_idx[:n], who[:n], label_of[:n]
    # unit by unit (humans, then judges, kept in their order), annotators sorted as one_coin_dawid_skene sorts them
    order = np.argsort(u_idx, kind="stable")
    annotators = sorted(keys, key=repr)
    position = np.array([annotators.index(a) for a in keys], dtype=np.int64)
    labels = tuple(int(x) for x in np.unique(label_of))
    return one_coin_dawid_skene_votes(n_units=n_units, annotators=annotators, labels=labels, u_arr=u_idx[order],
                                      a_arr=position[who[order]] if n else who,
                                      l_arr=np.searchsorted(np.array(labels), label_of[order]))


def _annotator_rows(report: AgreementReport, members: _Members, responses_per: Counter,
                    competence: Mapping[object, tuple[float, int]]) -> list[dict]:
    rows = []
    for user_id in sorted(responses_per, key=members.name):
        human = report.human_leave_one_out.per_annotator.get(user_id, Rate()) if report.human_leave_one_out else Rate()
        rows.append({
            "username": members.name(user_id), "simulated": members.simulated.get(user_id, False),
            "responses": responses_per[user_id],
            "pairwise_agreement": report.pairwise.per_annotator.get(user_id, Rate()).as_dict(),
            "leave_one_out": report.leave_one_out.per_annotator.get(user_id, Rate()).as_dict(),
            "human_majority": human.as_dict(),
            "position_bias": report.position_per_annotator.get(user_id, PositionBias()).as_dict(),
            "competence": competence.get(user_id, (None, 0))[0],
            "competence_verdicts": competence.get(user_id, (None, 0))[1],
        })
    return rows


def _judge_rows(report: AgreementReport, judge_bias: Mapping[str, PositionBias],
                competence: Mapping[object, tuple[float, int]]) -> list[dict]:
    return [{"agent": agent, "units": rates["units"].n,
             "competence": competence.get(judge_key(agent), (None, 0))[0],
             "human_majority": rate_with_interval(rates["human_majority"]),
             "annotator_majority": rate_with_interval(rates["annotator_majority"]),
             "position_bias": judge_bias[agent].as_dict() if agent in judge_bias else None}
            for agent, rates in sorted(report.judges.items())]
