"""Every agreement measure of one table of annotations (and the judges' suggestions on it)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .majority import (
    DEFAULT_SCORING_RULE,
    LeaveOneOut,
    agreement_with_majority,
    krippendorff_alpha,
    leave_one_out_agreement,
    who_counts,
)
from .pairwise import PairwiseAgreement, krippendorff_alpha_ordinal, pairwise_agreement
from .position import PositionBias, position_bias_add
from .rankings import Unit, unit_labels
from .rates import Rate


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


def units_from_rows(rows: Iterable[AnnotationRow], fields: Sequence[str]) -> dict[Unit, dict[Hashable, int]]:
    units: dict[Unit, dict[Hashable, int]] = defaultdict(dict)
    for row in rows:
        _add_labels(units, row, fields)
    return dict(units)


def _add_labels(units: dict, row: AnnotationRow, fields: Sequence[str]) -> None:
    for pair, label in unit_labels(row.ranks, fields).items():
        units[(row.record, pair)][row.annotator] = label


def agreement_report(rows: Iterable[AnnotationRow], fields: Sequence[str], *,
                     humans: Iterable[Hashable] | None = None,
                     judges: Mapping[Hashable, Mapping[Hashable, Mapping[str, int]]] | None = None,
                     scoring_rule: str = DEFAULT_SCORING_RULE) -> AgreementReport:
    """All measures for a table of annotations.

    `humans`: the annotators who are people (the rest are simulated); when given, every annotator
    also gets a leave-one-out agreement against the majority of the other *humans*, and the overall human
    leave-one-out figure holds out humans only (simulated annotators enter neither side of it).
    `scoring_rule`: how a label scores against a majority (majority.SCORING_RULES; default "preflab").
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
        _add_labels(units, row, fields)
        if row.display_order:
            position_bias_add(bias, row.ranks, row.display_order)
            position_bias_add(bias_per[row.annotator], row.ranks, row.display_order)
    units = dict(units)
    human_set = who_counts(humans)
    report = AgreementReport(
        fields=fields, units=units, pairwise=pairwise_agreement(triples),
        leave_one_out=leave_one_out_agreement(units, scoring_rule=scoring_rule), alpha=krippendorff_alpha(units),
        alpha_ordinal=krippendorff_alpha_ordinal(triples), position=bias,
        position_per_annotator=dict(bias_per), records=len(records), annotations=n,
        human_leave_one_out=(leave_one_out_agreement(units, others=human_set, held_out=human_set,
                                                     scoring_rule=scoring_rule) if human_set is not None else None),
    )
    for agent, by_record in (judges or {}).items():
        report.judges[agent] = _judge_rates(by_record, units, fields, humans=human_set, scoring_rule=scoring_rule)
    return report


def _judge_rates(by_record: Mapping[Hashable, Mapping[str, int]], units: Mapping[Unit, Mapping[Hashable, int]],
                 fields: Sequence[str], *, humans, scoring_rule: str) -> dict[str, Rate]:
    """One judge's agreement with the human majority and the annotator majority of each unit."""
    labels_of: dict[Unit, int] = {}
    for record, ranks in by_record.items():
        for pair, label in unit_labels(ranks, fields).items():
            labels_of[(record, pair)] = label
    return {
        "human_majority": agreement_with_majority(labels_of, units, voters=humans, scoring_rule=scoring_rule),
        "annotator_majority": agreement_with_majority(labels_of, units, scoring_rule=scoring_rule),
        "units": Rate(total=0.0, n=len(labels_of)),
    }
