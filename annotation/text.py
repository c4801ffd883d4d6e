"""Text PostgreSQL cannot store: the one policy, in one place.

PostgreSQL's text and jsonb hold neither NUL (U+0000) nor lone surrogates (U+D800-U+DFFF outside a
pair). Python strings hold both: JSON's "\\u0000" and "\\ud800" escapes decode to them, and a file read
with errors="surrogateescape" turns each byte that is not UTF-8 into one. SQLite stores them, so a
check that only the database makes would differ between the two. Two rules, applied before anything
is stored:

- What people send (API bodies, forms, query parameters, imported files) is refused:
  `input_text_check` raises a ValidationError naming the field (a 400 over the API, an import's
  rejected line), and nothing is stored.
- What models write (generation answers, judge outputs and rationales, CLAIR revisions, simulated
  annotators) is cleaned and stored: `text_clean` removes NUL, replaces lone surrogates with
  U+FFFD and counts both; the count is kept beside the output (under TEXT_CLEANED_KEY) so nothing is
  hidden. A model's text never fails a job.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

TEXT_CLEANED_KEY = "text_cleaned"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(text: str) -> bool:
    """The fast answer for almost all text: no NUL (a memchr) and ASCII (a flag CPython keeps) or no surrogate."""
    return "\x00" not in text and (text.isascii() or _SURROGATE.search(text) is None)


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored (the first offending character), or None when it can."""
    if _storable(text):
        return None
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "contains a NUL character (\\u0000), which cannot be stored"
    return f"contains a lone surrogate (\\u{ord(char):04x}), which is not valid Unicode and cannot be stored"


def unstorable_text(value: Any, where: str = "") -> tuple[str, str] | None:
    """(field path, reason) of the first string in `value` (a str, or dicts and lists of them, keys
    included) that cannot be stored; None when all can. Paths read `a.b[2].c`, as the APIs name fields;
    they are built only for what is found (a body is walked on every request)."""
    found = _find(value)
    if found is None:
        return None
    reason, parts = found
    path = where
    for part in reversed(parts):
        path = f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else str(part))
    return path or "", reason


def _find(value: Any) -> tuple[str, list] | None:
    """(reason, path parts innermost first) of the first unstorable string in `value`."""
    if isinstance(value, str):
        problem = text_problem(value)
        return (problem, []) if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (problem := text_problem(key)):
                return f"a key {problem}", []
            if not isinstance(item, (int, float, bool)) and item is not None and (found := _find(item)):
                found[1].append(str(key))
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if not isinstance(item, (int, float, bool)) and item is not None and (found := _find(item)):
                found[1].append(index)
                return found
    return None


def input_text_check(value: Any, *, field: str = "") -> None:
    """Refuse text a person sent that cannot be stored: a ValidationError naming the field ("body"
    when the value itself is the whole input)."""
    found = unstorable_text(value, field)
    if found is not None:
        path, reason = found
        raise ValidationError({path or "body": reason})


def query_params_check(params) -> None:
    """Refuse query parameters (a QueryDict) holding text that cannot be stored or compared."""
    for key, values in params.lists():
        input_text_check(key, field="query parameter")
        for value in values:
            input_text_check(value, field=key)


def invalid_utf8_problem(text: str, start: int = 0, end: int | None = None) -> str | None:
    """Text decoded with errors="surrogateescape" (or text[start:end] of it, not copied): why it is not
    UTF-8 (the first bad byte), or None."""
    if text.isascii():
        return None
    found = _SURROGATE.search(text, start, len(text) if end is None else end)
    if found is None:
        return None
    code = ord(found.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"not valid UTF-8 (byte 0x{code - 0xDC00:02x})"
    return "not valid UTF-8 (an encoded surrogate)"


@dataclass
class TextCleaning:
    """What text_clean removed or replaced."""

    nul_removed: int = 0
    surrogates_replaced: int = 0

    def __bool__(self) -> bool:
        return bool(self.nul_removed or self.surrogates_replaced)

    def add(self, other: TextCleaning | dict | None) -> None:
        if other:
            other = other if isinstance(other, dict) else other.note()
            self.nul_removed += int(other.get("nul_removed", 0))
            self.surrogates_replaced += int(other.get("surrogates_replaced", 0))

    def note(self) -> dict:
        """The note kept beside a cleaned output (what TEXT_CLEANED_KEY holds)."""
        return {"nul_removed": self.nul_removed, "surrogates_replaced": self.surrogates_replaced}

    def describe(self) -> str:
        parts = []
        if self.nul_removed:
            parts.append(f"{self.nul_removed} NUL character{'s' if self.nul_removed != 1 else ''} removed")
        if self.surrogates_replaced:
            parts.append(f"{self.surrogates_replaced} lone surrogate{'s' if self.surrogates_replaced != 1 else ''} "
                         "replaced by U+FFFD")
        return ", ".join(parts)


def text_clean(value: Any, cleaning: TextCleaning | None = None) -> tuple[Any, TextCleaning]:
    """A model's output (or the echo of a rejected input in a report) made storable: NUL removed, lone
    surrogates replaced by U+FFFD, in a str or in dicts and lists of them (keys included). Returns (the
    cleaned value, what was done); `cleaning` adds to a count kept over several values."""
    cleaning = cleaning if cleaning is not None else TextCleaning()
    return _clean(value, cleaning), cleaning


def _clean(value: Any, cleaning: TextCleaning) -> Any:
    if isinstance(value, str):
        if _storable(value):
            return value
        nul = value.count("\x00")
        if nul:
            value = value.replace("\x00", "")
            cleaning.nul_removed += nul
        value, replaced = _SURROGATE.subn("\ufffd", value)
        cleaning.surrogates_replaced += replaced
        return value
    if isinstance(value, dict):
        return {_clean(k, cleaning): _clean(v, cleaning) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, cleaning) for v in value]
    return value


def _described(note: Any) -> str | None:
    if not isinstance(note, dict):
        return None
    cleaning = TextCleaning()
    cleaning.add(note)
    return cleaning.describe() or None


def text_cleaned_notes(*, metadata: dict | None, suggestions=()) -> list[str]:
    """What was cleaned out of the model text of a record, one line each, for the pages that show it:
    its fields' notes (metadata[field][TEXT_CLEANED_KEY], written by generation), the record's own
    ({call: note}, e.g. a CLAIR revision) and its suggestions' (raw[TEXT_CLEANED_KEY], {call: note})."""
    lines = []
    for key, value in (metadata or {}).items():
        if key == TEXT_CLEANED_KEY and isinstance(value, dict):
            lines += [f"{call}: {text}" for call, note in value.items() if (text := _described(note))]
        elif isinstance(value, dict) and (text := _described(value.get(TEXT_CLEANED_KEY))):
            lines.append(f"{key}: {text}")
    for s in suggestions:
        notes = (s.raw or {}).get(TEXT_CLEANED_KEY) if isinstance(s.raw, dict) else None
        for call, note in (notes or {}).items():
            if text := _described(note):
                lines.append(f"{s.agent or 'judge'} ({call}): {text}")
    return lines
