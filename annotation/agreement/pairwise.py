"""Agreement between annotators over whole rankings: pairs of annotators, Krippendorff's alpha over
ranks, and the records they disagree on. What the dataset dashboard shows.

Input is an iterable of (record, annotator, ranking) triples (rankings.Triple).

* `annotator_pairs`: for each pair of annotators, over the records both ranked, the share of
  response pairs they order the same way (a before b / tie / b before a). For two responses per
  record this is simply "chose the same winner". `pairwise_agreement` sums them up per annotator
  and overall (record-weighted means).
* `krippendorff_alpha_ordinal`: Krippendorff's alpha (the `krippendorff` package) at the ordinal
  level, with one unit per (record, field) and the rank as the value; records ranked by a single
  annotator carry no information and are left out.
* `record_disagreements`: the records whose annotators do not all agree, worst first.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from .rankings import Triple, pair_label
from .rates import Rate


def ranking_agreement(x: Mapping[str, int], y: Mapping[str, int]) -> float | None:
    """Share of the field pairs ranked by both that two rankings order the same way."""
    pairs = list(combinations(sorted(set(x) & set(y)), 2))
    if not pairs:
        return None
    same = sum(1 for a, b in pairs if pair_label(x, a, b) == pair_label(y, a, b))
    return same / len(pairs)


@dataclass(frozen=True)
class PairAgreement:
    a: Hashable
    b: Hashable
    records: int          # records both annotators ranked
    agreement: float      # mean share of response pairs ordered the same way


@dataclass(frozen=True)
class RecordDisagreement:
    record: Hashable
    annotators: int
    agreement: float      # mean pairwise ranking agreement among the record's annotators
    top_choices: dict     # field -> how many annotators ranked it (alone or tied) first


class AgreementAccumulator:
    """Agreement figures built one record at a time (memory: one row per (record, field) unit with
    a count per rank, plus one entry per annotator pair), so a dataset can be streamed."""

    def __init__(self, *, disagreement_limit: int | None = 50):
        self.pair_sums: dict[tuple, list] = defaultdict(lambda: [0.0, 0])
        self.unit_counts: list[dict[int, int]] = []   # Krippendorff value counts, one dict per unit
        self.disagreements: list[RecordDisagreement] = []
        self.disagreement_limit = disagreement_limit
        self.records_with_overlap = 0

    def add(self, record: Hashable, by_annotator: Mapping[Hashable, Mapping[str, int]]) -> None:
        by_annotator = {a: r for a, r in by_annotator.items() if r}
        if len(by_annotator) < 2:
            return
        self.records_with_overlap += 1
        scores = self._add_pairs(by_annotator)
        self._add_units(by_annotator)
        if scores and (agreement := sum(scores) / len(scores)) < 1.0:
            self._add_disagreement(record, by_annotator, agreement)

    def _add_pairs(self, by_annotator: Mapping[Hashable, Mapping[str, int]]) -> list[float]:
        scores = []
        for a, b in combinations(sorted(by_annotator, key=str), 2):
            score = ranking_agreement(by_annotator[a], by_annotator[b])
            if score is None:
                continue
            acc = self.pair_sums[(a, b)]
            acc[0] += score
            acc[1] += 1
            scores.append(score)
        return scores

    def _add_units(self, by_annotator: Mapping[Hashable, Mapping[str, int]]) -> None:
        for field in sorted({f for ranking in by_annotator.values() for f in ranking}):
            counts: dict[int, int] = defaultdict(int)
            for ranking in by_annotator.values():
                if field in ranking:
                    counts[ranking[field]] += 1
            if sum(counts.values()) >= 2:
                self.unit_counts.append(dict(counts))

    def _add_disagreement(self, record: Hashable, by_annotator: Mapping[Hashable, Mapping[str, int]],
                          agreement: float) -> None:
        top: dict[str, int] = defaultdict(int)
        for ranking in by_annotator.values():
            best = min(ranking.values())
            for field, rank in ranking.items():
                if rank == best:
                    top[field] += 1
        self.disagreements.append(RecordDisagreement(
            record=record, annotators=len(by_annotator), agreement=agreement,
            top_choices=dict(sorted(top.items(), key=lambda kv: -kv[1]))))
        if self.disagreement_limit is not None and len(self.disagreements) > 4 * self.disagreement_limit + 100:
            self._trim()

    def _trim(self) -> None:
        self.disagreements.sort(key=lambda d: (d.agreement, str(d.record)))
        if self.disagreement_limit is not None:
            del self.disagreements[self.disagreement_limit:]

    def pairs(self) -> list[PairAgreement]:
        return [PairAgreement(a=a, b=b, records=n, agreement=total / n)
                for (a, b), (total, n) in sorted(self.pair_sums.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))]

    def alpha(self) -> float | None:
        """Krippendorff's alpha (ordinal) from the value counts of every (record, field) unit."""
        import krippendorff
        import numpy as np

        if not self.unit_counts:
            return None
        domain = sorted({v for counts in self.unit_counts for v in counts})
        if len(domain) < 2:
            return None
        column = {v: i for i, v in enumerate(domain)}
        matrix = np.zeros((len(self.unit_counts), len(domain)))
        for row, counts in enumerate(self.unit_counts):
            for value, n in counts.items():
                matrix[row, column[value]] = n
        try:
            alpha = float(krippendorff.alpha(value_counts=matrix, value_domain=domain,
                                             level_of_measurement="ordinal"))
        except (ValueError, ZeroDivisionError):
            return None
        return None if math.isnan(alpha) else alpha

    def worst(self) -> list[RecordDisagreement]:
        self._trim()
        return list(self.disagreements)


