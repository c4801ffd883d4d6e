"""Agreement between annotators on ranking questions — pure functions, no database.

Input everywhere is an iterable of (record, annotator, ranking) triples where `ranking` maps a
field name to its rank (1 = best; equal ranks are a tie). `ranking_from_value` turns a stored
ranking answer into that mapping. `dataset_quality` (at the end) is the only function that reads
the database: it gathers the triples of a dataset in one pass over its submitted responses.

* `pairwise_agreement`: for each pair of annotators, over the records both ranked, the share of
  response pairs they order the same way (a before b / tie / b before a). For two responses per
  record this is simply "chose the same winner".
* `krippendorff_alpha_ordinal`: Krippendorff's alpha (the `krippendorff` package) at the ordinal
  level, with one unit per (record, field) and the rank as the value; records ranked by a single
  annotator carry no information and are left out.
* `record_disagreements`: the records whose annotators do not all agree, worst first.
* `median`: for per-annotator time per record.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Hashable, Iterable, Mapping, Sequence

Triple = tuple[Hashable, Hashable, Mapping[str, int]]


def ranking_from_value(value: Any) -> dict[str, int] | None:
    """{field: rank} from a stored ranking answer ([{"value", "rank"}] or a best-first list)."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return {v: i + 1 for i, v in enumerate(value)}
    if not isinstance(value, list) or not value:
        return None
    out: dict[str, int] = {}
    for item in value:
        if not isinstance(item, Mapping) or "value" not in item or "rank" not in item:
            return None
        rank = item["rank"]
        if isinstance(rank, bool) or not isinstance(rank, int):
            return None
        out[str(item["value"])] = rank
    return out


def _order(ranking: Mapping[str, int], a: str, b: str) -> int | None:
    """-1: a before b, 0: tie, 1: b before a, None: one of them is not ranked."""
    ra, rb = ranking.get(a), ranking.get(b)
    if ra is None or rb is None:
        return None
    return (ra > rb) - (ra < rb)


def ranking_agreement(x: Mapping[str, int], y: Mapping[str, int]) -> float | None:
    """Share of the field pairs ranked by both that two rankings order the same way."""
    fields = sorted(set(x) & set(y))
    pairs = list(combinations(fields, 2))
    if not pairs:
        return None
    same = sum(1 for a, b in pairs if _order(x, a, b) == _order(y, a, b))
    return same / len(pairs)


def _by_record(triples: Iterable[Triple]) -> dict[Hashable, dict[Hashable, Mapping[str, int]]]:
    records: dict[Hashable, dict[Hashable, Mapping[str, int]]] = defaultdict(dict)
    for record, annotator, ranking in triples:
        if ranking:
            records[record][annotator] = ranking
    return records


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
        scores = []
        for a, b in combinations(sorted(by_annotator, key=str), 2):
            score = ranking_agreement(by_annotator[a], by_annotator[b])
            if score is None:
                continue
            acc = self.pair_sums[(a, b)]
            acc[0] += score
            acc[1] += 1
            scores.append(score)
        for field in sorted({f for ranking in by_annotator.values() for f in ranking}):
            counts: dict[int, int] = defaultdict(int)
            for ranking in by_annotator.values():
                if field in ranking:
                    counts[ranking[field]] += 1
            if sum(counts.values()) >= 2:
                self.unit_counts.append(dict(counts))
        if scores and (agreement := sum(scores) / len(scores)) < 1.0:
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
        import numpy as np
        import krippendorff

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
    acc = AgreementAccumulator(disagreement_limit=limit)
    for record, by in _by_record(triples).items():
        acc.add(record, by)
    return acc


def pairwise_agreement(triples: Iterable[Triple]) -> list[PairAgreement]:
    """Agreement of every pair of annotators over the records they both ranked (sorted by a, b)."""
    return _accumulate(triples).pairs()


def overall_agreement(pairs: Sequence[PairAgreement]) -> float | None:
    """Mean pairwise agreement weighted by the records each pair shares."""
    n = sum(p.records for p in pairs)
    return sum(p.agreement * p.records for p in pairs) / n if n else None


def krippendorff_alpha_ordinal(triples: Iterable[Triple]) -> float | None:
    """Krippendorff's alpha, ordinal level, units = (record, field), values = ranks.

    None when it is undefined: no record ranked by two annotators, or a single rank value in all
    the data (no variation to disagree about).
    """
    return _accumulate(triples).alpha()


def record_disagreements(triples: Iterable[Triple], *, limit: int | None = 50) -> list[RecordDisagreement]:
    """Records with at least two annotators whose rankings differ, lowest agreement first."""
    return _accumulate(triples, limit=limit).worst()


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0


# --- one pass over a dataset's submitted responses ----------------------------------------------

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


def dataset_quality(dataset, *, disagreement_limit: int = 50) -> DatasetQuality:
    """Per-annotator counts and time, agreement and alpha on the first ranking question.

    Three queries whatever the size: counts per (user, status), one streamed pass over the
    submitted responses (values_list: record, user, values, duration), and the usernames.
    """
    from django.contrib.auth import get_user_model
    from django.db.models import Count

    from .models import Question, Response

    question = (dataset.questions.filter(kind=Question.Kind.RANKING).order_by("position", "id")
                .values_list("name", flat=True).first())
    stats: dict[int, AnnotatorStats] = {}
    for user_id, status, n in (Response.objects.filter(dataset=dataset).values_list("user_id", "status")
                               .annotate(n=Count("id")).order_by()):
        row = stats.setdefault(user_id, AnnotatorStats(user_id=user_id, username=""))
        setattr(row, status, n)
    durations: dict[int, list[float]] = defaultdict(list)
    acc = AgreementAccumulator(disagreement_limit=disagreement_limit)
    current, by_annotator = None, {}
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
            current, by_annotator = record_id, {}
        ranking = ranking_from_value((values or {}).get(question))
        if ranking:
            by_annotator[user_id] = ranking
    if by_annotator:
        acc.add(current, by_annotator)
    names = dict(get_user_model().objects.filter(pk__in=list(stats)).values_list("pk", "username"))
    pairs = acc.pairs()
    per_user: dict[int, list[float]] = defaultdict(lambda: [0.0, 0])
    for p in pairs:
        for who in (p.a, p.b):
            per_user[who][0] += p.agreement * p.records
            per_user[who][1] += p.records
    for user_id, row in stats.items():
        row.username = names.get(user_id, f"user {user_id}")
        row.median_seconds = median(durations.get(user_id, []))
        total, n = per_user.get(user_id, (0.0, 0))
        row.agreement = total / n if n else None
    return DatasetQuality(
        question=question,
        annotators=sorted(stats.values(), key=lambda r: (-r.submitted, r.username)),
        pairs=pairs, overall_agreement=overall_agreement(pairs), alpha=acc.alpha(),
        disagreements=acc.worst(), records_with_overlap=acc.records_with_overlap)
