"""Gold answers in bulk: a gold file (JSON lines, a JSON array or CSV) or an API body of
{"external_id" | "record", "answer"} items, and the gold_answer column of a records import.

A gold file is all-or-nothing: every line is checked first (the record it names exists in the
dataset, is named once, and its answer passes gold.gold_answer_validate); any bad line and nothing
is stored, with every bad line reported as (line, field, reason). The writes all end in
gold.records_gold_set, the one service that marks gold.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from ..access import parse_pk
from ..errors import validation_items
from ..models import Dataset, Question, Record
from ..selectors import compared_fields, dataset_questions
from ..text import unstorable_text
from .gold import SCORED_KINDS, gold_answer_validate, records_gold_set

GOLD_ITEM_KEYS = ("external_id", "record", "answer")
LOOKUP_CHUNK = 2_000


@dataclass(frozen=True)
class GoldLineError:
    line: int
    field: str
    reason: str

    def as_dict(self) -> dict:
        return {"line": self.line, "field": self.field, "reason": self.reason}

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


class GoldLinesRejected(Exception):
    """A gold file with bad lines: nothing was stored. `errors` names each bad line."""

    def __init__(self, *, errors: list[GoldLineError], total_lines: int, more: int = 0):
        self.errors = errors
        self.total_lines = total_lines
        self.more = more  # bad lines beyond the ones listed
        super().__init__(self.message)

    @property
    def message(self) -> str:
        bad = len({e.line for e in self.errors}) + self.more
        return f"nothing stored: {bad} of {self.total_lines} lines are not valid gold answers"

    def as_dict(self) -> dict:
        """The body of the API's 400: `detail` says nothing was stored, `rejected` lists the bad lines."""
        detail = self.message
        if self.more:
            detail += f" (the first {len(self.errors)} problems are listed; {self.more} more not)"
        return {"detail": detail, "rejected": [e.as_dict() for e in self.errors]}


MAX_ERRORS_LISTED = 1_000


def answer_validation_errors(exc: ValidationError, *, prefix: str) -> list[tuple[str, str]]:
    """(field, reason) of a gold_answer_validate error, its "gold_answer" key renamed to `prefix`
    (the name the caller's input gives the answer)."""
    out = []
    for key, messages in validation_items(exc):
        key = key or "gold_answer"
        if key == "gold_answer" or key.startswith("gold_answer."):
            key = prefix + key[len("gold_answer"):]
        out.append((key, " ".join(messages)))
    return out


