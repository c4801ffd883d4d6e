"""Agreement scoring rules: AlpacaEval's zero_one and absolute rules, checked against alpaca_eval's own
Analyzer on generated annotation sets with ties; human leave-one-out over humans only; Wilson intervals."""
import itertools

import numpy as np
import pandas as pd
import pytest

from annotation.agreement import (
    FIRST,
    SECOND,
    TIE,
    agreement_report,
    leave_one_out_agreement,
    wilson_interval,
)
from annotation.agreement.majority import agreement_with_majority, break_tied_majority
from annotation.agreement.report import AnnotationRow

analyze = pytest.importorskip("alpaca_eval.analyze")
helpers = pytest.importorskip("alpaca_eval.metrics.helpers")

PREFERENCE = {FIRST: 1.0, TIE: 1.5, SECOND: 2.0}


def _units(seed: int, n_units: int = 150, n_annotators: int = 4, p_tie: float = 0.25):
    rng = np.random.default_rng(seed)
    units = {}
    for u in range(n_units):
        p_second = rng.uniform(0.1, 0.9)
        labels = {}
        for a in range(n_annotators):
            r = rng.random()
            labels[f"a{a}"] = TIE if r < p_tie else (SECOND if rng.random() < p_second else FIRST)
        units[(u, ("response-1", "response-2"))] = labels
    return units


def _alpaca_leave_one_out(units, rule: str) -> float:
    rows = [{"instruction": f"i{record}", "output_1": "o1", "output_2": "o2", "preference": PREFERENCE[label]}
            for (record, _pair), labels in units.items() for label in labels.values()]
    df = pd.DataFrame(rows)
    analyzer = analyze.Analyzer(gold_crossannotations=df.copy(), gold_annotations=df.copy(), n_annotators=4, scoring_rule=rule)
    return float(analyzer.agreement_of_annotations(df, annotations_2=None, n_majority_vote_1=1,
                                                   n_majority_vote_2=None)["score"])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("rule", ["zero_one", "absolute"])
def test_leave_one_out_matches_alpaca_eval(rule, seed):
    units = _units(seed)
    ours = leave_one_out_agreement(units, scoring_rule=rule).overall.value
    theirs = _alpaca_leave_one_out(units, rule)
    print(f"{rule} seed {seed}: preflab {ours:.6f} alpaca_eval {theirs:.6f}")
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_the_rules_differ_on_data_with_ties_and_preflab_stays_the_default():
    units = _units(7)
    preflab = leave_one_out_agreement(units).overall.value
    assert preflab == leave_one_out_agreement(units, scoring_rule="preflab").overall.value
    absolute = leave_one_out_agreement(units, scoring_rule="absolute").overall.value
    assert abs(absolute - preflab) > 0.01  # ties against a preference score 0.5 under absolute
    with pytest.raises(ValueError, match="scoring_rule"):
        leave_one_out_agreement(units, scoring_rule="median")


@pytest.mark.parametrize("rule", ["zero_one", "absolute"])
def test_tied_majority_broken_as_alpaca_evals_random_mode(rule):
    encode = {"zero_one": {TIE: 0.0, FIRST: 1.0, SECOND: 2.0}, "absolute": PREFERENCE}[rule]
    decode = {v: k for k, v in encode.items()}
    for k in (2, 3):
        for tied in itertools.combinations([FIRST, TIE, SECOND], k):
            votes = pd.Series([encode[label] for label in tied for _ in range(2)])
            assert break_tied_majority(tied, rule) == decode[helpers._random_mode(votes)], (rule, tied)


def test_judge_agreement_under_absolute_matches_alpaca_eval_score():
    units = _units(3, n_annotators=3)
    rng = np.random.default_rng(9)
    judge = {unit: [FIRST, TIE, SECOND][rng.integers(3)] for unit in units}
    rate = agreement_with_majority(judge, units, scoring_rule="absolute")
    scoring = helpers.SCORING_RULES["absolute"]()
    majorities = [scoring.bayes_estimator(pd.Series([PREFERENCE[v] for v in units[u].values()])) for u in units]
    theirs = scoring.score(pd.Series([PREFERENCE[judge[u]] for u in units]), pd.Series(majorities))
    assert rate.value == pytest.approx(theirs, abs=1e-9)


def test_human_leave_one_out_is_over_humans_only():
    rows = []
    for record in range(6):
        for who, best in (("h1", "a"), ("h2", "a"), ("sim", "b")):
            worst = "b" if best == "a" else "a"
            rows.append(AnnotationRow(record=record, annotator=who, ranks={best: 1, worst: 2}))
    report = agreement_report(rows, ["a", "b"], humans={"h1", "h2"})
    assert report.human_leave_one_out.overall.value == pytest.approx(1.0) and report.human_leave_one_out.overall.n == 12
    assert report.human_leave_one_out.per_annotator["sim"].value == 0.0  # the simulated row is still shown
    assert report.leave_one_out.overall.value < 1.0  # the all-annotators figure includes the simulated one


def test_wilson_interval():
    low, high = wilson_interval(0.8, 50)
    assert low == pytest.approx(0.6696, abs=1e-3) and high == pytest.approx(0.8876, abs=1e-3)
    assert wilson_interval(None, 0) == (None, None)
    assert wilson_interval(1.0, 10)[1] == pytest.approx(1.0)
