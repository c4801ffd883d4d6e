"""Position bias: how often the response shown first is the one chosen."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .rates import rounded


@dataclass
class PositionBias:
    """Share of choices that went to the response shown first.

    `rate` = first-position choices / choices. A choice is a response with exactly one best-ranked
    field and a known display order; responses with a tie at the top are counted in `ties` and left
    out (a tie at the top is not a "choice" of a position). `chance` is the rate an annotator
    without position bias would have on these responses (the mean of 1 / number of shown
    responses; 0.5 for pairs).
    """

    first: int = 0
    choices: int = 0
    ties: int = 0
    chance_total: float = 0.0

    @property
    def rate(self) -> float | None:
        return self.first / self.choices if self.choices else None

    @property
    def chance(self) -> float | None:
        return self.chance_total / self.choices if self.choices else None

    def as_dict(self) -> dict:
        return {"rate": rounded(self.rate), "chance": rounded(self.chance), "first": self.first,
                "choices": self.choices, "ties": self.ties}


def position_bias_add(bias: PositionBias, ranks: Mapping[str, int], display_order: Sequence[str]) -> None:
    shown = [f for f in display_order if f in ranks]
    if len(shown) < 2:
        return
    best = min(ranks[f] for f in shown)
    winners = [f for f in shown if ranks[f] == best]
    if len(winners) != 1:
        bias.ties += 1
        return
    bias.choices += 1
    bias.chance_total += 1.0 / len(shown)
    bias.first += int(winners[0] == shown[0])


def position_bias(items: Iterable[tuple[Mapping[str, int], Sequence[str]]]) -> PositionBias:
    """Position bias over (ranking, display order) pairs; see PositionBias."""
    bias = PositionBias()
    for ranks, order in items:
        position_bias_add(bias, ranks, order)
    return bias
