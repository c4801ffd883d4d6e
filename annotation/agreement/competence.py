"""Annotator competence without gold: the one-coin Dawid–Skene model, fitted by EM.

Input: units (rankings.Unit: one pair of fields of one record) -> {annotator: label}, labels FIRST,
SECOND or TIE as everywhere in this package; annotators may be humans, simulated annotators or judges
(any hashable key), so all three are scored the same way. Optionally `gold`: unit -> known label.

The model (Dawid & Skene 1979, with one parameter per annotator, as in Zhang et al. 2014's "one-coin"
variant and crowd-kit's OneCoinDawidSkene): every unit has one true label z from the K labels the
data uses (ties are a label of their own when anyone voted one); annotator j gives the true label with
probability p_j (their *competence*) and each other label with (1 - p_j) / (K - 1). Labels are drawn
from priors pi_k.

EM, starting from the vote shares of each unit (the majority vote, as crowd-kit starts):
  M-step  pi_k = mean over units of P(z = k);  p_j = mean over j's votes of P(z = j's label)
          (competences clipped to [EPS, 1 - EPS] so that a perfect or a useless annotator stays finite)
  E-step  log P(z = k | votes) = log pi_k + sum over the unit's votes of
          log p_j if the vote is k else log((1 - p_j) / (K - 1)),  then normalised.
Gold units keep P(z = gold) = 1 throughout, so they anchor the competences. Iterates until no
competence moves by more than `tol`, at most `max_iter` times.

The posterior of a unit is the **competence-weighted vote**: each vote counts with weight
log(p_j (K - 1) / (1 - p_j)), the log-odds of the annotator being right, so a random annotator
(p_j = 1/K) counts for nothing and a reliable one for a lot. `weighted_label` is its argmax and
`weighted_agreement` its probability.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

from .rankings import Unit

EPS = 1e-6


@dataclass
class CompetenceFit:
    competence: dict[Hashable, float]           # annotator -> p_j
    votes: dict[Hashable, int]                  # annotator -> number of votes the fit read
    gold_votes: dict[Hashable, int]             # annotator -> votes on gold units
    labels: tuple[int, ...]                     # the K labels, in the order of `posterior`'s columns
    posterior: dict[Unit, tuple[float, ...]]    # unit -> P(z = label) per label
    priors: tuple[float, ...]
    iterations: int
    converged: bool
    weights: dict[Hashable, float] = field(default_factory=dict)   # log-odds weight of each annotator

    def weighted_label(self, unit: Unit) -> int | None:
        """The label the competence-weighted vote gives a unit; None when two labels are equally likely."""
        probs = self.posterior.get(unit)
        if not probs:
            return None
        best = max(probs)
        top = [label for label, p in zip(self.labels, probs) if abs(p - best) < 1e-12]
        return top[0] if len(top) == 1 else None

    def weighted_agreement(self, unit: Unit) -> float | None:
        """The probability the weighted vote gives its label (1.0 = certain)."""
        probs = self.posterior.get(unit)
        return max(probs) if probs else None

    def vote(self, votes: list[tuple[Hashable, int]]) -> tuple[int | None, float]:
        """The competence-weighted vote of any unit's votes [(annotator, label), ...] under this fit
        (the E-step for one unit): its label (None when two are equally likely) and that label's
        probability. An annotator the fit never saw gets the fitted annotators' median competence;
        with nothing fitted every vote counts the same (competence 2/3) and the labels are equally
        likely beforehand, so the vote is the plain majority."""
        import math
        import statistics

        if not votes:
            return None, 0.0
        labels, priors = self.labels, self.priors
        if not labels:
            labels = tuple(sorted({label for _who, label in votes}))
            priors = tuple(1.0 / len(labels) for _ in labels)
        k = len(labels)
        col = {label: i for i, label in enumerate(labels)}
        unknown = statistics.median(self.competence.values()) if self.competence else 2.0 / 3.0
        log_post = [math.log(max(p, EPS)) for p in priors]
        for annotator, label in votes:
            if label not in col:
                continue
            p = min(max(self.competence.get(annotator, unknown), EPS), 1.0 - EPS)
            right, wrong = math.log(p), (math.log((1.0 - p) / (k - 1)) if k > 1 else 0.0)
            for i in range(k):
                log_post[i] += right if i == col[label] else wrong
        top = max(log_post)
        probs = [math.exp(x - top) for x in log_post]
        total = sum(probs)
        probs = [x / total for x in probs]
        best = max(probs)
        winners = [label for label, x in zip(labels, probs) if abs(x - best) < 1e-12]
        return (winners[0] if len(winners) == 1 else None), best


def one_coin_dawid_skene(units: Mapping[Unit, Mapping[Hashable, int]], *, gold: Mapping[Unit, int] | None = None,
                         max_iter: int = 100, tol: float = 1e-6) -> CompetenceFit:
    """Fit the one-coin Dawid–Skene model to `units` (see the module docstring)."""
    import numpy as np

    gold = dict(gold or {})
    unit_keys = [u for u, votes in units.items() if votes or u in gold]
    labels = tuple(sorted({label for votes in units.values() for label in votes.values()} | set(gold.values())))
    annotators = sorted({a for votes in units.values() for a in votes}, key=repr)
    if not unit_keys or not labels or not annotators:
        return CompetenceFit({}, {}, {}, labels, {}, (), 0, True)
    k = len(labels)
    col = {label: i for i, label in enumerate(labels)}
    row = {a: i for i, a in enumerate(annotators)}
    # the votes as three parallel arrays: unit index, annotator index, label column
    u_idx, a_idx, l_idx = [], [], []
    for i, unit in enumerate(unit_keys):
        for annotator, label in units.get(unit, {}).items():
            u_idx.append(i)
            a_idx.append(row[annotator])
            l_idx.append(col[label])
    u_arr, a_arr, l_arr = np.array(u_idx, dtype=np.int64), np.array(a_idx, dtype=np.int64), np.array(l_idx, dtype=np.int64)
    gold_rows = np.array([i for i, u in enumerate(unit_keys) if u in gold], dtype=np.int64)
    gold_cols = np.array([col[gold[unit_keys[i]]] for i in gold_rows], dtype=np.int64)
    skills, post, votes_per, it, converged = _em(u_arr, a_arr, l_arr, len(unit_keys), len(annotators), k, gold_rows,
                                                 gold_cols, max_iter=max_iter, tol=tol)
    gold_votes = np.bincount(a_arr[np.isin(u_arr, gold_rows)], minlength=len(annotators)) if len(gold_rows) \
        else np.zeros(len(annotators))
    weights = np.log(skills * (k - 1) / (1.0 - skills)) if k > 1 else np.zeros(len(annotators))
    return CompetenceFit(
        competence={a: float(skills[i]) for a, i in row.items()},
        votes={a: int(votes_per[i]) for a, i in row.items()},
        gold_votes={a: int(gold_votes[i]) for a, i in row.items()},
        labels=labels,
        posterior={u: tuple(float(p) for p in post[i]) for i, u in enumerate(unit_keys)},
        priors=tuple(float(p) for p in post.mean(axis=0)),
        iterations=it, converged=converged,
        weights={a: float(weights[i]) for a, i in row.items()},
    )


def one_coin_dawid_skene_votes(*, n_units: int, annotators: list, labels: tuple[int, ...], u_arr, a_arr, l_arr,
                               max_iter: int = 100, tol: float = 1e-6) -> CompetenceFit:
    """The same fit (no gold) from votes given as arrays: unit index, annotator index (into `annotators`) and
    label column (into `labels`), unit by unit as one_coin_dawid_skene orders them. Keeps no per-unit
    dicts and no posteriors (`posterior` is empty; CompetenceFit.vote needs none): memory is the arrays
    and the EM's few floats per unit, not the hundreds of bytes per unit of the dict form."""
    import numpy as np

    k, n_annot = len(labels), len(annotators)
    if not n_units or not k or not n_annot:
        return CompetenceFit({}, {}, {}, labels, {}, (), 0, True)
    empty = np.zeros(0, dtype=np.int64)
    skills, post, votes_per, it, converged = _em(u_arr, a_arr, l_arr, n_units, n_annot, k, empty, empty,
                                                 max_iter=max_iter, tol=tol)
    weights = np.log(skills * (k - 1) / (1.0 - skills)) if k > 1 else np.zeros(n_annot)
    return CompetenceFit(
        competence={a: float(skills[i]) for i, a in enumerate(annotators)},
        votes={a: int(votes_per[i]) for i, a in enumerate(annotators)},
        gold_votes=dict.fromkeys(annotators, 0), labels=labels, posterior={},
        priors=tuple(float(p) for p in post.mean(axis=0)), iterations=it, converged=converged,
        weights={a: float(weights[i]) for i, a in enumerate(annotators)},
    )


