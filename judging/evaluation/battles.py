"""Chatbot Arena's Bradley–Terry ratings over every pair of models, from what preflab holds.

The ratings are computed by judging.evaluation.arena (``arena_ratings``); this module turns preflab's comparisons
into its battles and shapes the result for the API, the CLI and the page:

* a **battle** is one Comparison (leaderboards.py) between two different models: one per record and pair of ranked
  fields for a dataset (``dataset_comparisons``: human votes, judge votes (suggestions) or both; simulated
  annotators are flagged members and count with the humans, as everywhere), one per annotation for AlpacaEval-format
  annotations (``alpaca_eval_comparisons``), whichever pair of models it compares;
* the winner is the model its score favours; a score of exactly 0.5 (a tie, or raters who split evenly) is a tie,
  which Chatbot Arena counts as half a win each way. Several raters of one record are first averaged (as for the
  leaderboard), so a record is one battle, not one per rater. Comparisons of a model with itself and annotations
  without a preference carry nothing and are left out.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from .leaderboards import (
    SOURCES,
    Comparison,
    _spreadsheet_safe,
    alpaca_eval_comparisons,
    dataset_comparisons,
)

ARENA_CHART_TEMPLATE = "evaluation/partials/arena_chart.svg"
MAX_BOOTSTRAP = 1000


def comparison_battles(comparisons: Iterable[Comparison]) -> Iterator[dict[str, str]]:
    """{model_a, model_b, winner} for every comparison of two different models with a score."""
    for c in comparisons:
        if c.model_1 == c.model_2 or c.score is None:
            continue
        winner = "tie" if c.score == 0.5 else ("model_b" if c.score > 0.5 else "model_a")
        yield {"model_a": c.model_1, "model_b": c.model_2, "winner": winner}


def bootstrap_param(value: Any, *, default: int = 200) -> int:
    """The number of bootstrap resamples from an input (0..MAX_BOOTSTRAP)."""
    if value in (None, ""):
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise ValidationError({"bootstrap": f"must be an integer from 0 to {MAX_BOOTSTRAP}"}) from None
    if not 0 <= number <= MAX_BOOTSTRAP:
        raise ValidationError({"bootstrap": f"must be an integer from 0 to {MAX_BOOTSTRAP}"})
    return number


def seed_param(value: Any) -> int:
    """A random seed from an input (0..2**32 - 1; default 0)."""
    if value in (None, ""):
        return 0
    try:
        number = int(str(value))
    except ValueError:
        raise ValidationError({"seed": "must be an integer from 0 to 4294967295"}) from None
    if not 0 <= number < 2**32:
        raise ValidationError({"seed": "must be an integer from 0 to 4294967295"})
    return number


def _ratings(comparisons: Iterable[Comparison], *, source: str, bootstrap: int, seed: int,
             anchor: str | None) -> dict[str, Any]:
    battles = list(comparison_battles(comparisons))
    if not battles:
        raise ValidationError({"battles": "no comparison between two different models with a preference"})
    models = {b["model_a"] for b in battles} | {b["model_b"] for b in battles}
    if anchor and anchor not in models:
        raise ValidationError({"anchor": f"{anchor!r} is in no battle; models: {', '.join(sorted(models))}"})
    from .arena import arena_ratings  # numpy/scipy load when ratings are asked for, not with every page

    try:
        result = arena_ratings(battles, bootstrap=bootstrap, seed=seed, anchor=anchor or None)
    except ValueError as exc:
        raise ValidationError({"battles": str(exc)}) from None
    return {"source": source, **result.as_dict()}


def dataset_arena(dataset, *, source: str = "human", bootstrap: int = 200, seed: int = 0,
                  anchor: str | None = None) -> dict[str, Any]:
    """Bradley–Terry ratings of the models that wrote a dataset's responses (see the module doc)."""
    if source not in SOURCES:
        raise ValidationError({"source": f"must be one of {', '.join(SOURCES)}"})
    return _ratings(dataset_comparisons(dataset, source=source), source=source, bootstrap=bootstrap, seed=seed,
                    anchor=anchor)


def alpaca_eval_arena(items: Any, *, bootstrap: int = 200, seed: int = 0, anchor: str | None = None) -> dict[str, Any]:
    """Bradley–Terry ratings from AlpacaEval-format annotations (any pairs of generators)."""
    return _ratings(alpaca_eval_comparisons(items), source="alpaca_eval", bootstrap=bootstrap, seed=seed,
                    anchor=anchor)


