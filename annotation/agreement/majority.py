"""Verdicts against a majority: leave-one-out agreement of annotators, a judge's agreement with the
annotators, and Krippendorff's alpha over pair verdicts (a tie a category of its own).

Input: units (rankings.Unit) -> {annotator: label}. Tie rules (the same everywhere):
* the **majority** of a set of labels is the most frequent label; when two or more labels share
  the top count there is no majority: it is *tied* (None);
* agreement with a majority scores 1 when the label equals it, 0 when it differs, and **0.5 when
  the majority is tied** (the expected score of breaking the tie at random); such cases are
  counted in `tied`.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

from .rankings import FIRST, SECOND, TIE, Unit
from .rates import Rate


def majority_label(labels: Iterable[int]) -> int | None:
    """The most frequent label, or None when the top count is shared (a tied majority) or there are none."""
    counts = Counter(labels).most_common()
    if not counts:
        return None
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0]


def _majority_of_counts(counts: Mapping[int, int]) -> int | None:
    """majority_label over label counts (zero counts ignored): None when the top count is shared."""
    best, best_n, shared = None, 0, False
    for label, n in counts.items():
        if n > best_n:
            best, best_n, shared = label, n, False
        elif n == best_n and n > 0:
            shared = True
    return None if shared or best_n == 0 else best


def agreement_score(label: int, majority: int | None) -> float:
    """1 if label equals the majority, 0 if not, 0.5 when the majority is tied (see module doc)."""
    if majority is None:
        return 0.5
    return 1.0 if label == majority else 0.0


def who_counts(who):
    """A membership test for "these annotators": None stays None (= everyone); sets and objects
    with __contains__ are used as they are; lists and tuples become sets."""
    if who is None or isinstance(who, (set, frozenset)) or (hasattr(who, "__contains__") and not isinstance(who, (list, tuple))):
        return who
    return set(who)


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
    allowed = who_counts(others)
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


def agreement_with_majority(labels_of: Mapping[Unit, int], units: Mapping[Unit, Mapping[Hashable, int]], *,
                            voters: Iterable[Hashable] | None = None) -> Rate:
    """Agreement of one outside rater (a judge) with the majority of the annotators of each unit.

    `labels_of` are the rater's labels per unit; `voters` restricts the majority to some annotators
    (e.g. humans only). Units without any voter are skipped; a tied majority scores 0.5 (`tied`).
    """
    allowed = who_counts(voters)
    rate = Rate()
    for unit, label in labels_of.items():
        votes = [lab for who, lab in units.get(unit, {}).items() if allowed is None or who in allowed]
        if not votes:
            continue
        majority = majority_label(votes)
        rate.add(agreement_score(label, majority), tied=majority is None)
    return rate


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
