"""L1-penalised logistic regression on soft labels, solved to float precision (numpy/scipy only).

The objective is liblinear's for ``LogisticRegression(penalty="l1", fit_intercept=False)`` with sample weights:

    |beta|_1 + C * sum_i w_i * CE(p_i, logistic(x_i . beta)),   CE(p, q) = -p log q - (1 - p) log(1 - q)

where p_i in [0, 1] is a soft label (AlpacaEval fits its length-controlled GLM this way, a row counting as a win with
weight w p and a loss with weight w (1 - p)). The method is liblinear's newGLMNET in outline: proximal Newton steps,
each solving the lasso problem on the quadratic model, then an Armijo line search. The inner problem is solved by
feature-sign search (Lee, Battle, Raina and Ng 2007, "Efficient sparse coding algorithms"), which is exact after
finitely many linear solves, with cyclic coordinate descent as a fallback. X may be dense or scipy.sparse.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from scipy.linalg import cho_factor, cho_solve
from scipy.special import expit

KKT_TOLERANCE = 1e-9


def l1_logistic(X, p: np.ndarray, w: np.ndarray, C: float, start: np.ndarray | None = None) -> np.ndarray:
    """The minimiser beta of the objective above, from `start` (default 0); stops when the optimality conditions
    (|grad_j + sign(beta_j)| for nonzero weights, |grad_j| <= 1 for zero ones, grad of the C-weighted loss) hold to
    KKT_TOLERANCE or no step decreases the objective any more."""
    beta = np.zeros(X.shape[1]) if start is None else np.array(start, dtype=float)
    value = l1_objective(X, p, w, C, beta)
    for _ in range(500):
        q = expit(X @ beta)
        grad = C * (X.T @ (w * (q - p)))
        violation = kkt_violation(grad, beta)
        if violation < KKT_TOLERANCE:
            break
        work = np.flatnonzero((beta != 0) | (np.abs(grad) > 1 - 1e-3))  # the others stay 0 in this step
        step = np.zeros_like(beta)
        step[work] = _lasso_step(grad[work], _hessian(X[:, work], C * w * q * (1 - q)), beta[work],
                                 tol=0.1 * violation)
        decrease = grad @ step + np.abs(beta + step).sum() - np.abs(beta).sum()
        if decrease > -1e-15 * max(1.0, abs(value)):
            break
        t = 1.0
        while t > 1e-12:
            candidate = l1_objective(X, p, w, C, beta + t * step)
            if candidate <= value + 0.01 * t * decrease:
                break
            t /= 2
        else:
            break
        beta, value = beta + t * step, candidate
    return beta


def _hessian(X, curvature: np.ndarray) -> np.ndarray:
    weighted = X.multiply(curvature[:, None]) if sparse.issparse(X) else X * curvature[:, None]
    hess = X.T @ weighted
    return np.asarray(hess.todense() if sparse.issparse(hess) else hess)


def l1_objective(X, p, w, C, beta) -> float:
    """The objective above at beta."""
    s = X @ beta
    return float(np.abs(beta).sum() + C * (w @ (p * np.logaddexp(0, -s) + (1 - p) * np.logaddexp(0, s))))


def kkt_violation(grad: np.ndarray, beta: np.ndarray) -> float:
    """How far beta is from optimal, given the gradient of the (C-weighted) loss at beta."""
    off = np.where(beta != 0, np.abs(grad + np.sign(beta)), np.maximum(np.abs(grad) - 1, 0))
    return float(off.max(initial=0.0))


def _lasso_step(grad: np.ndarray, hess: np.ndarray, beta: np.ndarray, tol: float) -> np.ndarray:
    """d minimising grad . d + d' H d / 2 + |beta + d|_1, to the subproblem's optimality conditions within `tol`:
    by feature-sign search (exact in finitely many solves), coordinate descent if that stalls."""
    x = _feature_sign_search(grad, hess, beta, tol)
    return (x if x is not None else _coordinate_descent(grad, hess, beta, tol)) - beta


def _feature_sign_search(grad, hess, beta, tol) -> np.ndarray | None:
    """Feature-sign search (Lee et al. 2007) on the quadratic model: from beta, activate the zero weights that
    violate the optimality conditions (all at once; the worst alone if that does not help), solve on the active
    signs, and keep the best point of the segment up to that solution (the objective is checked at every zero
    crossing). None if it has not converged."""
    x = beta.copy()
    for _ in range(4 * len(beta) + 20):
        r = grad + hess @ (x - beta)
        signs = np.sign(x)
        excess = np.where(signs == 0, np.abs(r) - 1, 0.0)
        if np.abs(r + signs)[signs != 0].max(initial=0.0) < tol:
            if excess.max(initial=0.0) < tol:
                return x
            entering = [np.flatnonzero(excess >= tol), [int(np.argmax(excess))]]
        else:
            entering = [[]]
        for new in entering:
            trial = signs.copy()
            trial[new] = -np.sign(r[new])
            x_new = _best_on_segment(x, _sign_newton_direction(r, hess, trial), r, hess, trial)
            if x_new is not None:
                break
        if x_new is None:
            return None
        x = x_new
    return None


def _sign_newton_direction(r, hess, signs) -> np.ndarray:
    """The step to the minimum of the quadratic model with these signs held; along a flat direction (collinear
    columns) the descent direction of the penalty within the flat space instead."""
    active = np.flatnonzero(signs)
    delta = np.zeros_like(r)
    h = hess[np.ix_(active, active)]
    delta[active] = _solve(h, -(r[active] + signs[active]))
    residual = h @ delta[active] + r[active] + signs[active]
    if np.abs(residual).max(initial=0.0) > 1e-9 * (1 + np.abs(r[active]).max(initial=0.0)):
        delta[:] = 0
        delta[active] = -residual
    return delta


def _solve(h: np.ndarray, b: np.ndarray) -> np.ndarray:
    """h^-1 b by Cholesky; the least-squares solution when h is singular (collinear columns)."""
    try:
        out = cho_solve(cho_factor(h), b)
        if np.all(np.isfinite(out)):
            return out
    except np.linalg.LinAlgError:
        pass
    return np.linalg.lstsq(h, b, rcond=None)[0]


def _best_on_segment(x, delta, r, hess, signs) -> np.ndarray | None:
    """The point of x + t delta, t in (0, 1] or up to the first zero crossing if delta is a flat direction, with the
    lowest model objective; candidates are t = 1 and every zero crossing. None if none improves on x."""
    moving = (delta != 0) & (signs != 0) & (np.sign(delta) != signs) & (x != 0)
    crossings = -x[moving] / delta[moving]
    crossings = np.unique(crossings[crossings > 0])
    curvature = delta @ hess @ delta
    if curvature > 0 and not np.any(crossings < 1) and np.all(np.sign(x + delta)[signs != 0] == signs[signs != 0]):
        return x + delta  # the model's minimum on these signs: no zero crossed
    ts = crossings[:1] if curvature <= 0 else np.concatenate([crossings[crossings < 1], [1.0]])
    if not len(ts):
        return None
    slope, base = r @ delta, np.abs(x).sum()
    values = [t * slope + 0.5 * t * t * curvature + np.abs(x + t * delta).sum() - base for t in ts]
    best = int(np.argmin(values))
    if values[best] >= 0:
        return None
    t = ts[best]
    out = x + t * delta
    out[moving & np.isclose(-x / np.where(delta == 0, 1, delta), t, rtol=1e-12, atol=0)] = 0.0
    return out


def _coordinate_descent(grad, hess, beta, tol, sweeps: int = 200) -> np.ndarray:
    """The same subproblem by cyclic coordinate descent (soft-thresholding one weight at a time)."""
    diag = np.diag(hess) + 1e-12 * (1.0 + np.abs(np.diag(hess)).max(initial=0.0))
    x = beta.copy()
    hd = np.zeros(len(beta))  # H (x - beta)
    for _ in range(sweeps):
        for j in range(len(beta)):
            z = x[j] - (grad[j] + hd[j]) / diag[j]
            new = math.copysign(max(abs(z) - 1 / diag[j], 0.0), z)
            if new != x[j]:
                hd += hess[j] * (new - x[j])
                x[j] = new
        if kkt_violation(grad + hd, x) < tol:
            break
    return x