def _accumulate(triples: Iterable[Triple], *, limit: int | None = 50) -> AgreementAccumulator:
    records: dict[Hashable, dict[Hashable, Mapping[str, int]]] = defaultdict(dict)
    for record, annotator, ranking in triples:
        if ranking:
            records[record][annotator] = ranking
    acc = AgreementAccumulator(disagreement_limit=limit)
    for record, by in records.items():
        acc.add(record, by)
    return acc


def annotator_pairs(triples: Iterable[Triple]) -> list[PairAgreement]:
    """Agreement of every pair of annotators over the records they both ranked (sorted by a, b)."""
    return _accumulate(triples).pairs()


@dataclass
class PairwiseAgreement:
    overall: Rate
    per_annotator: dict[Hashable, Rate]
    per_pair: dict[tuple[Hashable, Hashable], Rate]


def pairwise_summary(pairs: Iterable[PairAgreement]) -> PairwiseAgreement:
    """The pairs' figures as record-weighted means, overall and per annotator; `n` counts
    (annotator pair, shared record) comparisons."""
    overall = Rate()
    per_annotator: dict[Hashable, Rate] = defaultdict(Rate)
    per_pair: dict[tuple, Rate] = {}
    for pair in pairs:
        total = pair.agreement * pair.records
        per_pair[(pair.a, pair.b)] = Rate(total=total, n=pair.records)
        for rate in (overall, per_annotator[pair.a], per_annotator[pair.b]):
            rate.total += total
            rate.n += pair.records
    return PairwiseAgreement(overall, dict(per_annotator), per_pair)


def pairwise_agreement(triples: Iterable[Triple]) -> PairwiseAgreement:
    """Agreement between annotators (the dashboard's definition): for each pair of annotators and
    each record both ranked, the share of response pairs they order the same way (a before b / tie /
    b before a — tie vs tie agrees, tie vs a preference does not); a pair's figure is the mean over
    its shared records, the overall and per-annotator figures are record-weighted means. For two
    responses per record: the share of shared records with the same verdict. `per_pair` keys are
    sorted.
    """
    return pairwise_summary(annotator_pairs(triples))


def overall_agreement(pairs: Sequence[PairAgreement]) -> float | None:
    """Mean pairwise agreement weighted by the records each pair shares."""
    return pairwise_summary(pairs).overall.value


def krippendorff_alpha_ordinal(triples: Iterable[Triple]) -> float | None:
    """Krippendorff's alpha, ordinal level, units = (record, field), values = ranks.

    None when it is undefined: no record ranked by two annotators, or a single rank value in all
    the data (no variation to disagree about).
    """
    return _accumulate(triples).alpha()


def record_disagreements(triples: Iterable[Triple], *, limit: int | None = 50) -> list[RecordDisagreement]:
    """Records with at least two annotators whose rankings differ, lowest agreement first."""
    return _accumulate(triples, limit=limit).worst()
