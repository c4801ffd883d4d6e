"""Means that say how many cases they are over: Rate, and the small numeric helpers of the figures."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Rate:
    """A mean of per-case scores: value = total / n (None when n == 0); `tied` = cases scored 0.5
    because the reference majority was tied."""

    total: float = 0.0
    n: int = 0
    tied: int = 0

    def add(self, score: float, *, tied: bool = False) -> None:
        self.total += score
        self.n += 1
        self.tied += int(tied)

    @property
    def value(self) -> float | None:
        return self.total / self.n if self.n else None

    def as_dict(self) -> dict:
        return {"value": rounded(self.value), "n": self.n, "tied": self.tied}


def wilson_interval(value: float | None, n: int, *, z: float = 1.959964) -> tuple[float | None, float | None]:
    """The Wilson score 95% interval of a share `value` over `n` cases (exact coverage theory for 0/1 scores; with
    cases scored 0.5 it treats the mean score as a share, an approximation). (None, None) without cases."""
    if value is None or n <= 0:
        return None, None
    denom = 1 + z * z / n
    centre = (value + z * z / (2 * n)) / denom
    half = z * math.sqrt(value * (1 - value) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


CI_METHOD = "wilson-95"


def rate_with_interval(rate: Rate) -> dict:
    """Rate.as_dict with its Wilson 95% interval (ci_low, ci_high, ci_method)."""
    low, high = wilson_interval(rate.value, rate.n)
    return {**rate.as_dict(), "ci_low": rounded(low), "ci_high": rounded(high), "ci_method": CI_METHOD}


def rounded(x: float | None, digits: int = 4) -> float | None:
    """x rounded for a JSON answer; None for None and NaN."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, digits)


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0
