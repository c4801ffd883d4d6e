"""Chatbot Arena's Bradley–Terry ratings (Chiang et al. 2024, "Chatbot Arena: An Open Platform for Evaluating LLMs
by Human Preference", and its leaderboard notebook's ``compute_mle_elo`` / ``get_bootstrap_result``), in numpy/scipy.

The model: P(a beats b) = 1 / (1 + base ** ((R_b - R_a) / scale)), fitted by logistic regression over battles
(model_a, model_b, winner), without an intercept. Conventions, as Chatbot Arena's notebook has them:

* every battle counts twice: a win is two wins for the winner, a tie is one win each way (the notebook duplicates
  the battle rows and labels one copy of a tie for model_a and the other for model_b), so a tie is half a win;
* ratings are on the Elo scale: R = init_rating + scale * beta with beta in log-base units (scale 400, base 10:
  a 400-point gap is 10:1 odds);
* the scale has no origin of its own, so one model is the anchor and sits at init_rating (1000): by default the
  first model to appear in the battles, or the one named. (Chatbot Arena pins one of its models, e.g. Mixtral at
  1114; here the anchor is pinned at init_rating.) The anchor's interval is therefore a point: every interval says
  how well a model is placed relative to the anchor.
* the penalty: Chatbot Arena fits without one (scikit-learn, penalty=None). Here a tiny L2 penalty,
  ``l2 / 2 * |beta|^2`` with l2 = 1e-6 (scikit-learn's C = 1 / l2), keeps every rating finite: a model that never
  lost (or never won) has no finite maximum-likelihood rating; it gets a large, finite one, no interval, and a
  note. On data with finite maximum-likelihood ratings the penalty moves ratings by far less than 0.01 points.
* confidence intervals: the battles are resampled with replacement (`bootstrap` times, seeded), the model refitted
  and anchored each time, and the 2.5 and 97.5 percentiles of each model's ratings taken (a resample without a
  model, or where it is cut off from the anchor, says nothing about it and is skipped for it).

A comparison graph that falls apart into groups with no battle between them has no common scale: that is a
ValueError naming the groups.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

METHOD = "chatbot_arena_bradley_terry"
L2 = 1e-6
WINNERS = {"model_a": 1.0, "a": 1.0, "model_b": 0.0, "b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}


@dataclass(frozen=True)
class ArenaResult:
    """Ratings, best first: rows of {model, rating, ci_low, ci_high, battles, wins, losses, ties}; win_matrix[a][b]
    is the predicted probability that a beats b (None on the diagonal)."""

    rows: list[dict[str, Any]]
    win_matrix: dict[str, dict[str, float | None]]
    anchor: str
    scale: float = 400
    base: float = 10
    init_rating: float = 1000
    l2: float = L2
    n_battles: int = 0
    bootstrap: int = 0
    seed: int | None = None
    ci_method: str = "bootstrap-battles-percentile-2.5-97.5"
    method: str = METHOD
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Battles:
    models: list[str]  # in order of first appearance
    a: np.ndarray  # model indices
    b: np.ndarray
    score: np.ndarray  # model_a's score: 1, 0.5 (tie) or 0


def _field(battle: Any, name: str) -> Any:
    return battle.get(name) if isinstance(battle, Mapping) else getattr(battle, name, None)


def _read_battles(battles: Iterable[Any]) -> _Battles:
    index: dict[str, int] = {}
    a, b, score = [], [], []
    for i, battle in enumerate(battles):
        model_a, model_b, winner = (_field(battle, k) for k in ("model_a", "model_b", "winner"))
        if not isinstance(model_a, str) or not isinstance(model_b, str) or not model_a or not model_b:
            raise ValueError(f"battles[{i}]: needs model_a and model_b (non-empty strings)")
        if model_a == model_b:
            raise ValueError(f"battles[{i}]: {model_a!r} against itself")
        if winner not in WINNERS:
            raise ValueError(f"battles[{i}].winner: {winner!r} is not one of {', '.join(map(repr, WINNERS))}")
        a.append(index.setdefault(model_a, len(index)))
        b.append(index.setdefault(model_b, len(index)))
        score.append(WINNERS[winner])
    if len(index) < 2:
        raise ValueError(f"Bradley–Terry ratings need battles between at least 2 models; got {len(index)}")
    return _Battles(list(index), np.array(a), np.array(b), np.array(score))


def _win_weights(data: _Battles, counts: np.ndarray | None = None) -> np.ndarray:
    """W[i, j]: how many times i beat j in Chatbot Arena's doubled rows (2 per win, 1 each way per tie)."""
    m = len(data.models)
    c = np.ones(len(data.a)) if counts is None else counts
    flat_ab, flat_ba = data.a * m + data.b, data.b * m + data.a
    w = np.bincount(flat_ab, weights=2 * data.score * c, minlength=m * m)
    w += np.bincount(flat_ba, weights=2 * (1 - data.score) * c, minlength=m * m)
    return w.reshape(m, m)


