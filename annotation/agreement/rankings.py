"""Stored answers as rankings, and rankings as verdicts on pairs of fields.

A **ranking** is a mapping field name -> rank (1 = best; equal ranks are a tie). A **label** is a
verdict on one pair of fields (a, b), a before b in the question's order: FIRST (a better), SECOND
(b better) or TIE. A **pair vote** is an answer to a pairwise question (a comparison rating or a
graded preference) read whole: its ranking, the strength of the preference and whether the
annotator called both answers bad.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import orjson

TIE, FIRST, SECOND = 0, 1, 2
LABEL_NAMES = {TIE: "tie", FIRST: "first", SECOND: "second"}

Triple = tuple[Hashable, Hashable, Mapping[str, int]]   # (record, annotator, ranking)
Unit = tuple[Hashable, tuple[str, str]]                  # (record, (a, b)): one pair of one record


def ranks_from_value(value: Any, *, compares: Sequence[str] | None = None) -> dict[str, int | float] | None:
    """Field -> rank from a stored answer (a response's value or a suggestion's); None when the
    value holds no ranking. The one reader of answers: the dashboard, the agreement page, the
    export, the leaderboards and the annotate page all read answers through it.

    Forms read:
    * `[{"value": field, "rank": k}, ...]`, the stored form (items that are not one are skipped);
    * a best-first list of field names, also mixed with such items (a name ranks one below the
      fields read before it);
    * `{"value": <answer>}` (Argilla's wrapped answer) and `{field: rank, ...}`;
    * any of these as JSON text (the export reads answers as text);
    * with `compares`, a comparison rating: 1 = compares[0] better, 2 = compares[1] better,
      0 = tie (the Argilla convention the data model uses), bare or wrapped; or a graded
      preference `{"preferred": field, "strength": s, "both_bad": bool}` (see `pair_vote_from_value`).
    Ranks are numbers; a bool is not one.
    """
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if compares is not None:
        return _ranks_of_comparison(value, compares)
    if isinstance(value, Mapping):
        if "value" in value and len(value) == 1:
            return ranks_from_value(value["value"])
        if all(_is_rank(rank) for rank in value.values()):
            return {str(name): rank for name, rank in value.items()} or None
        return None
    if not isinstance(value, list):
        return None
    ranks: dict[str, int | float] = {}
    for item in value:
        if isinstance(item, str):
            ranks[item] = len(ranks) + 1
        elif isinstance(item, Mapping) and "value" in item and _is_rank(item.get("rank")):
            ranks[str(item["value"])] = item["rank"]
    return ranks or None


def _ranks_of_comparison(value: Any, compares: Sequence[str]) -> dict[str, int] | None:
    vote = pair_vote_from_value(value, compares)
    return vote.ranks if vote is not None else None


@dataclass(frozen=True)
class PairVote:
    """One answer to a pairwise question: `ranks` (None when it prefers neither field, e.g. "both
    are bad" alone), the `strength` of a graded preference (None for a plain comparison or a tie)
    and whether it called both answers bad."""

    ranks: dict[str, int] | None
    strength: float | None = None
    both_bad: bool = False


def pair_vote_from_value(value: Any, compares: Sequence[str]) -> PairVote | None:
    """A stored answer to the pairwise question comparing `compares` (a, b), or None when the value
    is not one. Forms read (bare, wrapped as {"value": ...}, or as JSON text):
    * a comparison rating 0 / 1 / 2 (tie / a better / b better);
    * a graded preference {"preferred": a or b, "strength": number} with an optional
      "both_bad": true, or {"both_bad": true} alone (a vote for neither field)."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if isinstance(value, Mapping) and set(value) == {"value"}:
        value = value["value"]
    a, b = compares
    if isinstance(value, Mapping):
        both_bad = value.get("both_bad") is True
        preferred = value.get("preferred")
        strength = value.get("strength")
        strength = strength if _is_rank(strength) else None
        if preferred == a or preferred == b:
            ranks = {a: 1, b: 2} if preferred == a else {a: 2, b: 1}
            return PairVote(ranks, strength, both_bad)
        return PairVote(None, None, True) if both_bad and preferred is None else None
    if isinstance(value, bool) or value not in (0, 1, 2):
        return None
    return PairVote({a: 1, b: 1} if value == 0 else ({a: 1, b: 2} if value == 1 else {a: 2, b: 1}))


def both_bad_by_majority(both_bad: int, answers: int) -> bool:
    """Whether a record counts as "both bad": more than half of its submitted answers to the question
    call both responses bad (the export leaves such records out by default; the dashboard counts them)."""
    return both_bad * 2 > answers


def _is_rank(rank: Any) -> bool:
    return isinstance(rank, (int, float)) and not isinstance(rank, bool)


def pair_label(ranks: Mapping[str, int], a: str, b: str) -> int | None:
    """FIRST when a is ranked better than b, SECOND when worse, TIE when equal; None if either is missing."""
    if a not in ranks or b not in ranks:
        return None
    ra, rb = ranks[a], ranks[b]
    return TIE if ra == rb else (FIRST if ra < rb else SECOND)


def field_pairs(fields: Sequence[str]) -> list[tuple[str, str]]:
    """All pairs of ranked fields, each in the question's order."""
    return list(combinations(fields, 2))


def unit_labels(ranks: Mapping[str, int], fields: Sequence[str]) -> dict[tuple[str, str], int]:
    """The label of every pair of `fields` that the ranking ranks both of."""
    out = {}
    for a, b in field_pairs(fields):
        label = pair_label(ranks, a, b)
        if label is not None:
            out[(a, b)] = label
    return out
