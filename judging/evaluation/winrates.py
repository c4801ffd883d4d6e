"""AlpacaEval's head-to-head win rates: ``win_rate``, ``standard_error`` and ``discrete_win_rate``.

The rules are those of AlpacaEval's ``get_winrate`` (alpaca_eval 0.6.6, ``alpaca_eval/metrics/winrate.py`` and the
scoring rules in ``metrics/helpers.py``), restated here:

* A preference is AlpacaEval's encoding: 1 means output_1 (the reference) is better, 2 means output_2 (the model)
  is better, values in between are soft preferences (a weighted annotator writes e.g. 1.73), and 1.5 or the legacy 0
  is a tie. Missing preferences (None or NaN, an annotator failure) are left out, as AlpacaEval leaves them out.
* ``win_rate`` is 100 x the mean of ``preference - 1``: a tie counts 0.5, a soft preference counts as it is.
  ``standard_error`` is 100 x the standard error of that mean (sample standard deviation, ddof=1, over sqrt(n)).
* ``discrete_win_rate`` first turns each preference into a hard one: exactly 1.5 (or 0) stays a tie (0.5), anything
  else is rounded to the nearest of 1 and 2 (so 1.49 is a loss and 1.51 a win), then averages as above.
* ``n_wins`` counts preferences above 1.5, ``n_wins_base`` those below, ``n_draws`` those equal to 1.5 (or 0);
  ``n_total`` counts all non-missing preferences.

One difference, on purpose: AlpacaEval silently drops a preference outside [1, 2]; here it is a ValueError.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

TIE = 1.5


def alpaca_preference(value: Any, *, where: str = "preference") -> float:
    """A preference in AlpacaEval's encoding as a float in [1, 2] (0 -> 1.5, a tie), or NaN when missing."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # numpy scalars
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {value!r} is not a number (1, 2, 1.5 or 0 for a tie, or in between)") from None
    value = float(value)
    if math.isnan(value):
        return math.nan
    if value == 0:
        return TIE
    if not 1 <= value <= 2:
        raise ValueError(f"{where}: {value} is outside [1, 2] (0 also means a tie)")
    return value


def discrete_preference(value: float) -> float:
    """AlpacaEval's hard preference for one soft preference in [1, 2]: 1, 2, or 1.5 only when exactly a tie."""
    if math.isnan(value):
        return math.nan
    if value == TIE or value == 0:
        return TIE
    return 2.0 if value > TIE else 1.0


def _mean_and_sem(scores: list[float]) -> tuple[float | None, float | None]:
    n = len(scores)
    if n == 0:
        return None, None
    mean = math.fsum(scores) / n
    if n < 2:
        return mean, None
    variance = math.fsum((s - mean) ** 2 for s in scores) / (n - 1)
    return mean, math.sqrt(variance / n)


def alpaca_eval_win_rates(preferences: Iterable[Any]) -> dict[str, Any]:
    """AlpacaEval's ``get_winrate`` metrics for one model against the reference, from its preferences.

    Returns ``{"win_rate", "standard_error", "discrete_win_rate"}`` in percent (None when there is no preference,
    and ``standard_error`` None with fewer than two) and ``{"n_wins", "n_wins_base", "n_draws", "n_total"}``.
    """
    values = [alpaca_preference(p, where=f"preference [{i}]") for i, p in enumerate(preferences)]
    values = [v for v in values if not math.isnan(v)]
    mean, sem = _mean_and_sem([v - 1 for v in values])
    discrete, _ = _mean_and_sem([discrete_preference(v) - 1 for v in values])
    return {
        "win_rate": None if mean is None else 100 * mean,
        "standard_error": None if sem is None else 100 * sem,
        "discrete_win_rate": None if discrete is None else 100 * discrete,
        "n_wins": sum(1 for v in values if v > TIE),
        "n_wins_base": sum(1 for v in values if v < TIE),
        "n_draws": sum(1 for v in values if v == TIE),
        "n_total": len(values),
    }