def _fit(W: np.ndarray, base: float, l2: float) -> np.ndarray:
    """beta (log-base units) minimising sum_ij W_ij * log(1 + base^-(beta_i - beta_j)) + l2 / 2 * |beta|^2, by
    Newton's method with a backtracking line search."""
    log_base, N = math.log(base), W + W.T
    beta = np.zeros(len(W))

    def objective(x):
        return float((W * np.logaddexp(0, -log_base * (x[:, None] - x[None, :]))).sum() + l2 / 2 * x @ x)

    value = objective(beta)
    for _ in range(200):
        P = expit(log_base * (beta[:, None] - beta[None, :]))
        grad = log_base * ((N * P).sum(1) - W.sum(1)) + l2 * beta
        V = log_base ** 2 * N * P * (1 - P)
        hess = np.diag(V.sum(1) + l2) - V
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-10 and objective(beta - t * step) > value - 1e-4 * t * (grad @ step):
            t /= 2
        beta = beta - t * step
        value = objective(beta)
        if np.abs(t * step).max() < 1e-11:
            break
    return beta


def _groups(N: np.ndarray, connection: str) -> list[np.ndarray]:
    n, labels = connected_components(csr_matrix(N > 0), directed=True, connection=connection)
    return [np.flatnonzero(labels == k) for k in range(n)]


def _anchored(beta: np.ndarray, anchor: int, scale: float, init_rating: float) -> np.ndarray:
    return init_rating + scale * (beta - beta[anchor])


def bradley_terry(battles: Iterable[Any], *, anchor: str | None = None, scale: float = 400, base: float = 10,
                  init_rating: float = 1000, l2: float = L2) -> dict[str, float]:
    """Chatbot Arena's Bradley–Terry ratings on the Elo scale, {model: rating}, the anchor at init_rating.

    `battles` are records (mappings or objects) with model_a, model_b and winner: "model_a"/"a", "model_b"/"b",
    "tie" or "tie (bothbad)". See the module doc for the conventions.
    """
    data = _read_battles(battles)
    anchor_index = _anchor_index(data, anchor)
    W = _win_weights(data)
    _require_connected(data, W)
    ratings = _anchored(_fit(W, base, l2), anchor_index, scale, init_rating)
    return dict(zip(data.models, map(float, ratings), strict=True))


def _anchor_index(data: _Battles, anchor: str | None) -> int:
    if anchor is None:
        return 0
    if anchor not in data.models:
        raise ValueError(f"anchor {anchor!r} is in no battle; models: {', '.join(data.models)}")
    return data.models.index(anchor)


def _require_connected(data: _Battles, W: np.ndarray) -> None:
    groups = _groups(W + W.T, "weak")
    if len(groups) > 1:
        shown = "; ".join(", ".join(data.models[i] for i in g) for g in groups)
        raise ValueError(f"the battles fall into {len(groups)} groups with no battle between them, so their ratings "
                         f"share no scale: {shown}")


def _bootstrap(data: _Battles, n: int, seed: int, anchor: int, scale, base, init_rating, l2) -> np.ndarray:
    """(n, models) anchored ratings of battle resamples; NaN where a model is absent or cut off from the anchor."""
    rng = np.random.default_rng(seed)
    out = np.full((n, len(data.models)), np.nan)
    for r in range(n):
        counts = np.bincount(rng.integers(0, len(data.a), len(data.a)), minlength=len(data.a))
        W = _win_weights(data, counts)
        linked = next(g for g in _groups(W + W.T, "weak") if anchor in g)
        out[r, linked] = _anchored(_fit(W, base, l2), anchor, scale, init_rating)[linked]
    return out


