"""Validation of what users send: dataset definitions, records, response values.

Every function raises django.core.exceptions.ValidationError with a dict naming the field and the
reason, so the API answers 400 with the same words and the CLI prints them with a line number.
Nothing here writes to the database.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError

from .models import Field, Question
from .text import input_text_check

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,100}")  # use with fullmatch (a "$" anchor lets a trailing newline through)
MAX_TEXT_ANSWER = 20_000
CHAT_ROLES = {"system", "user", "assistant", "tool"}


# --- parameters --------------------------------------------------------------------------------

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def bool_param(name: str, value: Any, *, default: bool = False) -> bool:
    """A yes/no option from a query string, a CLI or job params: true/false, 1/0, yes/no, on/off
    (any case); a bool as it is; missing or empty -> `default`. Else a ValidationError naming it."""
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    text = str(value).strip().lower()
    if text == "":
        return default
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValidationError({name: f"must be true or false, not {str(value)[:40]!r}"})


# --- dataset definitions -----------------------------------------------------------------------

def field_specs_validate(fields: list[dict]) -> list[dict]:
    if not isinstance(fields, list) or not fields:
        raise ValidationError({"fields": "a dataset needs at least one field"})
    seen: set[str] = set()
    out = []
    for i, f in enumerate(fields):
        where = f"fields[{i}]"
        if not isinstance(f, dict):
            raise ValidationError({where: "must be an object"})
        unknown = set(f) - {"name", "title", "kind", "required", "position"}
        if unknown:
            raise ValidationError({where: f"unknown keys: {', '.join(sorted(unknown))}"})
        name = f.get("name")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise ValidationError({f"{where}.name": "letters, digits, '-' and '_' only (1-100 characters)"})
        if name in seen:
            raise ValidationError({f"{where}.name": f"duplicate field name {name!r}"})
        seen.add(name)
        kind = f.get("kind", Field.Kind.TEXT)
        if kind not in Field.Kind.values:
            raise ValidationError({f"{where}.kind": f"must be one of {', '.join(Field.Kind.values)}"})
        out.append({"name": name, "title": str(f.get("title") or name), "kind": kind,
                    "required": bool(f.get("required", True)), "position": int(f.get("position", i))})
    return out


def question_specs_validate(questions: list[dict], field_names: set[str]) -> list[dict]:
    if not isinstance(questions, list) or not questions:
        raise ValidationError({"questions": "a dataset needs at least one question"})
    seen: set[str] = set()
    out = []
    for i, q in enumerate(questions):
        where = f"questions[{i}]"
        if not isinstance(q, dict):
            raise ValidationError({where: "must be an object"})
        unknown = set(q) - {"name", "title", "description", "kind", "required", "options", "position"}
        if unknown:
            raise ValidationError({where: f"unknown keys: {', '.join(sorted(unknown))}"})
        name = q.get("name")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise ValidationError({f"{where}.name": "letters, digits, '-' and '_' only (1-100 characters)"})
        if name in seen:
            raise ValidationError({f"{where}.name": f"duplicate question name {name!r}"})
        seen.add(name)
        kind = q.get("kind")
        if kind not in Question.Kind.values:
            raise ValidationError({f"{where}.kind": f"must be one of {', '.join(Question.Kind.values)}"})
        options = q.get("options") or {}
        if not isinstance(options, dict):
            raise ValidationError({f"{where}.options": "must be an object"})
        options = _question_options_validate(kind, options, field_names, f"{where}.options")
        out.append({"name": name, "title": str(q.get("title") or name), "description": str(q.get("description") or ""),
                    "kind": kind, "required": bool(q.get("required", True)), "options": options,
                    "position": int(q.get("position", i))})
    return out


def _question_options_validate(kind: str, options: dict, field_names: set[str], where: str) -> dict:
    values = options.get("values")
    if kind == Question.Kind.TEXT:
        return {k: v for k, v in options.items() if k in {"placeholder", "max_length"}}
    if kind == Question.Kind.PREFERENCE:
        return _preference_options_validate(options, field_names, where)
    if not isinstance(values, list) or not values:
        raise ValidationError({f"{where}.values": "a non-empty list is required"})
    if len(set(map(_hashable, values))) != len(values):
        raise ValidationError({f"{where}.values": "values must be distinct"})
    if kind == Question.Kind.RANKING:
        if len(values) < 2:
            raise ValidationError({f"{where}.values": "a ranking needs at least two fields"})
        missing = [v for v in values if v not in field_names]
        if missing:
            raise ValidationError({f"{where}.values": f"not fields of this dataset: {', '.join(map(str, missing))}"})
        return {"values": list(values)}
    if kind == Question.Kind.RATING:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ValidationError({f"{where}.values": "rating values must be integers"})
        out: dict[str, Any] = {"values": list(values)}
        compares = options.get("compares")
        if compares is not None:
            if (not isinstance(compares, list) or len(compares) != 2 or compares[0] == compares[1]
                    or any(c not in field_names for c in compares)):
                raise ValidationError({f"{where}.compares": "must name two different fields of this dataset"})
            if sorted(values) != [0, 1, 2]:
                raise ValidationError({f"{where}.values": "a comparison rating uses [0, 1, 2] (0 = tie)"})
            out["compares"] = list(compares)
        return out
    # label
    if not all(isinstance(v, str) and v for v in values):
        raise ValidationError({f"{where}.values": "labels must be non-empty strings"})
    return {"values": list(values), "multiple": bool(options.get("multiple", False))}


PREFERENCE_MAX_LEVELS = 4  # keys 1-8 pick a side and a strength: four levels each way
PREFERENCE_DEFAULT_SCALE = ({"label": "much better", "value": 3}, {"label": "better", "value": 2},
                            {"label": "slightly better", "value": 1}, {"label": "about the same", "value": 0})


def _preference_options_validate(options: dict, field_names: set[str], where: str) -> dict:
    """A graded pairwise preference: the two fields it compares, a strength scale (strongest level
    first, each {label, value}; plain labels get the values n-1 .. 0) and whether annotators may say
    both answers are bad."""
    unknown = set(options) - {"compares", "scale", "both_bad"}
    if unknown:
        raise ValidationError({where: f"unknown keys: {', '.join(sorted(unknown))}"})
    compares = options.get("compares")
    if (not isinstance(compares, list) or len(compares) != 2 or compares[0] == compares[1]
            or any(not isinstance(c, str) or c not in field_names for c in compares)):
        raise ValidationError({f"{where}.compares": "must name two different fields of this dataset"})
    scale = options.get("scale")
    if scale is None:
        scale = [dict(level) for level in PREFERENCE_DEFAULT_SCALE]
    if not isinstance(scale, list) or not 1 <= len(scale) <= PREFERENCE_MAX_LEVELS:
        raise ValidationError({f"{where}.scale": f"a list of 1 to {PREFERENCE_MAX_LEVELS} strength levels, strongest first"})
    levels = []
    for i, level in enumerate(scale):
        if isinstance(level, str):
            level = {"label": level, "value": len(scale) - 1 - i}
        if not isinstance(level, dict) or set(level) != {"label", "value"}:
            raise ValidationError({f"{where}.scale[{i}]": 'each level is {"label": text, "value": number}'})
        label, value = level["label"], level["value"]
        if not isinstance(label, str) or not label.strip() or len(label) > 60:
            raise ValidationError({f"{where}.scale[{i}].label": "a non-empty text of at most 60 characters"})
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
            raise ValidationError({f"{where}.scale[{i}].value": "must be a finite number"})
        levels.append({"label": label.strip(), "value": value})
    if len({lv["label"] for lv in levels}) != len(levels):
        raise ValidationError({f"{where}.scale": "labels must be distinct"})
    if any(a["value"] <= b["value"] for a, b in zip(levels, levels[1:])):
        raise ValidationError({f"{where}.scale": "values must decrease from the strongest level to the weakest"})
    both_bad = options.get("both_bad", False)
    if not isinstance(both_bad, bool):
        raise ValidationError({f"{where}.both_bad": "must be true or false"})
    return {"compares": list(compares), "scale": levels, "both_bad": both_bad}


def _hashable(v: Any) -> Any:
    return orjson.dumps(v) if isinstance(v, (list, dict)) else v


# --- records -----------------------------------------------------------------------------------

_RECORD_KEYS = frozenset({"external_id", "id", "fields", "metadata", "priority"})
_CHAT = str(Field.Kind.CHAT)  # a plain str: compared once per field of every imported record


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str
    required: bool


def record_validate(raw: Any, specs: dict[str, FieldSpec], *, max_bytes: int | None = None,
                    size: int | None = None) -> dict:
    """Check one incoming record ({external_id, fields, metadata, priority}) and normalise it.

    `size` is the encoded size when the caller already has it (an NDJSON line); otherwise it is
    measured. Returns {"external_id", "fields", "metadata", "priority"}.
    """
    max_bytes = max_bytes or settings.PREFLAB_MAX_RECORD_BYTES
    if not isinstance(raw, dict):
        raise ValidationError({"record": "must be a JSON object"})
    if not raw.keys() <= _RECORD_KEYS:
        raise ValidationError({"record": f"unknown keys: {', '.join(sorted(raw.keys() - _RECORD_KEYS))}"})
    if size is None:
        size = len(_json_dumps(raw))
    if size > max_bytes:
        raise ValidationError({"record": f"record is {size} bytes, over the limit of {max_bytes}"})
    fields = raw.get("fields")
    if not isinstance(fields, dict):
        raise ValidationError({"fields": "must be an object of field name to value"})
    if not fields.keys() <= specs.keys():
        raise ValidationError({"fields": f"unknown fields: {', '.join(sorted(fields.keys() - specs.keys()))}"})
    for spec in specs.values():
        value = fields.get(spec.name)
        if not (value.__class__ is str and value):  # a non-empty text, the usual case, skips these checks
            if value is None or value == "" or value == []:
                if spec.required:
                    raise ValidationError({f"fields.{spec.name}": "required"})
                fields.pop(spec.name, None)
                continue
            if spec.kind != _CHAT and not isinstance(value, str):
                raise ValidationError({f"fields.{spec.name}": "must be a string"})
        if spec.kind == _CHAT:
            _chat_validate(value, f"fields.{spec.name}")
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValidationError({"metadata": "must be an object"})
    priority = raw.get("priority", 0.0)
    if isinstance(priority, bool) or not isinstance(priority, (int, float)):
        raise ValidationError({"priority": "must be a number"})
    external_id = raw.get("external_id", raw.get("id"))
    if external_id is None or external_id == "":
        # Content-addressed id: re-sending the same record updates it instead of duplicating it.
        external_id = "sha1-" + hashlib.sha1(_json_dumps(fields, option=orjson.OPT_SORT_KEYS, field="fields")).hexdigest()
    elif isinstance(external_id, bool) or not isinstance(external_id, (str, int)):
        raise ValidationError({"external_id": "must be a string or an integer"})
    external_id = str(external_id)
    if len(external_id) > 255:
        raise ValidationError({"external_id": "longer than 255 characters"})
    return {"external_id": external_id, "fields": fields, "metadata": metadata, "priority": float(priority)}


def _json_dumps(value: Any, *, option: int | None = None, field: str = "") -> bytes:
    """orjson.dumps; a lone surrogate (which orjson refuses) is a ValidationError naming its field."""
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError:
        input_text_check(value, field=field)
        raise


def _chat_validate(value: Any, where: str) -> None:
    if not isinstance(value, list):
        raise ValidationError({where: "a chat is a list of {role, content} messages"})
    for i, m in enumerate(value):
        if (not isinstance(m, dict) or m.get("role") not in CHAT_ROLES
                or not isinstance(m.get("content"), str)):
            raise ValidationError({f"{where}[{i}]": "each message needs a role (system|user|assistant|tool) and a string content"})


def field_specs_of(dataset) -> dict[str, FieldSpec]:
    return {f.name: FieldSpec(f.name, f.kind, f.required) for f in dataset.fields.all()}


# --- response values ---------------------------------------------------------------------------

def response_values_validate(*, questions: list[Question], values: Any, status: str, allow_ties: bool) -> dict:
    """Check a response's values against the dataset's questions; returns {question: value}.

    Accepts Argilla's wrapped form {"q": {"value": v}} as well as {"q": v}. Required questions
    must be answered on submit, and a ranking must rank every field; drafts and discards may be
    partial (questions left out, a ranking of some of the fields), so they keep what was entered.
    """
    partial = status != "submitted"
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValidationError({"values": "must be an object of question name to value"})
    by_name = {q.name: q for q in questions}
    unknown = set(values) - set(by_name)
    if unknown:
        raise ValidationError({"values": f"unknown questions: {', '.join(sorted(unknown))}"})
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dict) and set(value) == {"value"}:
            value = value["value"]
        if value is None:
            continue
        out[name] = question_value_validate(by_name[name], value, allow_ties=allow_ties, partial=partial)
    if status == "submitted":
        missing = [q.name for q in questions if q.required and q.name not in out]
        if missing:
            raise ValidationError({f"values.{missing[0]}": "required to submit"})
    return out


def question_value_validate(question: Question, value: Any, *, allow_ties: bool, partial: bool = False) -> Any:
    """One answer checked against its question; `partial`: a ranking may leave fields unranked (drafts)."""
    where = f"values.{question.name}"
    options = question.options or {}
    allowed = options.get("values", [])
    if question.kind == Question.Kind.RANKING:
        return ranking_validate(value, allowed, allow_ties=allow_ties, where=where, partial=partial)
    if question.kind == Question.Kind.RATING:
        if isinstance(value, bool) or value not in allowed:
            raise ValidationError({where: f"{value!r} is not one of {allowed}"})
        return value
    if question.kind == Question.Kind.PREFERENCE:
        return preference_validate(value, options, where=where)
    if question.kind == Question.Kind.LABEL:
        if options.get("multiple"):
            if not isinstance(value, list) or len(set(value)) != len(value) or not value:
                raise ValidationError({where: "a non-empty list of distinct labels"})
            bad = [v for v in value if v not in allowed]
        else:
            bad = [] if value in allowed else [value]
        if bad:
            raise ValidationError({where: f"not among the labels: {', '.join(map(str, bad))}"})
        return value
    if not isinstance(value, str):
        raise ValidationError({where: "must be a string"})
    input_text_check(value, field=where)  # the browser's form as well as the API
    if len(value) > int(options.get("max_length", MAX_TEXT_ANSWER)):
        raise ValidationError({where: "too long"})
    return value


def preference_validate(value: Any, options: dict, *, where: str = "preference") -> dict:
    """A preference answer: {"preferred": <one of the compared fields>, "strength": <a value of the
    scale>} and/or {"both_bad": true} (when the question offers it). Returned with the scale's own
    value for the strength and both_bad only when true."""
    if not isinstance(value, dict):
        raise ValidationError({where: 'a preference is {"preferred": <field>, "strength": <level value>} '
                                      'or {"both_bad": true}'})
    unknown = set(value) - {"preferred", "strength", "both_bad"}
    if unknown:
        raise ValidationError({where: f"unknown keys: {', '.join(sorted(unknown))}"})
    compares = list(options.get("compares") or [])
    scale = options.get("scale") or []
    out: dict[str, Any] = {}
    preferred, strength = value.get("preferred"), value.get("strength")
    if preferred is not None:
        if preferred not in compares:
            raise ValidationError({where: f"preferred {preferred!r} is not one of the compared fields {compares}"})
        level = next((lv for lv in scale if not isinstance(strength, bool) and lv["value"] == strength), None)
        if level is None:
            raise ValidationError({where: f"strength {strength!r} is not one of the scale's values "
                                          f"{[lv['value'] for lv in scale]}"})
        out["preferred"], out["strength"] = preferred, level["value"]
    elif strength is not None:
        raise ValidationError({where: "a strength needs the preferred field"})
    both_bad = value.get("both_bad", False)
    if not isinstance(both_bad, bool):
        raise ValidationError({where: "both_bad must be true or false"})
    if both_bad:
        if not options.get("both_bad"):
            raise ValidationError({where: "this question has no 'both are bad' choice"})
        out["both_bad"] = True
    if not out:
        raise ValidationError({where: "pick the better response (and how much better) or say both are bad"})
    return out


def ranking_validate(value: Any, fields: list[str], *, allow_ties: bool, where: str = "ranking",
                     partial: bool = False) -> list[dict]:
    """A ranking is [{"value": field, "rank": k}, ...] over exactly the question's fields
    (`partial`, for drafts: over some of them, at least one).

    A plain ordered list of field names is accepted as a shorthand (best first, no ties).
    Ranks are positive integers; equal ranks are ties. Returned sorted by rank.
    """
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = [{"value": v, "rank": i + 1} for i, v in enumerate(value)]
    if not isinstance(value, list) or not value:
        raise ValidationError({where: "a ranking is a list of {value, rank}"})
    seen: list[str] = []
    items = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"value", "rank"} or "value" not in item or "rank" not in item:
            raise ValidationError({where: "each item is {\"value\": <field>, \"rank\": <int>}"})
        rank = item["rank"]
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= len(fields):
            raise ValidationError({where: f"rank of {item['value']!r} must be an integer from 1 to {len(fields)}"})
        if item["value"] in seen:
            raise ValidationError({where: f"{item['value']!r} is ranked twice"})
        if item["value"] not in fields:
            raise ValidationError({where: f"{item['value']!r} is not one of the ranked fields {fields}"})
        seen.append(item["value"])
        items.append({"value": item["value"], "rank": rank})
    missing = [f for f in fields if f not in seen]
    if missing and not partial:
        raise ValidationError({where: f"missing from the ranking: {', '.join(missing)}"})
    ranks = [i["rank"] for i in items]
    if not allow_ties and len(set(ranks)) != len(ranks):
        raise ValidationError({where: "ties are not allowed in this dataset"})
    return sorted(items, key=lambda i: (i["rank"], fields.index(i["value"])))


def workspace_name_validate(name: Any, *, taken, instance=None, what: str) -> str:
    """The name of something a workspace holds (an endpoint, a judge): letters, digits, '-' and '_',
    1-100 characters, and not taken by another one of `taken` (a queryset of the workspace's)."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValidationError({"name": "letters, digits, '-' and '_' only (1-100 characters)"})
    clash = taken.filter(name=name)
    if instance is not None:
        clash = clash.exclude(pk=instance.pk)
    if clash.exists():
        raise ValidationError({"name": f"{what} named {name!r} exists in this workspace"})
    return name


# Characters that make a name shown in a list read as something else: C0 and C1 controls (DEL
# included) and the bidirectional marks, embeddings, overrides and isolates (U+202E turns
# "alice\u202egpj.exe" into "aliceexe.jpg").
_NAME_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def display_name_validate(value: str, *, field: str) -> str:
    """A user name or display name people will read in lists: refused (ValidationError on `field`)
    when it holds a control or text-direction character. Every place that creates or renames an
    account calls this (members page and API, simulated annotators, createsuperuser)."""
    found = _NAME_UNSAFE.search(value)
    if found is not None:
        raise ValidationError({field: f"must not contain control or text-direction characters "
                                      f"(U+{ord(found.group()):04X} at character {found.start() + 1})"})
    return value
