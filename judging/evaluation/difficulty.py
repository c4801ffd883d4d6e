"""Per-instruction difficulty files for AlpacaEval's length-controlled win rate.

AlpacaEval publishes the difficulty of its 805 instructions as a CSV with one ``instruction_difficulty`` column,
keyed by position (row i is the i-th instruction of its evaluation set). Accepted here:

* a mapping ``{instruction: difficulty}`` (JSON object), keyed by the annotations' ``instruction`` text (for a
  dataset: by the record's ``external_id``);
* a list of numbers (JSON list, or a CSV with a ``difficulty`` / ``instruction_difficulty`` column and no
  ``instruction`` column), aligned with the annotations' **distinct instructions in the order they first appear**
  (AlpacaEval's annotation files list every model's outputs in its evaluation set's order, so its published file
  lines up); the list must have exactly one value per distinct instruction;
* a CSV with an ``instruction`` column and a ``difficulty`` / ``instruction_difficulty`` column: a mapping.

Every bad input is a ValidationError under ``instruction_difficulty``.
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Hashable, Sequence
from typing import Any

from django.core.exceptions import ValidationError

FIELD = "instruction_difficulty"
VALUE_COLUMNS = ("instruction_difficulty", "difficulty")


def _number(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError({FIELD: f"{where}: {value!r} is not a number"}) from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValidationError({FIELD: f"{where}: {value!r} is not a finite number"})
    return number


def _from_csv(text: str) -> dict | list:
    reader = csv.DictReader(io.StringIO(text))
    columns = [c for c in (reader.fieldnames or []) if c is not None]
    value_column = next((c for c in VALUE_COLUMNS if c in columns), None)
    if value_column is None:
        raise ValidationError({FIELD: f"a CSV needs a column named {' or '.join(VALUE_COLUMNS)}; got {columns}"})
    rows = list(reader)
    if "instruction" in columns:
        return {row["instruction"]: row[value_column] for row in rows}
    return [row[value_column] for row in rows]


def difficulty_parse(text: str) -> dict | list:
    """The raw content of a difficulty file: JSON (object or list) or CSV."""
    stripped = text.lstrip("\ufeff").strip()
    if not stripped:
        raise ValidationError({FIELD: "the difficulty file is empty"})
    if stripped[0] in "[{":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValidationError({FIELD: f"not valid JSON: {exc.msg} at line {exc.lineno}"}) from None
    return _from_csv(stripped)


def difficulty_resolve(data: Any, *, instructions: Sequence[Hashable],
                       key_map: dict[Any, Hashable] | None = None) -> dict[Hashable, float]:
    """{instruction key: difficulty} from a mapping or a positional list (see the module doc). `instructions` are
    the annotations' distinct instruction keys in order of first appearance; `key_map` turns a mapping's keys into
    those keys (a dataset's external_id -> record id)."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out[key_map.get(key, key) if key_map else key] = _number(value, f"[{key!r}]")
        return out
    if isinstance(data, list):
        if len(data) != len(instructions):
            raise ValidationError({FIELD: f"a list of difficulties is read by position: it needs one value per "
                                          f"distinct instruction ({len(instructions)}), in the order they first "
                                          f"appear; got {len(data)}"})
        return {ins: _number(v, f"[{i}]") for i, (ins, v) in enumerate(zip(instructions, data, strict=True))}
    raise ValidationError({FIELD: "must be a JSON object {instruction: difficulty}, a list of numbers, or a CSV"})