def _outside_anchor_group(data: _Battles, W: np.ndarray, anchor: int, l2: float) -> tuple[set[int], list[str]]:
    """Models whose rating relative to the anchor has no finite maximum-likelihood value (the win graph is not
    strongly connected: some group never lost, or never won, against another), and a note naming the groups."""
    groups = _groups(W, "strong")
    if len(groups) == 1:
        return set(), []
    shown = "; ".join(", ".join(data.models[i] for i in g) for g in groups)
    outside = {int(i) for g in groups if anchor not in g for i in g}
    return outside, [f"some models never lost (or never won) against another group, so the maximum-likelihood "
                     f"ratings are not finite: {shown}. The gaps between these groups come from the tiny L2 penalty "
                     f"(l2={l2:g}) and only mean 'far apart'; models outside the anchor's group get no interval."]


def _counts(data: _Battles, i: int) -> dict[str, int]:
    as_a, as_b = data.a == i, data.b == i
    return {"battles": int(as_a.sum() + as_b.sum()),
            "wins": int(((data.score == 1) & as_a).sum() + ((data.score == 0) & as_b).sum()),
            "losses": int(((data.score == 0) & as_a).sum() + ((data.score == 1) & as_b).sum()),
            "ties": int(((data.score == 0.5) & (as_a | as_b)).sum())}


def win_probability(rating_a: float, rating_b: float, *, scale: float = 400, base: float = 10) -> float:
    """P(a beats b) under the Bradley–Terry model on this Elo scale."""
    return 1.0 / (1.0 + base ** ((rating_b - rating_a) / scale))


def predicted_win_matrix(ratings: Mapping[str, float], *, scale: float = 400,
                         base: float = 10) -> dict[str, dict[str, float | None]]:
    """{a: {b: P(a beats b)}} for every pair of rated models, None on the diagonal (as Chatbot Arena's
    predict_win_rate leaves it empty)."""
    return {a: {b: (None if a == b else win_probability(ra, rb, scale=scale, base=base)) for b, rb in ratings.items()}
            for a, ra in ratings.items()}


def arena_ratings(battles: Iterable[Any], *, bootstrap: int = 200, seed: int = 0, anchor: str | None = None,
                  scale: float = 400, base: float = 10, init_rating: float = 1000, l2: float = L2) -> ArenaResult:
    """Chatbot Arena's Bradley–Terry ratings with bootstrap 95% intervals and predicted win probabilities.

    Each row's rating is the fit on all battles; ci_low/ci_high are the 2.5/97.5 percentiles over `bootstrap`
    resamples of the battles (seeded by `seed`; None without resamples). Rows are sorted by rating, best first.
    """
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise ValueError(f"bootstrap must be a non-negative integer; got {bootstrap!r}")
    data = _read_battles(list(battles))
    anchor_index = _anchor_index(data, anchor)
    W = _win_weights(data)
    _require_connected(data, W)
    ratings = _anchored(_fit(W, base, l2), anchor_index, scale, init_rating)
    samples = _bootstrap(data, bootstrap, seed, anchor_index, scale, base, init_rating, l2)
    outside, notes = _outside_anchor_group(data, W, anchor_index, l2)
    rows = []
    for i, model in enumerate(data.models):
        column = samples[:, i][~np.isnan(samples[:, i])]
        low, high = (np.percentile(column, [2.5, 97.5]) if len(column) and i not in outside else (None, None))
        rows.append({"model": model, "rating": float(ratings[i]),
                     "ci_low": None if low is None else float(low), "ci_high": None if high is None else float(high),
                     **_counts(data, i)})
    rows.sort(key=lambda row: (-row["rating"], row["model"]))
    by_model = {row["model"]: row["rating"] for row in rows}
    return ArenaResult(rows=rows, win_matrix=predicted_win_matrix(by_model, scale=scale, base=base),
                       anchor=data.models[anchor_index], scale=scale, base=base, init_rating=init_rating, l2=l2,
                       n_battles=len(data.a), bootstrap=bootstrap, seed=seed, notes=notes)
