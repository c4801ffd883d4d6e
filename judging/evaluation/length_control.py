"""AlpacaEval's length-controlled win rate (``length_controlled_v1``), after Dubois et al. 2024,
"Length-Controlled AlpacaEval: A Simple Way to Debias Automatic Evaluators", and the code of alpaca_eval 0.6.6
(``alpaca_eval/metrics/glm_winrate.py``; the joint instruction difficulty follows its notebook
``notebooks/instruction_difficulty.ipynb``). This is a restatement in numpy/scipy, not a copy.

The model. For one model m against the reference b, on instruction x, AlpacaEval fits a logistic GLM

    P(m's output preferred) = logistic( w_len * tanh(std_delta_len) + w_diff * difficulty[x] + w_model )

with the columns named as AlpacaEval's formula names them: ``np.tanh(std_delta_len)`` (length term),
``instruction_difficulty`` (difficulty term) and ``not_gamed_baseline.astype(float)`` (model term, 1 for the model's
own rows), and no intercept. ``std_delta_len`` is (len(output_1) - len(output_2)) in characters, i.e. reference
length minus model length, divided by its sample standard deviation (ddof=1) over the model's rows. The fit is
run per model, on soft labels ``preference - 1`` (1 -> 0, 2 -> 1, 1.5 or 0 -> 0.5, fractional values as they are),
as a weighted log loss (each row counts as a win with weight p and a loss with weight 1 - p).

Regularisation, as AlpacaEval does it:
* an L1 penalty, ``|w|_1 + C * sum(weight * log loss)``, with C chosen from ``logspace(-4, 4, 10)`` by 5-fold
  cross-validation on the weighted log loss; the folds are those of scikit-learn's ``GroupKFold`` (one group per
  row; row r of n goes to fold (n - 1 - r) mod 5);
* ``length_controlled_v1`` only: "regularisation to the baseline": the fit also sees annotations of the reference
  against length-gamed copies of itself (AlpacaEval uses its baseline prompted to be verbose and to be concise),
  with their model term 0 and weight lambda / 2 = 0.2 / 2 each (AlpacaEval divides by its two gamed copies). They
  tie the length term to the length preference of the judge, so a model cannot buy wins with length. Without such
  annotations the same formula is AlpacaEval's ``length_controlled_noreg``, and results say so.

The length-controlled win rate is 100 x the mean, over the model's rows (also those without a preference, as in
AlpacaEval), of the prediction with the length term zeroed (std_delta_len = 0). The reference itself has 50 by
construction and is not returned.

Instruction difficulty: a mapping {instruction: difficulty} the caller supplies (AlpacaEval publishes one for its
805 instructions, estimated once on its leaderboard), or else estimated jointly from all models in the data, as
AlpacaEval's notebook does: one L1 fit (same C search) of the soft labels on a length slope and a bias per model (and
per gamed copy), a dummy per instruction (the first instruction is the reference level, 0) and the model term; the
instruction dummies' weights are the difficulties.

Standard error: AlpacaEval's ``lc_standard_error`` is the standard error of the per-row predictions, which ignores
the fit's own uncertainty; it is reported as ``lc_standard_error``. The result's ``se`` is a bootstrap over the
model's instructions instead (``se_method="bootstrap-instructions"``, seeded): instructions are drawn with
replacement, the GLM is refit with C held at the value cross-validation chose and the difficulties held fixed, and
``se`` is the standard deviation of the replicates (``ci_low``/``ci_high``: their 2.5 and 97.5 percentiles).

Annotations are AlpacaEval records (``instruction``, ``generator_1``, ``generator_2``, ``output_1``, ``output_2``
or lengths ``length_1``/``length_2``, ``preference``; ``model``/``reference`` may stand for generator_2/generator_1)
or objects with preflab's ``Comparison`` attributes (``model_1``, ``model_2``, ``score`` in [0, 1] for model_2,
``length_1``, ``length_2``, ``key``). A record with the reference as generator_2 is turned around (preference
3 - p, lengths swapped); AlpacaEval itself always has the reference as generator_1.

Differences from AlpacaEval, on purpose: a record without the reference, or a preference outside [1, 2], is a
ValueError (AlpacaEval would fit or drop it silently); if all length differences of a model are equal, the length
term is 0 (AlpacaEval divides by a zero standard deviation); a model with fewer than 5 annotated rows gets no
length-controlled win rate (AlpacaEval's 5-fold cross-validation needs 5), with a note.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit

from .l1_logistic import l1_logistic
from .winrates import alpaca_eval_win_rates, alpaca_preference

LENGTH = "np.tanh(std_delta_len)"
DIFFICULTY = "instruction_difficulty"
MODEL = "not_gamed_baseline.astype(float)"
GLMS = {  # AlpacaEval's GLM_INFO, by its names
    "length_controlled_v1": {"formula": f"{LENGTH} + {DIFFICULTY} + {MODEL} - 1",
                             "regularize_to_baseline_lambda": 0.2},
    "length_controlled_noreg": {"formula": f"{LENGTH} + {DIFFICULTY} + {MODEL} - 1",
                                "regularize_to_baseline_lambda": None},
    "length_controlled_minimal": {"formula": f"{LENGTH} + {MODEL} - 1", "regularize_to_baseline_lambda": None},
}
CS = np.logspace(-4, 4, 10)  # scikit-learn's LogisticRegressionCV grid, Cs=10
N_SPLITS = 5
SE_METHOD = "bootstrap-instructions"


@dataclass(frozen=True)
class LCResult:
    """One model's AlpacaEval metrics against the reference; rates and errors in percent, as AlpacaEval reports."""

    model: str
    reference: str
    variant: str  # "alpaca_eval_" + the GLM name, e.g. "alpaca_eval_length_controlled_v1"
    length_controlled_win_rate: float | None
    se: float | None  # bootstrap over instructions (se_method)
    ci_low: float | None
    ci_high: float | None
    lc_standard_error: float | None  # AlpacaEval's own: standard error of the per-row predictions
    win_rate: float | None
    standard_error: float | None
    discrete_win_rate: float | None
    n_wins: int
    n_wins_base: int
    n_draws: int
    n_total: int
    n_instructions: int
    weights: dict[str, float] = field(default_factory=dict)  # by AlpacaEval's formula names
    C: float | None = None
    difficulty_source: str | None = None  # "supplied" | "joint" | None (GLM without the term)
    se_method: str = SE_METHOD
    n_bootstrap: int = 0
    seed: int | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Row:
    instruction: Hashable
    generator: str  # the non-reference side
    preference: float  # in [1, 2], 2 = generator preferred; NaN when missing
    len_ref: int
    len_gen: int


