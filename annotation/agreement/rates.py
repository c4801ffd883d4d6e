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


def rounded(x: float | None, digits: int = 4) -> float | None:
    """x rounded for a JSON answer; None for None and NaN."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, digits)


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0
