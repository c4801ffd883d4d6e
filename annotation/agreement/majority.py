"""Verdicts against a majority: leave-one-out agreement of annotators, a judge's agreement with the
annotators, and Krippendorff's alpha over pair verdicts (a tie a category of its own).

Input: units (rankings.Unit) -> {annotator: label}. Scoring rules, chosen by `scoring_rule` (SCORING_RULES); the
default is "preflab":

* "preflab" (default): the **majority** of a set of labels is the most frequent label; when two or more labels
  share the top count there is no majority: it is *tied* (None). Agreement with a majority scores 1 when the label
  equals it, 0 when it differs (a tie against a preference is 0), and **0.5 when the majority is tied** (the
  expected score of breaking the tie at random).
* "zero_one" and "absolute": AlpacaEval's rules, by its names (alpaca_eval 0.6.6, ``metrics/helpers.py``,
  used by ``analyze.Analyzer``). A label is AlpacaEval's preference (FIRST 1, TIE 1.5, SECOND 2). A tied majority
  is broken deterministically as AlpacaEval's ``_random_mode`` breaks it: the tied labels in ascending order of
  their encoding (for "zero_one" a tie is encoded 0, so it sorts first; for "absolute" 1.5, in the middle), and
  the one at position ``numpy.random.RandomState(123).permutation(k)[0]`` of the k tied labels (pandas' sample with
  random_state=123): of two the second, of three the first. "zero_one" scores 1 for equal labels and 0 otherwise;
  "absolute" scores 1 - |difference of the encodings|: equal 1, **a tie against a preference 0.5**, opposite
  preferences 0 (AlpacaEval's default rule).

Under every rule cases whose majority was tied are counted in `tied`.
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
    return rule_majority(Counter(labels), "preflab")[0]


SCORING_RULES = ("preflab", "zero_one", "absolute")
DEFAULT_SCORING_RULE = "preflab"
_ENCODING = {"zero_one": {TIE: 0.0, FIRST: 1.0, SECOND: 2.0}, "absolute": {FIRST: 1.0, TIE: 1.5, SECOND: 2.0}}


def check_scoring_rule(rule: str) -> str:
    if rule not in SCORING_RULES:
        raise ValueError(f"scoring_rule must be one of {', '.join(SCORING_RULES)}; got {rule!r}")
    return rule


def _top_labels(counts: Mapping[int, int]) -> list[int]:
    best = max((n for n in counts.values() if n > 0), default=0)
    return [label for label, n in counts.items() if n == best and n > 0]


def break_tied_majority(labels: Iterable[int], rule: str) -> int:
    """The label AlpacaEval's `_random_mode` keeps among tied `labels` under `rule` (see the module doc)."""
    import numpy as np

    ordered = sorted(set(labels), key=_ENCODING[rule].__getitem__)
    return ordered[int(np.random.RandomState(123).permutation(len(ordered))[0])]


def rule_majority(counts: Mapping[int, int], rule: str = DEFAULT_SCORING_RULE) -> tuple[int | None, bool]:
    """(majority, tied) of label counts under `rule`: preflab leaves a tied majority None, AlpacaEval's rules
    break it. (None, False) when there is no label."""
    top = _top_labels(counts)
    if len(top) <= 1:
        return (top[0] if top else None), False
    return (None if rule == "preflab" else break_tied_majority(top, rule)), True


def agreement_score(label: int, majority: int | None, rule: str = DEFAULT_SCORING_RULE) -> float:
    """The score of `label` against `majority` under `rule` (see the module doc); None majority = tied (preflab)."""
    if majority is None:
        return 0.5
    if rule == "absolute":
        encode = _ENCODING["absolute"]
        return 1.0 - abs(encode[label] - encode[majority])
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
                            others: Iterable[Hashable] | None = None, held_out: Iterable[Hashable] | None = None,
                            scoring_rule: str = DEFAULT_SCORING_RULE) -> LeaveOneOut:
    """Each annotator against the majority of the OTHER annotators of the same unit (AlpacaEval's
    "human agreement": hold one annotator out, compare with the mode of the rest).

    Only units with at least one other annotator count. When the others' majority is tied the case
    scores 0.5 and is counted in `tied`. `others`, when given, restricts who may form the majority
    (e.g. only human annotators), while every annotator is still held out in turn; `held_out`, when given,
    restricts whose cases enter `overall` (e.g. humans: the human figure is over humans only), while
    `per_annotator` still has every annotator. `scoring_rule`: see the module doc.
    """
    check_scoring_rule(scoring_rule)
    allowed = who_counts(others)
    counted = who_counts(held_out)
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
                majority, tied = rule_majority(counts, scoring_rule)
                score = agreement_score(label, majority, scoring_rule)
                if counted is None or annotator in counted:
                    overall.add(score, tied=tied)
                per_annotator[annotator].add(score, tied=tied)
            if own:
                counts[label] += 1
    return LeaveOneOut(overall, dict(per_annotator))


def agreement_with_majority(labels_of: Mapping[Unit, int], units: Mapping[Unit, Mapping[Hashable, int]], *,
                            voters: Iterable[Hashable] | None = None,
                            scoring_rule: str = DEFAULT_SCORING_RULE) -> Rate:
    """Agreement of one outside rater (a judge) with the majority of the annotators of each unit.

    `labels_of` are the rater's labels per unit; `voters` restricts the majority to some annotators
    (e.g. humans only). Units without any voter are skipped; a tied majority scores 0.5 (`tied`).
    """
    check_scoring_rule(scoring_rule)
    allowed = who_counts(voters)
    rate = Rate()
    for unit, label in labels_of.items():
        votes = [lab for who, lab in units.get(unit, {}).items() if allowed is None or who in allowed]
        if not votes:
            continue
        majority, tied = rule_majority(Counter(votes), scoring_rule)
        rate.add(agreement_score(label, majority, scoring_rule), tied=tied)
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