# --- reading annotations ---------------------------------------------------------------------------------------

def _get(record: Any, *names: str) -> Any:
    for name in names:
        value = record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)
        if value is not None:
            return value
    return None


def _length(record: Any, output: str, length: str, where: str) -> int:
    text = _get(record, output)
    if isinstance(text, str):
        return len(text)
    value = _get(record, length, length.replace("length", "len"))
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{where}: needs {output} (text) or {length} (a non-negative integer)")
    return int(value)


def _read(record: Any, where: str) -> tuple[str, str, float, int, int, Hashable]:
    if not isinstance(record, Mapping) and hasattr(record, "model_1"):  # preflab's Comparison
        score = record.score
        pref = math.nan if score is None else 1.0 + float(score)
        return (record.model_1, record.model_2, alpaca_preference(pref, where=f"{where}.score + 1"),
                int(record.length_1), int(record.length_2), record.key)
    g1, g2 = _get(record, "generator_1", "reference"), _get(record, "generator_2", "model")
    if not isinstance(g1, str) or not isinstance(g2, str):
        raise ValueError(f"{where}: needs generator_1 and generator_2 (or reference and model) as strings")
    instruction = _get(record, "instruction_id", "instruction")
    if instruction is None:
        raise ValueError(f"{where}: needs an instruction (or instruction_id)")
    pref = alpaca_preference(_get(record, "preference"), where=f"{where}.preference")
    return (g1, g2, pref, _length(record, "output_1", "length_1", where),
            _length(record, "output_2", "length_2", where), instruction)


