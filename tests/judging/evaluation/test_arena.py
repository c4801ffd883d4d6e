"""Chatbot Arena's Bradley–Terry ratings on battles generated from known strengths: checked
against an independent fit (scikit-learn's LogisticRegression on the notebook's doubled design) to 0.01 Elo points,
and the bootstrap intervals' coverage of the true ratings.
"""
import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from judging.evaluation.arena import L2, arena_ratings, bradley_terry, predicted_win_matrix, win_probability

# true ratings, anchored: "m0" sits at 1000
TRUE = {"m0": 1000.0, "m1": 1150.0, "m2": 930.0, "m3": 1260.0, "m4": 1070.0, "m5": 850.0}
ELO_TOLERANCE = 0.01


def _battles(n: int, seed: int, tie_rate: float = 0.15, true=TRUE) -> list[dict]:
    """Random pairs; a tie with probability tie_rate, otherwise a win drawn so that a's expected score (a tie
    counting half) is the Bradley–Terry probability: the model Chatbot Arena's half-win convention fits."""
    rng = np.random.default_rng(seed)
    models = list(true)
    out = []
    for _ in range(n):
        a, b = rng.choice(len(models), 2, replace=False)
        p = win_probability(true[models[a]], true[models[b]])
        t = min(tie_rate, 2 * p, 2 * (1 - p))
        u = rng.random()
        winner = "tie" if u < t else ("model_a" if rng.random() < (p - t / 2) / (1 - t) else "model_b")
        out.append({"model_a": models[a], "model_b": models[b], "winner": winner})
    return out


def _sklearn_ratings(battles, C, anchor="m0"):
    """Chatbot Arena's compute_mle_elo: doubled rows, X = +-ln(10), a tie labelled once for each side."""
    models = list(dict.fromkeys(m for b in battles for m in (b["model_a"], b["model_b"])))
    rows = battles + battles
    X = np.zeros((len(rows), len(models)))
    y = np.zeros(len(rows))
    for i, battle in enumerate(rows):
        X[i, models.index(battle["model_a"])] = math.log(10)
        X[i, models.index(battle["model_b"])] = -math.log(10)
        y[i] = battle["winner"] == "model_a" or (battle["winner"] == "tie" and i < len(battles))
    fit = LogisticRegression(fit_intercept=False, C=C, tol=1e-12, max_iter=100000).fit(X, y)
    elo = 400 * fit.coef_[0]
    return {m: 1000 + elo[i] - elo[models.index(anchor)] for i, m in enumerate(models)}


def test_ratings_recover_the_true_order_and_match_sklearn():
    battles = _battles(3000, seed=1)
    ours = bradley_terry(battles, anchor="m0")
    assert sorted(ours, key=ours.get) == sorted(TRUE, key=TRUE.get)
    assert ours["m0"] == 1000
    theirs = _sklearn_ratings(battles, C=1 / L2)
    assert max(abs(ours[m] - theirs[m]) for m in TRUE) < ELO_TOLERANCE
    unpenalised = _sklearn_ratings(battles, C=1e12)  # Chatbot Arena fits with no penalty at all
    assert max(abs(ours[m] - unpenalised[m]) for m in TRUE) < ELO_TOLERANCE
    assert max(abs(ours[m] - TRUE[m]) for m in TRUE) < 60


def test_a_tie_counts_half_a_win_each_way():
    battles = ([{"model_a": "A", "model_b": "B", "winner": "model_a"}] * 3
               + [{"model_a": "B", "model_b": "A", "winner": "model_a"}]
               + [{"model_a": "A", "model_b": "B", "winner": "tie"}, {"model_a": "B", "model_b": "A", "winner": "b"}]
               + [{"model_a": "B", "model_b": "A", "winner": "tie (bothbad)"}])
    ratings = bradley_terry(battles)
    # A scored 3 + 1 + 0.5 + 0.5 = 5 of 7, so P(A beats B) = 5/7: a gap of 400 log10(5/2); A appears first: 1000
    assert ratings["A"] == 1000
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(5 / 2), abs=1e-3)
    result = arena_ratings(battles, bootstrap=0)
    assert result.rows[0] == {"model": "A", "rating": pytest.approx(ratings["A"]), "ci_low": None, "ci_high": None,
                              "battles": 7, "wins": 4, "losses": 1, "ties": 2}
    assert result.win_matrix["A"]["B"] == pytest.approx(5 / 7, abs=1e-6)