ARENA_CSV_COLUMNS = ["model", "rating", "ci_low", "ci_high", "battles", "wins", "losses", "ties", "method", "anchor"]


def arena_csv(arena: dict[str, Any]) -> str:
    """The ratings as CSV, one row per model, then the predicted win-probability matrix's columns p_vs_<model>."""
    models = [row["model"] for row in arena["rows"]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ARENA_CSV_COLUMNS + [f"p_vs_{_spreadsheet_safe(m)}" for m in models])
    for row in arena["rows"]:
        values = [_spreadsheet_safe(row["model"])] + [row[k] for k in ARENA_CSV_COLUMNS[1:8]]
        values += [arena["method"], _spreadsheet_safe(arena["anchor"])]
        values += [arena["win_matrix"][row["model"]][m] for m in models]
        writer.writerow(["" if v is None else v for v in values])
    return out.getvalue()


# --- chart ------------------------------------------------------------------------------------------------------

@dataclass
class ArenaPoint:
    model: str
    label: str
    rating: str
    y: str
    text_y: str
    x: str
    interval: dict[str, str] | None  # lo, hi, top, bottom


@dataclass
class ArenaChart:
    """Where everything of the ratings chart goes (CI whiskers around each rating); the template draws it."""
    width: int
    height: int
    max_width: str
    name_x: int
    axis_top: int
    axis_bottom: int
    axis_label_y: int
    ticks: list[dict[str, str]]
    points: list[ArenaPoint]
    method: str


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = max(high - low, 1.0)
    raw = span / count
    step = next(s * 10 ** e for e in range(6) for s in (1, 2, 5) if s * 10 ** e >= raw)
    start = (low // step) * step
    return [start + i * step for i in range(int((high - start) // step) + 2)]


def arena_chart(arena: dict[str, Any], *, width: int = 640, row_height: int = 26) -> ArenaChart:
    """Ratings (dots) with their bootstrap 95% intervals (whiskers) on a shared Elo axis, best first."""
    rows = arena["rows"]
    values = [v for row in rows for v in (row["rating"], row["ci_low"], row["ci_high"]) if v is not None]
    ticks_at = _nice_ticks(min(values), max(values))
    low, high = ticks_at[0], ticks_at[-1]
    label_w, pad = 180, 8
    plot_w = width - label_w - 60
    height = pad * 2 + max(1, len(rows)) * row_height + 20

    def x(v: float) -> float:
        return label_w + plot_w * (v - low) / (high - low)

    points = []
    for i, row in enumerate(rows):
        mid = pad + i * row_height + row_height / 2
        interval = None
        if row["ci_low"] is not None and row["ci_high"] is not None:
            interval = {"lo": f"{x(row['ci_low']):.1f}", "hi": f"{x(row['ci_high']):.1f}", "top": f"{mid - 6:.1f}",
                        "bottom": f"{mid + 6:.1f}", "text_x": f"{x(row['ci_high']) + 6:.1f}"}
        points.append(ArenaPoint(model=row["model"], label=row["model"][:30], rating=f"{row['rating']:.0f}",
                                 y=f"{mid:.1f}", text_y=f"{mid + 4:.1f}", x=f"{x(row['rating']):.1f}",
                                 interval=interval))
    ticks = [{"x": f"{x(t):.1f}", "label": f"{t:.0f}"} for t in ticks_at]
    return ArenaChart(width=width, height=height, max_width=f"{width * 1.5:.0f}", name_x=label_w - 8, axis_top=pad,
                      axis_bottom=height - 20, axis_label_y=height - 6, ticks=ticks, points=points,
                      method=arena["method"])


def arena_matrix_rows(arena: dict[str, Any]) -> list[dict[str, Any]]:
    """The predicted win-probability matrix as table rows: {model, cells: [P(model beats column) or None]}."""
    models = [row["model"] for row in arena["rows"]]
    return [{"model": a, "cells": [arena["win_matrix"][a][b] for b in models]} for a in models]


__all__ = ["alpaca_eval_arena", "arena_chart", "arena_csv", "arena_matrix_rows", "bootstrap_param",
           "comparison_battles", "dataset_arena", "seed_param"]
