"""Turning judge outputs into rankings, margins, pairwise verdicts and record priorities.

Pure functions (no database), so each rule is easy to test and to read:

Ranking from ratings
    Fields are ranked by rating, highest first; equal ratings get equal ranks (ties). Ranks are
    dense: ratings {a: 5, b: 5, c: 3} give a=1, b=1, c=2.

Margin (the suggestion's `score`)
    best rating minus second-best rating, in raw rating points of the 1-5 scale (0 to 4; with
    `overall` = mean of aspects it can be fractional). 0 means the judge sees a tie at the top.
    For pairwise judgements the score is the confidence instead: 1.0 when both orders agree on a
    winner, 0.5 when one order says tie and the other picks a winner, 0.0 for a tie or an
    inconsistent pair.

Uncertainty of one judgement (0 = sure, 1 = no idea)
    ratings:  1 - margin / 4            (a 4-point margin is certain, a tie at the top is 1.0)
    pairwise: 1 - confidence            (an inconsistent pair is 1.0)

Ranking from pairwise verdicts
    one pair: its winner first (a tie or an inconsistent pair: both rank 1); several pairs: by wins,
    a win counting 1 and a tie or an inconsistent pair 1/2 to each side, equal wins sharing a rank.

Record priority (what `next_record_for` sorts by, highest first)
    priority = mean uncertainty of the judges' suggestions on the record
             + disagreement, the share of pairs of judges whose top choice differs
    so it lies in [0, 2]: a single confident judge gives ~0, a tie or an inconsistent pair gives 1,
    two judges who pick different winners add up to 1 more. Contentious records reach humans first.
"""
from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations

RATING_SPAN = 4.0  # 5 - 1 on the UltraFeedback scale


def ranking_from_ratings(ratings: dict[str, float], order: list[str] | None = None) -> list[dict]:
    """[{"value": field, "rank": k}] best first; equal ratings share a rank (dense ranks)."""
    if not ratings:
        raise ValueError("no ratings")
    fields = order or list(ratings)
    distinct = sorted({ratings[f] for f in fields}, reverse=True)
    rank_of = {value: i + 1 for i, value in enumerate(distinct)}
    items = [{"value": f, "rank": rank_of[ratings[f]]} for f in fields]
    return sorted(items, key=lambda i: (i["rank"], fields.index(i["value"])))


def margin_of(ratings: dict[str, float]) -> float:
    """Best minus second-best rating (0 when the top is tied)."""
    values = sorted(ratings.values(), reverse=True)
    if len(values) < 2:
        return 0.0
    return round(float(values[0] - values[1]), 4)


def uncertainty_from_margin(margin: float, span: float = RATING_SPAN) -> float:
    return round(max(0.0, min(1.0, 1.0 - float(margin) / span)), 4)


def top_fields(ranking: list[dict]) -> frozenset[str]:
    return frozenset(i["value"] for i in ranking if i["rank"] == 1)


def shuffled_order(fields: list[str], seed: str) -> list[str]:
    """The order the responses are shown to the judge: a per-record seeded shuffle."""
    order = list(fields)
    random.Random(seed).shuffle(order)
    return order


def compare_value(ratings: dict[str, float], compares: list[str]) -> int:
    """Value of a rating "compares" question [f1, f2]: 0 tie, 1 if f1 is better, 2 if f2 is."""
    a, b = ratings[compares[0]], ratings[compares[1]]
    return 0 if a == b else (1 if a > b else 2)


def preference_top(value: dict) -> frozenset[str]:
    """The top choice of a preference answer, for the priority formula: the preferred field, or no
    one field when the strength is the tie level (0)."""
    if not isinstance(value, dict) or not value.get("preferred") or value.get("strength") == 0:
        return frozenset()
    return frozenset({value["preferred"]})


def preference_value(ratings: dict[str, float], compares: list[str], scale: list[dict],
                     uncertainty: float) -> dict | None:
    """A judge's answer to a graded "preference" question [f1, f2] with a strength scale (strongest
    level first, see annotation.validation): the better field, and a strength read from how sure
    the judge is (1 - uncertainty, the figure that orders the annotation queue): sure → the strongest
    level, unsure → the weakest. A tie is the scale's level of value 0 ("about the same"); a scale
    without one cannot say a tie, and then there is no suggestion (the annotator chooses) rather
    than one the question would refuse."""
    a, b = ratings[compares[0]], ratings[compares[1]]
    tie_level = next((lv for lv in scale if lv["value"] == 0), None)
    if a == b:
        return None if tie_level is None else {"preferred": compares[0], "strength": tie_level["value"]}
    graded = [lv for lv in scale if lv is not tie_level]
    if not graded:
        return None
    sure = max(0.0, min(1.0, 1.0 - float(uncertainty)))
    level = graded[min(len(graded) - 1, int((1.0 - sure) * len(graded)))]
    return {"preferred": compares[0] if a > b else compares[1], "strength": level["value"]}