def test_anchor_choice_only_shifts_the_scale():
    battles = _battles(800, seed=2)
    first, other = bradley_terry(battles), bradley_terry(battles, anchor="m3")
    assert first[battles[0]["model_a"]] == 1000  # the default anchor: the first model to appear
    assert other["m3"] == 1000
    shift = {round(other[m] - first[m], 9) for m in TRUE}
    assert len(shift) == 1
    assert bradley_terry(battles, scale=200, init_rating=0)["m3"] == pytest.approx((first["m3"] - 1000) / 2)


def test_win_matrix_follows_the_elo_scale():
    matrix = predicted_win_matrix({"x": 1400.0, "y": 1000.0, "z": 1000.0})
    assert matrix["x"]["y"] == pytest.approx(10 / 11)  # 400 points is 10:1 odds
    assert matrix["y"]["z"] == 0.5 and matrix["x"]["x"] is None
    result = arena_ratings(_battles(600, seed=3), bootstrap=0)
    for a in TRUE:
        for b in TRUE:
            if a != b:
                assert result.win_matrix[a][b] + result.win_matrix[b][a] == pytest.approx(1)


def test_bootstrap_intervals_cover_the_true_ratings_at_about_their_nominal_rate():
    covered = total = 0
    widths = []
    for rep in range(12):
        result = arena_ratings(_battles(1200, seed=100 + rep), bootstrap=100, seed=rep, anchor="m0")
        assert result.ci_method.startswith("bootstrap-battles") and result.anchor == "m0"
        for row in result.rows:
            if row["model"] == "m0":
                assert row["ci_low"] == row["ci_high"] == 1000  # the anchor is pinned
                continue
            assert row["ci_low"] <= row["rating"] <= row["ci_high"]
            covered += row["ci_low"] <= TRUE[row["model"]] <= row["ci_high"]
            widths.append(row["ci_high"] - row["ci_low"])
            total += 1
    assert covered / total >= 0.85, (covered, total)
    assert 20 < np.median(widths) < 150


def test_bootstrap_is_seeded():
    battles = _battles(500, seed=4)
    one, same, other = (arena_ratings(battles, bootstrap=30, seed=s) for s in (7, 7, 8))
    assert one.rows == same.rows and one.rows != other.rows


def test_a_model_that_never_lost_stays_finite_with_a_note():
    battles = _battles(600, seed=5) + [{"model_a": "champ", "model_b": m, "winner": "model_a"} for m in TRUE] * 3
    result = arena_ratings(battles, bootstrap=20)
    top = result.rows[0]
    assert top["model"] == "champ" and math.isfinite(top["rating"]) and top["losses"] == 0
    assert top["ci_low"] is None and top["ci_high"] is None  # no interval for a rating the data cannot bound
    assert all(row["ci_low"] is not None for row in result.rows[1:])
    assert any("never lost" in note and "champ" in note for note in result.notes)
    others = {row["model"]: row["rating"] for row in result.rows if row["model"] != "champ"}
    alone = bradley_terry(_battles(600, seed=5), anchor=result.anchor)
    assert max(abs(others[m] - alone[m]) for m in TRUE) < 1.0  # the rest of the scale is unaffected
    assert arena_ratings(_battles(600, seed=5), bootstrap=0).notes == []


def test_disconnected_battles_and_bad_input_are_errors():
    apart = [{"model_a": "a", "model_b": "b", "winner": "tie"}, {"model_a": "c", "model_b": "d", "winner": "a"}]
    with pytest.raises(ValueError, match="2 groups with no battle between them.*: a, b; c, d"):
        arena_ratings(apart)
    with pytest.raises(ValueError, match="at least 2 models"):
        bradley_terry([])
    with pytest.raises(ValueError, match=r"battles\[0\].winner: 'draw' is not one of"):
        bradley_terry([{"model_a": "a", "model_b": "b", "winner": "draw"}])
    with pytest.raises(ValueError, match=r"battles\[0\]: 'a' against itself"):
        bradley_terry([{"model_a": "a", "model_b": "a", "winner": "tie"}])
    with pytest.raises(ValueError, match="anchor 'zz' is in no battle"):
        bradley_terry(apart[:1], anchor="zz")
