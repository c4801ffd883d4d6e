"""Shared helpers of the evaluation commands: reading JSON / JSONL inputs with line numbers."""
from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError


def read_items(path: str) -> tuple[list, bool]:
    """A JSON list, or JSONL (one object per line). Returns (items, is_jsonl). Bad JSON: CommandError
    with the line number."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror}") from None
    if text.lstrip().startswith("["):
        try:
            return json.loads(text), False
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
    return items, True


def unwrap(items, is_jsonl: bool) -> tuple[list, list[int] | None]:
    if is_jsonl:
        return [item for _n, item in items], [n for n, _item in items]
    return items, None


def errors_message(path: str, exc: ValidationError, lines: list[int] | None) -> str:
    """'[3].preference: reason' becomes 'FILE: line 4: preference: reason' for JSONL input."""
    out = []
    for key, reasons in exc.message_dict.items():
        where = key
        if lines is not None and key.startswith("["):
            index = int(key[1:key.index("]")])
            rest = key[key.index("]") + 1:].lstrip(".")
            where = f"line {lines[index]}" + (f": {rest}" if rest else "") if index < len(lines) else key
        elif key.startswith("["):
            where = f"item {key}"
        out.append(f"{path}: {where}: {'; '.join(reasons)}")
    return "\n".join(out[:50])
