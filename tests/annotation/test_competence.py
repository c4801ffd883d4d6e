"""Annotator competence (one-coin Dawid–Skene by EM): a case computed by hand, gold anchoring, the same
fit as crowd-kit's OneCoinDawidSkene on the same votes, and the competence-weighted vote against the
majority when a third of the annotators answer at random."""
import random

import pytest

from annotation.agreement.competence import one_coin_dawid_skene
from annotation.agreement.majority import majority_label
from annotation.agreement.rankings import FIRST, SECOND, TIE

AB = ("a", "b")


def test_one_round_by_hand():
    """u1: A, B say FIRST, C says SECOND; u2: all say SECOND. Start from the vote shares
    (u1 2/3 FIRST, u2 all SECOND): competences A = B = (2/3 + 1)/2 = 5/6, C = (1/3 + 1)/2 = 2/3, priors
    FIRST 1/3, SECOND 2/3. Then u1: P(FIRST) ∝ 1/3 · 5/6 · 5/6 · (1 - 2/3) = 25/324 and
    P(SECOND) ∝ 2/3 · 1/6 · 1/6 · 2/3 = 4/324, so P(FIRST) = 25/29."""
    units = {(1, AB): {"A": FIRST, "B": FIRST, "C": SECOND}, (2, AB): {"A": SECOND, "B": SECOND, "C": SECOND}}
    fit = one_coin_dawid_skene(units, max_iter=1)
    assert fit.competence == pytest.approx({"A": 5 / 6, "B": 5 / 6, "C": 2 / 3})
    assert fit.labels == (FIRST, SECOND)
    assert fit.posterior[(1, AB)] == pytest.approx((25 / 29, 4 / 29))
    assert fit.weighted_label((1, AB)) == FIRST and fit.weighted_agreement((1, AB)) == pytest.approx(25 / 29)
    assert fit.votes == {"A": 2, "B": 2, "C": 2}


def test_ties_are_a_label_and_an_even_split_has_no_winner():
    units = {(1, AB): {"A": TIE, "B": FIRST}, (2, AB): {"A": FIRST, "B": TIE}}
    fit = one_coin_dawid_skene(units)
    assert fit.labels == (TIE, FIRST)
    assert fit.competence["A"] == pytest.approx(fit.competence["B"])
    assert fit.weighted_label((1, AB)) is None and fit.weighted_agreement((1, AB)) == pytest.approx(0.5)
    # a third unit where both say FIRST makes FIRST the likelier label of the split units
    fit = one_coin_dawid_skene({**units, (3, AB): {"A": FIRST, "B": FIRST}})
    assert fit.weighted_label((1, AB)) == FIRST
    assert one_coin_dawid_skene({}).competence == {}


def test_gold_anchors_the_competences():
    """Two annotators always disagree; without gold the data cannot say who is right (equal competence),
    with three gold units where X is right, X is competent and Y is not, on the other units too."""
    units = {(i, AB): {"X": FIRST, "Y": SECOND} for i in range(10)}
    blind = one_coin_dawid_skene(units)
    assert blind.competence["X"] == pytest.approx(blind.competence["Y"])
    gold = {(i, AB): FIRST for i in range(3)}
    fit = one_coin_dawid_skene(units, gold=gold)
    assert fit.competence["X"] > 0.99 and fit.competence["Y"] < 0.01
    assert fit.gold_votes == {"X": 3, "Y": 3}
    assert all(fit.weighted_label((i, AB)) == FIRST for i in range(10))
    assert fit.posterior[(0, AB)] == (1.0, 0.0)


def _campaign(seed: int, *, n_units=1000, per_unit=5, n_good=8, n_random=4, good=0.8):
    """Synthetic votes: a third of the annotators answer at random, the others are right `good` of the time."""
    rng = random.Random(seed)
    annotators = [f"good{i}" for i in range(n_good)] + [f"random{i}" for i in range(n_random)]
    truth, units = {}, {}
    for i in range(n_units):
        unit, z = (i, AB), rng.choice((FIRST, SECOND))
        truth[unit] = z
        units[unit] = {}
        for a in rng.sample(annotators, per_unit):
            p = good if a.startswith("good") else 0.5
            units[unit][a] = z if rng.random() < p else (SECOND if z == FIRST else FIRST)
    return truth, units


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_weighted_vote_beats_the_majority_when_a_third_answer_at_random(seed):
    truth, units = _campaign(seed)
    fit = one_coin_dawid_skene(units)
    majority = sum(majority_label(v.values()) == truth[u] for u, v in units.items()) / len(units)
    weighted = sum(fit.weighted_label(u) == truth[u] for u in units) / len(units)
    print(f"seed {seed}: majority {majority:.3f}, competence-weighted {weighted:.3f}")
    assert weighted >= majority + 0.025
    assert all(fit.competence[f"random{i}"] < 0.6 for i in range(4))
    assert all(fit.competence[f"good{i}"] > 0.7 for i in range(8))


@pytest.mark.filterwarnings("ignore:The (inplace|copy) keyword:Warning")  # crowd-kit 1.4.2 on pandas 3
def test_same_fit_as_crowd_kit():
    """crowd-kit's OneCoinDawidSkene (the reference implementation) on the same votes: the same
    competences and the same labels. crowd-kit stops on its evidence lower bound, preflab on the
    competences: crowd-kit runs all its 80 rounds here (tol=-1), preflab to convergence."""
    pd = pytest.importorskip("pandas")
    crowdkit = pytest.importorskip("crowdkit.aggregation")
    truth, units = _campaign(5, n_units=150)
    ours = one_coin_dawid_skene(units, max_iter=1000, tol=1e-10)
    assert ours.converged
    df = pd.DataFrame([{"task": u[0], "worker": a, "label": label} for u, votes in units.items()
                       for a, label in votes.items()])
    ref = crowdkit.OneCoinDawidSkene(n_iter=80, tol=-1).fit(df)
    for worker, skill in ref.skills_.items():
        assert ours.competence[worker] == pytest.approx(skill, abs=1e-6), worker
    labels = ref.labels_.to_dict()
    assert sum(ours.weighted_label((t, AB)) == label for t, label in labels.items()) == len(labels)


def test_the_vote_of_one_unit_is_the_fits_posterior_and_unknown_voters_count_as_the_median():
    truth, units = _campaign(9, n_units=200)
    fit = one_coin_dawid_skene(units)
    for unit in list(units)[:30]:
        label, probability = fit.vote(list(units[unit].items()))
        assert label == fit.weighted_label(unit) and probability == pytest.approx(fit.weighted_agreement(unit))
    # nothing fitted: every vote counts the same (the plain majority)
    empty = one_coin_dawid_skene({})
    assert empty.vote([("x", FIRST), ("y", FIRST), ("z", SECOND)])[0] == FIRST
    assert empty.vote([("x", FIRST), ("y", SECOND)])[0] is None
    assert empty.vote([("x", SECOND)]) == (SECOND, 1.0)