# --- pairwise ----------------------------------------------------------------------------------

@dataclass
class PairVerdict:
    first: str          # field shown as A in the first order
    second: str         # field shown as A in the second order
    winner: str | None  # field name, None for a tie
    confidence: float   # 1.0, 0.5 or 0.0 (see module docstring)
    consistent: bool    # the two orders agree (both the same winner, or both tie)
    favoured_position: str | None  # "A" or "B" when inconsistent because the same slot won twice

    @property
    def uncertainty(self) -> float:
        return round(1.0 - self.confidence, 4)


def pair_verdict(field_1: str, field_2: str, pick_12: str, pick_21: str) -> PairVerdict:
    """Combine a judgement shown as (A=field_1, B=field_2) with one shown as (A=field_2, B=field_1).

    pick_* is "A", "B" or "tie" as the judge wrote it for that order.
    """
    def to_field(pick: str, a: str, b: str) -> str | None:
        return {"A": a, "B": b, "tie": None}[pick]

    w1, w2 = to_field(pick_12, field_1, field_2), to_field(pick_21, field_2, field_1)
    if w1 == w2:
        return PairVerdict(field_1, field_2, w1, 1.0 if w1 else 0.0, True, None)
    if w1 is None or w2 is None:  # one order says tie, the other picks a winner
        return PairVerdict(field_1, field_2, w1 or w2, 0.5, True, None)
    # inconsistent: the judge picked the same slot both times (position bias)
    favoured = pick_12 if pick_12 == pick_21 else None
    return PairVerdict(field_1, field_2, None, 0.0, False, favoured)


def pair_ranking(verdict: PairVerdict) -> list[dict]:
    if verdict.winner is None:
        return [{"value": verdict.first, "rank": 1}, {"value": verdict.second, "rank": 1}]
    loser = verdict.second if verdict.winner == verdict.first else verdict.first
    return [{"value": verdict.winner, "rank": 1}, {"value": loser, "rank": 2}]


def pairwise_wins(verdicts: Iterable[PairVerdict], fields: list[str]) -> dict[str, float]:
    """Wins per field: 1 to the winner of a pair, 1/2 to each side of a tie or an inconsistent pair."""
    wins = {f: 0.0 for f in fields}
    for v in verdicts:
        if v.winner is None:
            wins[v.first] += 0.5
            wins[v.second] += 0.5
        else:
            wins[v.winner] += 1.0
    return wins


def pairwise_ranking(verdicts: list[PairVerdict], fields: list[str]) -> list[dict]:
    """The ranking of the fields from their pairwise verdicts (see the module docstring)."""
    if len(verdicts) == 1:
        return pair_ranking(verdicts[0])
    return ranking_from_ratings(pairwise_wins(verdicts, fields), fields)


@dataclass
class PositionBias:
    pairs: int = 0
    inconsistent: int = 0
    favoured_first: int = 0   # inconsistent pairs where Answer A won both times
    favoured_second: int = 0  # ... where Answer B won both times

    @property
    def rate(self) -> float:
        return round(self.inconsistent / self.pairs, 4) if self.pairs else 0.0

    @property
    def favoured(self) -> str | None:
        if self.favoured_first == self.favoured_second:
            return None if not self.favoured_first else "none"
        return "first" if self.favoured_first > self.favoured_second else "second"

    def add(self, consistent: bool, favoured_position: str | None) -> None:
        self.pairs += 1
        if not consistent:
            self.inconsistent += 1
            if favoured_position == "A":
                self.favoured_first += 1
            elif favoured_position == "B":
                self.favoured_second += 1

    def as_dict(self) -> dict:
        return {"pairs": self.pairs, "inconsistent": self.inconsistent, "rate": self.rate,
                "favoured_first": self.favoured_first, "favoured_second": self.favoured_second,
                "favoured": self.favoured}


def position_bias_of(items: Iterable[tuple[bool, str | None]]) -> PositionBias:
    bias = PositionBias()
    for consistent, favoured in items:
        bias.add(consistent, favoured)
    return bias


# --- priority ----------------------------------------------------------------------------------

@dataclass
class JudgeView:
    """What one agent's suggestion says about a record, for the priority formula."""
    agent: str
    top: frozenset[str]
    uncertainty: float
    extra: dict = field(default_factory=dict)


def priority_from(views: list[JudgeView]) -> float:
    """Mean uncertainty + share of judge pairs whose top choice differs (see module docstring)."""
    if not views:
        return 0.0
    mean_u = sum(v.uncertainty for v in views) / len(views)
    pairs = list(combinations(views, 2))
    disagreement = (sum(1 for a, b in pairs if a.top != b.top) / len(pairs)) if pairs else 0.0
    return round(mean_u + disagreement, 4)