def _em(u_arr, a_arr, l_arr, n_units: int, n_annot: int, k: int, gold_rows, gold_cols, *, max_iter: int, tol: float):
    """EM over the votes as arrays (see the module docstring): (competences, posteriors, votes per annotator,
    iterations, converged)."""
    import numpy as np

    def clamp_gold(post):
        if len(gold_rows):
            post[gold_rows] = 0.0
            post[gold_rows, gold_cols] = 1.0
        return post

    # start: each unit's vote shares (majority vote probabilities)
    post = np.zeros((n_units, k))
    np.add.at(post, (u_arr, l_arr), 1.0)
    sums = post.sum(axis=1, keepdims=True)
    post = np.divide(post, sums, out=np.full_like(post, 1.0 / k), where=sums > 0)
    post = clamp_gold(post)
    votes_per = np.bincount(a_arr, minlength=n_annot).astype(float)
    skills = np.full(n_annot, 0.5)
    converged, it = False, 0
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is reported)
        priors = post.mean(axis=0)
        new_skills = np.bincount(a_arr, weights=post[u_arr, l_arr], minlength=n_annot) / np.maximum(votes_per, 1.0)
        new_skills = np.clip(new_skills, EPS, 1.0 - EPS)
        moved = float(np.max(np.abs(new_skills - skills)))
        skills = new_skills
        # E-step: a vote for label l adds log p_j to column l and log((1-p_j)/(K-1)) to the others
        log_right = np.log(skills)
        log_wrong = np.log((1.0 - skills) / (k - 1)) if k > 1 else np.zeros(n_annot)
        log_post = np.tile(np.log(np.maximum(priors, EPS)), (n_units, 1))
        base = np.bincount(u_arr, weights=log_wrong[a_arr], minlength=n_units)
        log_post += base[:, None]
        np.add.at(log_post, (u_arr, l_arr), log_right[a_arr] - log_wrong[a_arr])
        log_post -= log_post.max(axis=1, keepdims=True)
        post = np.exp(log_post)
        post /= post.sum(axis=1, keepdims=True)
        post = clamp_gold(post)
        if moved <= tol:
            converged = True
            break
    return skills, post, votes_per, it, converged