def answer_value_read(value: Any) -> Any:
    """An answer as a file holds it: an object, or (a CSV cell) its JSON text."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValidationError({"answer": 'must be a JSON object of question name to the known answer, '
                                             'e.g. {"ranking": ["response-1", "response-2"]}'}) from None
    return value


def gold_lines_check(*, dataset: Dataset, items: Iterable[tuple[int, Any]]) -> dict[int, dict]:
    """The gold answers of a file's lines ((line number, item) pairs; an item is
    {"external_id": ..., "answer": {...}} or {"record": <id>, "answer": {...}}, or an
    imports.LineError for a line that could not be read), checked: {record id: clean answer}.
    Raises GoldLinesRejected naming every bad line (line, field, reason)."""
    questions = dataset_questions(dataset)
    errors: list[GoldLineError] = []
    more = 0
    total = 0
    by_external: dict[str, list[tuple[int, dict]]] = {}
    by_pk: dict[int, list[tuple[int, dict]]] = {}

    def bad(line: int, name: str, reason: str) -> None:
        nonlocal more
        if len(errors) < MAX_ERRORS_LISTED:
            errors.append(GoldLineError(line, name, reason))
        else:
            more += 1

    for line, item in items:
        total += 1
        reason = getattr(item, "reason", None)
        if reason is not None:  # an unreadable line (malformed JSON, a bad CSV row)
            bad(line, "line", reason)
            continue
        checked = _item_check(item, questions=questions, allow_ties=dataset.allow_ties)
        if isinstance(checked, list):
            for name, text in checked:
                bad(line, name, text)
            continue
        key, value, answer = checked
        target = by_external if key == "external_id" else by_pk
        target.setdefault(value, []).append((line, answer))
    found_external = _external_ids_found(dataset, list(by_external))
    found_pk = _pks_found(dataset, list(by_pk))
    clean: dict[int, dict] = {}
    first_line: dict[int, int] = {}
    named = [(line, "external_id", eid, found_external.get(eid), answer)
             for eid, rows in by_external.items() for line, answer in rows]
    named += [(line, "record", pk, pk if pk in found_pk else None, answer)
              for pk, rows in by_pk.items() for line, answer in rows]
    for line, key, value, record_id, answer in sorted(named, key=lambda n: n[0]):
        if record_id is None:
            bad(line, key, f"no record {value!r} in this dataset")
        elif record_id in first_line:
            bad(line, key, f"record {value!r} is given on line {first_line[record_id]} too")
        else:
            first_line[record_id] = line
            clean[record_id] = answer
    if errors or more:
        errors.sort(key=lambda e: e.line)
        raise GoldLinesRejected(errors=errors, total_lines=total, more=more)
    return clean


def _item_check(item: Any, *, questions: list[Question], allow_ties: bool):
    """(key, value, clean answer) of one gold item, or its [(field, reason)] problems."""
    if not isinstance(item, Mapping):
        return [("line", 'must be an object {"external_id" or "record", "answer"}')]
    unknown = sorted(set(item) - set(GOLD_ITEM_KEYS))
    if unknown:
        return [(k, f"unknown key (the keys are {', '.join(GOLD_ITEM_KEYS)})") for k in unknown]
    problems: list[tuple[str, str]] = []
    external_id, pk = item.get("external_id"), item.get("record")
    external_id = None if external_id == "" else external_id
    pk = None if pk == "" else pk
    key: str | None = None
    value: Any = None
    if external_id is not None and pk is not None:
        problems.append(("record", "give external_id or record, not both"))
    elif external_id is not None:
        if isinstance(external_id, bool) or not isinstance(external_id, (str, int)):
            problems.append(("external_id", "must be a string or an integer"))
        elif (unstorable := unstorable_text(str(external_id), "external_id")) is not None:
            problems.append(unstorable)  # no record has it, and the database could not even look it up
        else:
            key, value = "external_id", str(external_id)
    elif pk is not None:
        value = parse_pk(pk) if not isinstance(pk, bool) else -1
        if value < 1:
            problems.append(("record", "must be a record id (a positive integer)"))
        key = "record"
    else:
        problems.append(("external_id", "required: the record's external_id (or its id as `record`)"))
    if "answer" not in item or item["answer"] in (None, ""):
        problems.append(("answer", "required: the known answer, an object of question name to value"))
    else:
        try:
            answer = gold_answer_validate(questions=questions, answer=answer_value_read(item["answer"]),
                                          allow_ties=allow_ties)
        except ValidationError as exc:
            problems += answer_validation_errors(exc, prefix="answer")
    if problems:
        return problems
    return key, value, answer


def _external_ids_found(dataset: Dataset, external_ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(external_ids), LOOKUP_CHUNK):
        chunk = external_ids[start:start + LOOKUP_CHUNK]
        found.update(Record.objects.filter(dataset=dataset, external_id__in=chunk).values_list("external_id", "pk"))
    return found


def _pks_found(dataset: Dataset, pks: list[int]) -> set[int]:
    found: set[int] = set()
    for start in range(0, len(pks), LOOKUP_CHUNK):
        found |= set(Record.objects.filter(dataset=dataset, pk__in=pks[start:start + LOOKUP_CHUNK])
                     .values_list("pk", flat=True))
    return found


@transaction.atomic
def gold_file_import(*, dataset: Dataset, items: Iterable[tuple[int, Any]]) -> int:
    """Mark the records a gold file names as gold with their answers, all or nothing (see
    gold_lines_check; GoldLinesRejected when a line is bad). Returns how many records were set."""
    answers = gold_lines_check(dataset=dataset, items=items)
    if not answers:
        raise ValidationError({"body": "no gold answers: the file holds no lines"})
    return records_gold_set(dataset=dataset, answers=answers)


def gold_file_read(*, stream, fmt: str) -> Iterable[tuple[int, Any]]:
    """(line, item) of a gold file: JSON lines (ndjson), a JSON array (json) or CSV (columns
    external_id or record, and answer holding the answer's JSON text), streamed."""
    from ..imports import rows_read

    if fmt not in ("ndjson", "json", "csv"):
        raise ValidationError({"format": "a gold file is JSON lines, a JSON array or CSV"})
    for line, raw, _size in rows_read(stream=stream, fmt=fmt, max_bytes=settings.PREFLAB_MAX_RECORD_BYTES):
        if fmt == "csv" and isinstance(raw, dict):
            raw = {k: v for k, v in raw.items() if v != ""}
        yield line, raw


# --- answers built from a choice -----------------------------------------------------------------

def gold_answer_best(*, question: Question, best: str | None, tie: bool = False) -> dict:
    """The known answer "`best` is the best response" for the dataset's ranked question (a ranking,
    a graded preference or a comparison rating), or a tie of all its responses (`tie`). Only the
    best response is scored (gold.question_answer_matches), so a ranking ranks the others after it
    in field order and a preference takes its strongest level. ValidationError on `gold` when the
    question cannot say it; the answer still goes through gold_answer_validate when stored."""
    compares = compared_fields(question)
    names = compares or list((question.options or {}).get("values", []))
    if not tie and best not in names:
        raise ValidationError({"gold": f"{best!r} is not one of the responses {question.name!r} ranks "
                                       f"({', '.join(map(str, names))})"})
    if question.kind == Question.Kind.PREFERENCE:
        if tie:
            raise ValidationError({"gold": f"a tie cannot be the known answer to the preference {question.name!r}"})
        scale = (question.options or {}).get("scale") or []
        return {question.name: {"preferred": best, "strength": scale[0]["value"] if scale else None}}
    if compares is not None:  # a comparison rating: 0 tie, 1 the first field, 2 the second
        return {question.name: 0 if tie else (1 if best == compares[0] else 2)}
    if question.kind != Question.Kind.RANKING:
        raise ValidationError({"gold": f"{question.name!r} is not a ranking or preference question"})
    if tie:
        return {question.name: [{"value": name, "rank": 1} for name in names]}
    rest = [name for name in names if name != best]
    return {question.name: [{"value": best, "rank": 1}] + [{"value": n, "rank": k} for k, n in enumerate(rest, start=2)]}


def gold_answer_from_values(*, questions: list[Question], values: Mapping[str, Any] | None) -> dict:
    """A response's values kept to the questions gold scores (ranking, preference, rating, label):
    the known answer "this annotator's answer is right"."""
    scored = {q.name for q in questions if q.kind in SCORED_KINDS}
    return {name: value for name, value in (values or {}).items() if name in scored}


# --- the gold_answer column of a records import ---------------------------------------------------

GOLD_ANSWER_KEY = "gold_answer"


def gold_answer_of_row(*, questions: list[Question], raw: dict, allow_ties: bool) -> dict | None:
    """Take the optional gold_answer key (or CSV column: its JSON text) off an imported record and
    check it: the clean answer, None when the row has none; ValidationError naming the field."""
    if GOLD_ANSWER_KEY not in raw:
        return None
    value = raw.pop(GOLD_ANSWER_KEY)
    if value in (None, "", {}):
        return None
    try:
        value = answer_value_read(value)
    except ValidationError as exc:
        raise ValidationError({GOLD_ANSWER_KEY: exc.message_dict["answer"]}) from None
    return gold_answer_validate(questions=questions, answer=value, allow_ties=allow_ties)


def records_gold_mark(*, dataset: Dataset, answers: Mapping[str, dict]) -> int:
    """Mark stored records gold by external id ({external id: answer}, answers already checked by
    gold_answer_of_row); the ids not stored are skipped. Returns how many were set."""
    if not answers:
        return 0
    found = _external_ids_found(dataset, list(answers))
    by_pk = {pk: answers[eid] for eid, pk in found.items()}
    return records_gold_set(dataset=dataset, answers=by_pk) if by_pk else 0


# --- reads -------------------------------------------------------------------------------------

def records_gold_of(*, dataset: Dataset):
    """The dataset's gold records (the partial index record_gold_idx), for the admin's gold list."""
    return (Record.objects.filter(dataset=dataset, is_gold=True)
            .only("id", "external_id", "is_gold", "gold_answer", "submitted_count"))