def _oriented_rows(annotations: Iterable[Any], reference: str, what: str = "annotations") -> list[_Row]:
    """Rows with the reference on the output_1 side; a reference-vs-reference row carries nothing and is dropped."""
    rows = []
    for i, record in enumerate(annotations or ()):
        where = f"{what}[{i}]"
        g1, g2, pref, len1, len2, instruction = _read(record, where)
        if g1 == reference and g2 == reference:
            continue
        if g1 == reference:
            rows.append(_Row(instruction, g2, pref, len1, len2))
        elif g2 == reference:
            rows.append(_Row(instruction, g1, 3.0 - pref, len2, len1))
        else:
            raise ValueError(f"{where}: neither generator ({g1!r}, {g2!r}) is the reference {reference!r}")
    return rows


# --- AlpacaEval's choice of C -----------------------------------------------------------------------------------

def _mean_log_loss(X, beta: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    """AlpacaEval's validation score (negated): mean over rows of w * CE(p, q), q clipped to [1e-15, 1 - 1e-15]."""
    q = np.clip(expit(X @ beta), 1e-15, 1 - 1e-15)
    return float(np.mean(-w * (p * np.log(q) + (1 - p) * np.log(1 - q))))


def _cross_validated_fit(X, p: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """AlpacaEval's LogisticRegressionCV: the C of CS with the best summed fold score (first on ties), then a refit."""
    n = len(p)
    fold = (n - 1 - np.arange(n)) % N_SPLITS  # GroupKFold with one group per row
    totals = np.zeros(len(CS))
    for k in range(N_SPLITS):
        train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        beta = None
        for j, C in enumerate(CS):
            beta = l1_logistic(X[train], p[train], w[train], C, start=beta)
            totals[j] -= _mean_log_loss(X[test], beta, p[test], w[test])
    C = float(CS[int(np.argmax(totals))])
    return l1_logistic(X, p, w, C), C


# --- features ---------------------------------------------------------------------------------------------------

def _std_delta_len(len_ref: np.ndarray, len_gen: np.ndarray) -> np.ndarray:
    """(reference length - model length) / its sample standard deviation; 0 where that is 0 or undefined."""
    delta = (len_ref - len_gen).astype(float)
    sd = delta.std(ddof=1) if len(delta) > 1 else 0.0
    return delta / sd if sd > 0 else np.zeros_like(delta)


def _columns(glm: str, std_delta: np.ndarray, difficulty: np.ndarray, not_gamed: float) -> np.ndarray:
    cols = [np.tanh(std_delta)]
    if DIFFICULTY in GLMS[glm]["formula"]:
        cols.append(difficulty)
    cols.append(np.full(len(std_delta), not_gamed))
    return np.column_stack(cols)


def _difficulties(rows: list[_Row], difficulty: Mapping[Hashable, float] | None) -> np.ndarray:
    if difficulty is None:
        return np.zeros(len(rows))
    missing = [r.instruction for r in rows if r.instruction not in difficulty]
    if missing:
        shown = ", ".join(repr(m) for m in list(dict.fromkeys(missing))[:3])
        raise ValueError(f"instruction_difficulty has no value for {len(set(missing))} instruction(s): {shown}")
    values = np.array([float(difficulty[r.instruction]) for r in rows])
    if not np.all(np.isfinite(values)):
        raise ValueError("instruction_difficulty has a value that is not a finite number")
    return values


def _gamed_design(glm: str, gamed: list[_Row], difficulty) -> tuple[np.ndarray, np.ndarray]:
    """AlpacaEval's gamed-baseline rows: model term 0, lengths standardised per gamed copy, annotated rows only."""
    blocks, prefs = [], []
    for name in dict.fromkeys(r.generator for r in gamed):
        rows = [r for r in gamed if r.generator == name]
        std = _std_delta_len(np.array([r.len_ref for r in rows]), np.array([r.len_gen for r in rows]))
        pref = np.array([r.preference for r in rows]) - 1
        keep = ~np.isnan(pref)
        blocks.append(_columns(glm, std, _difficulties(rows, difficulty), 0.0)[keep])
        prefs.append(pref[keep])
    k = len(_columns(glm, np.zeros(1), np.zeros(1), 1.0)[0])
    return (np.vstack(blocks) if blocks else np.zeros((0, k))), (np.concatenate(prefs) if prefs else np.zeros(0))


# --- one model's fit -------------------------------------------------------------------------------------------

@dataclass
class _ModelData:
    len_ref: np.ndarray
    len_gen: np.ndarray
    difficulty: np.ndarray
    preference: np.ndarray  # in [1, 2], NaN when missing
    groups: list[np.ndarray]  # row indices per instruction, for the bootstrap

    @classmethod
    def of(cls, rows: list[_Row], difficulty: Mapping[Hashable, float] | None) -> _ModelData:
        by_instruction: dict[Hashable, list[int]] = {}
        for i, r in enumerate(rows):
            by_instruction.setdefault(r.instruction, []).append(i)
        return cls(np.array([r.len_ref for r in rows]), np.array([r.len_gen for r in rows]),
                   _difficulties(rows, difficulty), np.array([r.preference for r in rows], dtype=float),
                   [np.array(ix) for ix in by_instruction.values()])

    def take(self, idx: np.ndarray) -> _ModelData:
        return _ModelData(self.len_ref[idx], self.len_gen[idx], self.difficulty[idx], self.preference[idx], [])


def _predict_lc(glm: str, data: _ModelData, gamed: tuple[np.ndarray, np.ndarray], *, C: float | None = None,
                start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit the GLM on the gamed rows (weight lambda / 2) and the model's annotated rows (weight 1); predict every row
    of the model with the length term zeroed. C is cross-validated unless given."""
    lam = GLMS[glm]["regularize_to_baseline_lambda"]
    gamed_X, gamed_p = gamed if lam else (np.zeros((0, 0)), np.zeros(0))
    X_model = _columns(glm, _std_delta_len(data.len_ref, data.len_gen), data.difficulty, 1.0)
    keep = ~np.isnan(data.preference)
    X = np.vstack([gamed_X, X_model[keep]]) if len(gamed_p) else X_model[keep]
    p = np.concatenate([gamed_p, data.preference[keep] - 1])
    w = np.concatenate([np.full(len(gamed_p), (lam or 0) / 2), np.ones(int(keep.sum()))])
    if C is None:
        beta, C = _cross_validated_fit(X, p, w)
    else:
        beta = l1_logistic(X, p, w, C, start=start)
    X_test = _columns(glm, np.zeros(len(data.preference)), data.difficulty, 1.0)
    return expit(X_test @ beta), beta, C


def _bootstrap(glm: str, data: _ModelData, gamed, C: float, beta: np.ndarray, n: int,
               rng: np.random.Generator) -> np.ndarray:
    """LC win rates (percent) of `n` resamples of the model's instructions, C and difficulties held fixed."""
    out = []
    for _ in range(n):
        pick = rng.integers(0, len(data.groups), len(data.groups))
        sample = data.take(np.concatenate([data.groups[g] for g in pick]))
        if np.isnan(sample.preference).all():
            continue
        q, _, _ = _predict_lc(glm, sample, gamed, C=C, start=beta)
        out.append(100 * q.mean())
    return np.array(out)


def _is_extreme_change(win_rate: float, lc: float, abs_diff: float = 10, rel_diff: float = 4) -> bool:
    """AlpacaEval's warning rule: the LC win rate moved by more than abs_diff points or a 1/rel_diff share."""
    too_small = lc < min(win_rate - win_rate / rel_diff, win_rate - abs_diff)
    too_large = lc > max(win_rate + (100 - win_rate) / rel_diff, win_rate + abs_diff)
    return too_small or too_large


def _model_result(model: str, reference: str, glm: str, rows: list[_Row], difficulty, source: str | None,
                  gamed, bootstrap: int, seed: int) -> LCResult:
    data = _ModelData.of(rows, difficulty)
    base = dict(model=model, reference=reference, variant=f"alpaca_eval_{glm}", n_instructions=len(data.groups),
                difficulty_source=source, seed=seed, **alpaca_eval_win_rates(r.preference for r in rows))
    if base["n_total"] < N_SPLITS:
        return LCResult(**base, length_controlled_win_rate=None, se=None, ci_low=None, ci_high=None,
                        lc_standard_error=None, note=f"{base['n_total']} annotated row(s); the GLM's "
                        f"{N_SPLITS}-fold cross-validation needs at least {N_SPLITS}")
    q, beta, C = _predict_lc(glm, data, gamed)
    lc = 100 * float(q.mean())
    rng = np.random.default_rng([seed, zlib.crc32(model.encode())])
    reps = _bootstrap(glm, data, gamed, C, beta, bootstrap, rng) if bootstrap else np.zeros(0)
    names = [LENGTH] + ([DIFFICULTY] if DIFFICULTY in GLMS[glm]["formula"] else []) + [MODEL]
    note = None
    if base["win_rate"] is not None and _is_extreme_change(base["win_rate"], lc):
        note = (f"the length-controlled win rate ({lc:.1f}%) is far from the raw one ({base['win_rate']:.1f}%); "
                "AlpacaEval warns that this may be a failure of the GLM")
    return LCResult(**base, length_controlled_win_rate=lc,
                    se=float(reps.std(ddof=1)) if len(reps) > 1 else None,
                    ci_low=float(np.percentile(reps, 2.5)) if len(reps) > 1 else None,
                    ci_high=float(np.percentile(reps, 97.5)) if len(reps) > 1 else None,
                    lc_standard_error=100 * float(q.std(ddof=1) / math.sqrt(len(q))) if len(q) > 1 else None,
                    weights=dict(zip(names, map(float, beta), strict=True)), C=C, n_bootstrap=len(reps), note=note)


# --- public ----------------------------------------------------------------------------------------------------

def _choose_glm(glm: str | None, has_gamed: bool) -> str:
    if glm is None:
        return "length_controlled_v1" if has_gamed else "length_controlled_noreg"
    if glm not in GLMS:
        raise ValueError(f"glm must be one of {', '.join(GLMS)}; got {glm!r}")
    if GLMS[glm]["regularize_to_baseline_lambda"] and not has_gamed:
        raise ValueError(f"{glm} regularises toward the reference with annotations of the reference against "
                         "length-gamed copies of itself (gamed_annotations); without them use "
                         "glm='length_controlled_noreg'")
    return glm


def lc_win_rate(annotations: Iterable[Any], *, reference: str,
                instruction_difficulty: Mapping[Hashable, float] | None = None,
                gamed_annotations: Iterable[Any] | None = None, glm: str | None = None,
                bootstrap: int = 200, seed: int = 0) -> dict[str, LCResult]:
    """AlpacaEval's length-controlled win rate of every model against `reference` (see the module doc).

    `instruction_difficulty` maps an annotation's instruction (its ``instruction_id``, else ``instruction``, else a
    Comparison's ``key``) to a difficulty; without it the difficulties are estimated jointly from `annotations`
    (``joint_instruction_difficulty``). `gamed_annotations` are annotations of the reference against length-gamed
    copies of itself (AlpacaEval: its baseline asked to be verbose, and concise); with them the default GLM is
    ``length_controlled_v1``, without them ``length_controlled_noreg`` (the same formula, no regularisation to the
    baseline). `bootstrap` resamples of the instructions (seeded by `seed` and the model name) give ``se``.

    Returns {model: LCResult}, in the order models first appear; the reference is not included (50 by construction).
    """
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise ValueError(f"bootstrap must be a non-negative integer; got {bootstrap!r}")
    annotations, gamed_annotations = list(annotations), list(gamed_annotations or ())
    rows = _oriented_rows(annotations, reference)
    gamed_rows = _oriented_rows(gamed_annotations, reference, "gamed_annotations")
    glm = _choose_glm(glm, bool(gamed_rows))
    uses_difficulty = DIFFICULTY in GLMS[glm]["formula"]
    source = None
    if uses_difficulty:
        source = "supplied" if instruction_difficulty is not None else "joint"
        if instruction_difficulty is None:
            instruction_difficulty = joint_instruction_difficulty(
                annotations, reference=reference,
                gamed_annotations=gamed_annotations if GLMS[glm]["regularize_to_baseline_lambda"] else None)
    difficulty = instruction_difficulty if uses_difficulty else None
    gamed = _gamed_design(glm, gamed_rows if GLMS[glm]["regularize_to_baseline_lambda"] else [], difficulty)
    by_model: dict[str, list[_Row]] = {}
    for r in rows:
        by_model.setdefault(r.generator, []).append(r)
    return {m: _model_result(m, reference, glm, mrows, difficulty, source, gamed, bootstrap, seed)
            for m, mrows in by_model.items()}


def joint_instruction_difficulty(annotations: Iterable[Any], *, reference: str,
                                 gamed_annotations: Iterable[Any] | None = None) -> dict[Hashable, float]:
    """Per-instruction difficulty fitted jointly on all models, as AlpacaEval's notebook fits it.

    One L1 logistic fit (C cross-validated as for the GLM) of the soft labels on, per generator (model or gamed
    copy), a slope on tanh(std_delta_len) and a bias; a dummy per instruction (the first instruction to appear is the
    reference level, difficulty 0); and the model term (1 for models, 0 for gamed copies). Only annotated rows count.
    """
    rows = [(r, 1.0) for r in _oriented_rows(annotations, reference)]
    gamed = _oriented_rows(gamed_annotations, reference, "gamed_annotations")
    clash = {r.generator for r in gamed} & {r.generator for r, _ in rows}
    if clash:
        raise ValueError(f"gamed_annotations reuse model name(s) {sorted(clash)}")
    rows = [(r, g) for r, g in rows + [(r, 0.0) for r in gamed] if not math.isnan(r.preference)]
    if len(rows) < N_SPLITS:
        raise ValueError(f"{len(rows)} annotated row(s); estimating instruction difficulties needs at least "
                         f"{N_SPLITS} (5-fold cross-validation)")
    gens = list(dict.fromkeys(r.generator for r, _ in rows))
    instructions = list(dict.fromkeys(r.instruction for r, _ in rows))
    gi = np.array([gens.index(r.generator) for r, _ in rows])
    ii = np.array([instructions.index(r.instruction) for r, _ in rows])
    slope = np.zeros(len(rows))
    for g in range(len(gens)):
        at = np.flatnonzero(gi == g)
        slope[at] = np.tanh(_std_delta_len(np.array([rows[i][0].len_ref for i in at]),
                                           np.array([rows[i][0].len_gen for i in at])))
    X = _joint_design(gi, ii, slope, np.array([g for _, g in rows]), len(gens), len(instructions))
    p = np.array([r.preference for r, _ in rows]) - 1
    beta, _ = _cross_validated_fit(X, p, np.ones(len(rows)))
    offset = 2 * len(gens)
    return {ins: (0.0 if j == 0 else float(beta[offset + j - 1])) for j, ins in enumerate(instructions)}


def _joint_design(gi: np.ndarray, ii: np.ndarray, slope: np.ndarray, not_gamed: np.ndarray, n_gen: int,
                  n_ins: int) -> sparse.csr_matrix:
    """Columns: slope per generator | bias per generator | dummy per instruction but the first | model term."""
    n = len(gi)
    r = np.arange(n)
    has_dummy = ii > 0
    rows = np.concatenate([r, r, r[has_dummy], r])
    cols = np.concatenate([gi, n_gen + gi, 2 * n_gen + ii[has_dummy] - 1, np.full(n, 2 * n_gen + n_ins - 1)])
    vals = np.concatenate([slope, np.ones(n), np.ones(int(has_dummy.sum())), not_gamed])
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n, 2 * n_gen + n_ins))
