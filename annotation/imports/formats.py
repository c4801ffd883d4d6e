"""The public preference formats, each read as published: one adapter per format.

An adapter turns one row of a file (a dict of column -> value, whatever the file type: see
readers.rows_read) into a `Pair`: the prompt (a text or the whole conversation as messages), two
answers, which one was preferred (or a tie, or nothing known), the external id, the metadata, and
for an Argilla export its human responses and its suggestions. `pairs.pair_to_record` makes the
record of a Pair. What a format means is kept: a system prompt, scores and rationales go to
metadata, `prompt_id`/`id` become the external id, AlpacaFarm's preference decides the original
chosen; columns a format does not know go to metadata (or reject the line with `strict`).

The format is told from the columns of the first row (`format_detect`) or named; `mapping`
({target: column}) renames the file's columns to the ones a format reads first.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.core.exceptions import ValidationError

from ..validation import bool_param
from .report import ImportFormatError

Messages = list[dict]
Side = str | Messages


@dataclass
class Pair:
    first: Side
    second: Side
    # 0: first preferred, 1: second preferred, "tie", or None (no preference known: shown as is)
    preferred: int | str | None
    prompt: Side | None = None
    external_id: Any = None
    system: str | None = None
    metadata: dict = field(default_factory=dict)
    shuffle: bool = True  # False: first goes to response-1, second to response-2 (human answers refer to them)
    responses: list[dict] = field(default_factory=list)  # Argilla: {user, value, status}
    suggestions: list[dict] = field(default_factory=list)  # Argilla: {value, score, agent, raw}
    # the row's `gold` column: its chosen answer is the known answer (pairs.pair_to_record marks it gold)
    gold: bool = False


@dataclass(frozen=True)
class PairFormat:
    name: str
    title: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    detect: Callable[[dict], bool]
    adapter: Callable[[dict], Callable[[dict], Pair]]  # first row -> (row -> Pair)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


# --- shared pieces -----------------------------------------------------------------------------

def _required(row: dict, key: str) -> Any:
    value = row.get(key)
    if value is None or value == "" or value == []:
        raise ValidationError({key: "required"})
    return value


def messages_of(value: Any, where: str) -> Messages | None:
    """A message list ([{role, content}], or its JSON text in a CSV cell) with only role and
    content kept; None when `value` is a plain text."""
    if isinstance(value, str):
        if not value.lstrip().startswith("[{"):
            return None
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(value, list) or not value:
        raise ValidationError({where: "must be a text or a non-empty list of {role, content} messages"})
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValidationError({where: f"message {i + 1} must be an object with a text role and a text content"})
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _text(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValidationError({where: "must be a text"})
    return str(value)


def _side(value: Any, where: str) -> Side:
    messages = messages_of(value, where)
    return messages if messages is not None else _text(value, where)


def _json_object(value: Any, where: str) -> dict:
    """Argilla writes metadata as a JSON string; others as an object."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValidationError({where: "must be a JSON object"})
    if not isinstance(value, dict):
        raise ValidationError({where: "must be a JSON object"})
    return value


def _number(value: Any) -> Any:
    """A score as a number when it is one (CSV cells are texts)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


# --- the formats -------------------------------------------------------------------------------

def _trl(first_row: dict) -> Callable[[dict], Pair]:
    def adapt(row: dict) -> Pair:
        system = row.get("system")
        if system is not None and not isinstance(system, str):
            raise ValidationError({"system": "must be a string"})
        return Pair(prompt=_side(_required(row, "prompt"), "prompt"), first=_side(_required(row, "chosen"), "chosen"),
                    second=_side(_required(row, "rejected"), "rejected"), preferred=0,
                    external_id=row.get("id", row.get("external_id")), system=system or None,
                    metadata=_json_object(row.get("metadata"), "metadata"))
    return adapt


def _trl_implicit(first_row: dict) -> Callable[[dict], Pair]:
    def adapt(row: dict) -> Pair:
        chosen = messages_of(_required(row, "chosen"), "chosen")
        rejected = messages_of(_required(row, "rejected"), "rejected")
        if chosen is None or rejected is None:
            raise ValidationError({"chosen": "without a prompt column, chosen and rejected must each hold the whole "
                                             "conversation as a list of messages"})
        return Pair(first=chosen, second=rejected, preferred=0, external_id=row.get("id", row.get("external_id")),
                    metadata=_json_object(row.get("metadata"), "metadata"))
    return adapt


def _orca(first_row: dict) -> Callable[[dict], Pair]:
    def adapt(row: dict) -> Pair:
        system = row.get("system")
        return Pair(prompt=_text(_required(row, "question"), "question"), first=_side(_required(row, "chosen"), "chosen"),
                    second=_side(_required(row, "rejected"), "rejected"), preferred=0,
                    system=_text(system, "system") if system not in (None, "") else None,
                    external_id=row.get("id"))
    return adapt


def _ultrafeedback(first_row: dict) -> Callable[[dict], Pair]:
    def adapt(row: dict) -> Pair:
        metadata = {k: _number(row[k]) for k in ("score_chosen", "score_rejected") if row.get(k) not in (None, "")}
        return Pair(prompt=_side(_required(row, "prompt"), "prompt"), first=_side(_required(row, "chosen"), "chosen"),
                    second=_side(_required(row, "rejected"), "rejected"), preferred=0,
                    external_id=row.get("prompt_id"), metadata=metadata)
    return adapt


def _clair(first_row: dict) -> Callable[[dict], Pair]:
    def adapt(row: dict) -> Pair:
        metadata = {"rationale": row["rational"]} if row.get("rational") not in (None, "") else {}
        return Pair(prompt=_side(_required(row, "prompt"), "prompt"), first=_side(_required(row, "chosen"), "chosen"),
                    second=_side(_required(row, "rejected"), "rejected"), preferred=0,
                    external_id=row.get("id", row.get("prompt_id")), metadata=metadata)
    return adapt


ALPACA_TIES = (0, 1.5)


def _alpacafarm(first_row: dict) -> Callable[[dict], Pair]:
    def adapt(row: dict) -> Pair:
        instruction = _text(_required(row, "instruction"), "instruction")
        extra = row.get("input")
        prompt = f"{instruction}\n\n{_text(extra, 'input')}" if extra not in (None, "") else instruction
        raw = row.get("preference")
        try:
            preference = float(raw)
        except (TypeError, ValueError):
            raise ValidationError({"preference": "must be 1 or 2 (0 or 1.5: a tie)"})
        if preference in (1, 2):
            preferred: int | str = int(preference) - 1
        elif preference in ALPACA_TIES:
            preferred = "tie"
        else:
            raise ValidationError({"preference": f"must be 1 or 2 (0 or 1.5: a tie), not {raw!r}"})
        metadata = {"preference": raw, "instruction": instruction}
        if extra not in (None, ""):
            metadata["input"] = extra
        return Pair(prompt=prompt, first=_text(_required(row, "output_1"), "output_1"),
                    second=_text(_required(row, "output_2"), "output_2"), preferred=preferred,
                    external_id=row.get("id"), metadata=metadata)
    return adapt


def _pairwise(first_row: dict) -> Callable[[dict], Pair]:
    def adapt(row: dict) -> Pair:
        return Pair(prompt=_side(_required(row, "prompt"), "prompt"), first=_side(_required(row, "response-1"), "response-1"),
                    second=_side(_required(row, "response-2"), "response-2"), preferred=None, shuffle=False,
                    external_id=row.get("id", row.get("external_id")), system=row.get("system") or None,
                    metadata=_json_object(row.get("metadata"), "metadata"))
    return adapt


# --- Argilla FeedbackDataset export ------------------------------------------------------------

ARGILLA_PROMPTS = ("prompt", "instruction", "question", "input", "text")


def _argilla_question(row: dict) -> str | None:
    """The ranking question's column: the one with a `<q>-suggestion` column, or a list of
    {user_id, value, status} responses."""
    for key in row:
        if f"{key}-suggestion" in row or f"{key}-suggestion-metadata" in row:
            return key
    for key, value in row.items():
        if isinstance(value, list) and value and isinstance(value[0], dict) and "user_id" in value[0]:
            return key
    return None


def _argilla_detect(row: dict) -> bool:
    return _argilla_question(row) is not None


def _argilla_ranking(value: Any, names: dict[str, str], where: str) -> list[dict]:
    """Argilla's ranking value [{rank, value}] (or {rank: [...], value: [...]}) as preflab's,
    its option names turned into the record's fields."""
    if isinstance(value, dict) and isinstance(value.get("value"), list):
        value = [{"value": v, "rank": r} for v, r in zip(value["value"], value.get("rank") or [], strict=False)]
    if not isinstance(value, list):
        raise ValidationError({where: "must be a ranking: a list of {rank, value}"})
    out = []
    for item in value:
        if not isinstance(item, dict) or item.get("value") not in names:
            raise ValidationError({where: f"ranks {item.get('value') if isinstance(item, dict) else item!r}, "
                                          f"not one of the answer columns {', '.join(names)}"})
        out.append({"value": names[item["value"]], "rank": item.get("rank")})
    return out


def _argilla(first_row: dict) -> Callable[[dict], Pair]:
    question = _argilla_question(first_row)
    other_questions = {k for k, v in first_row.items() if k != question and isinstance(v, list) and v
                       and isinstance(v[0], dict) and "user_id" in v[0]}
    special = {question, f"{question}-suggestion", f"{question}-suggestion-metadata", "external_id", "metadata", "id"}
    special |= other_questions | {f"{q}-suggestion" for q in other_questions} | {f"{q}-suggestion-metadata" for q in other_questions}
    text_columns = [k for k in first_row if k not in special]
    prompt_column = next((c for c in ARGILLA_PROMPTS if c in text_columns), text_columns[0] if text_columns else None)
    answers = [c for c in text_columns if c != prompt_column]
    if prompt_column is None or len(answers) != 2:
        raise ImportFormatError(f"an Argilla export with a ranking question {question!r} needs a prompt column and two "
                                f"answer columns; this one has the fields {', '.join(text_columns) or 'none'}")
    names = {answers[0]: "response-1", answers[1]: "response-2"}

    def adapt(row: dict) -> Pair:
        responses = []
        for i, r in enumerate(row.get(question) or []):
            if not isinstance(r, dict) or not r.get("user_id"):
                raise ValidationError({question: f"response {i + 1} must be an object with a user_id"})
            status = r.get("status") or "submitted"
            if status not in ("submitted", "discarded", "draft"):
                raise ValidationError({question: f"response {i + 1}: status {status!r} is not submitted, discarded or draft"})
            value = r.get("value")
            ranking = _argilla_ranking(value, names, question) if value not in (None, [], {}) else None
            responses.append({"user": str(r["user_id"]), "value": ranking, "status": status})
        suggestions = []
        suggested = row.get(f"{question}-suggestion")
        if suggested not in (None, [], {}):
            meta = _json_object(row.get(f"{question}-suggestion-metadata"), f"{question}-suggestion-metadata")
            score = meta.get("score")
            if isinstance(score, list):  # Argilla keeps one score per ranked value: their mean
                numbers = [s for s in score if isinstance(s, (int, float)) and not isinstance(s, bool)]
                score = sum(numbers) / len(numbers) if numbers else None
            suggestions.append({"value": _argilla_ranking(suggested, names, f"{question}-suggestion"),
                                "score": score, "agent": str(meta.get("agent") or meta.get("type") or "argilla"),
                                "raw": meta or None})
        metadata = _json_object(row.get("metadata"), "metadata")
        for q in other_questions:
            if row.get(q) not in (None, []):
                metadata[f"argilla.{q}"] = row[q]
        metadata["argilla_question"] = question
        metadata["argilla_fields"] = {prompt_column: "prompt", **names}
        return Pair(prompt=_side(_required(row, prompt_column), prompt_column),
                    first=_side(_required(row, answers[0]), answers[0]),
                    second=_side(_required(row, answers[1]), answers[1]), preferred=None, shuffle=False,
                    external_id=row.get("external_id", row.get("id")), metadata=metadata,
                    responses=responses, suggestions=suggestions)

    adapt.columns = tuple(special | set(text_columns))  # type: ignore[attr-defined]
    return adapt


def _has(*names: str) -> Callable[[dict], bool]:
    return lambda row: all(n in row for n in names)


PAIR_FORMATS: dict[str, PairFormat] = {f.name: f for f in (
    PairFormat("argilla", "Argilla FeedbackDataset export (fields, a ranking question, <q>-suggestion)",
               ("<fields>", "<question>"), ("<question>-suggestion", "<question>-suggestion-metadata", "external_id",
                                            "metadata"), _argilla_detect, _argilla),
    PairFormat("alpacafarm", "AlpacaFarm pairwise preferences", ("instruction", "output_1", "output_2", "preference"),
               ("input", "id"), _has("instruction", "output_1", "output_2", "preference"), _alpacafarm),
    PairFormat("orca", "Intel/orca_dpo_pairs", ("question", "chosen", "rejected"), ("system", "id"),
               _has("question", "chosen", "rejected"), _orca),
    PairFormat("ultrafeedback", "HuggingFaceH4/ultrafeedback_binarized", ("prompt", "chosen", "rejected"),
               ("prompt_id", "messages", "score_chosen", "score_rejected"),
               lambda row: _has("prompt", "chosen", "rejected")(row) and ("prompt_id" in row or "score_chosen" in row),
               _ultrafeedback),
    PairFormat("clair", "ContextualAI/ultrafeedback_clair_32k", ("prompt", "chosen", "rejected"),
               ("rational", "id", "prompt_id"), _has("prompt", "chosen", "rejected", "rational"), _clair),
    PairFormat("trl", "TRL preference, explicit prompt (texts or message lists)", ("prompt", "chosen", "rejected"),
               ("system", "id", "external_id", "metadata"), _has("prompt", "chosen", "rejected"), _trl),
    PairFormat("trl-implicit", "TRL preference, implicit prompt (whole conversations)", ("chosen", "rejected"),
               ("id", "external_id", "metadata"), lambda row: _has("chosen", "rejected")(row) and "prompt" not in row,
               _trl_implicit),
    PairFormat("pairwise", "preflab pairwise, no preference (prompt, response-1, response-2)",
               ("prompt", "response-1", "response-2"), ("system", "id", "external_id", "metadata"),
               _has("prompt", "response-1", "response-2"), _pairwise),
)}
PAIR_FORMAT_NAMES = tuple(PAIR_FORMATS)
# Any format's rows may carry `gold` (true/false): the row's chosen answer is the known answer and its
# record becomes a gold record (pairs.pair_gold_answer builds the answer for the dataset's question).
GOLD_COLUMN = "gold"
MAP_TARGETS = tuple(sorted({c for f in PAIR_FORMATS.values() for c in f.columns if not c.startswith("<")} | {GOLD_COLUMN}))


def formats_described() -> str:
    return "; ".join(f"{f.name} ({', '.join(f.required)})" for f in PAIR_FORMATS.values())


def mapping_parse(items: list[str] | dict | None) -> dict[str, str]:
    """`--map target=column` items (or an API's {target: column} object) checked against the targets."""
    if not items:
        return {}
    if isinstance(items, dict):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            target, sep, column = str(item).partition("=")
            if not sep or not target.strip() or not column.strip():
                raise ValidationError({"mapping": f"{item!r} is not target=column"})
            pairs.append((target.strip(), column.strip()))
    out: dict[str, str] = {}
    for target, column in pairs:
        if not isinstance(target, str) or not isinstance(column, str) or not column:
            raise ValidationError({"mapping": "a mapping is {target: column} with text names"})
        if target not in MAP_TARGETS:
            raise ValidationError({"mapping": f"{target!r} is not a column preflab reads; the accepted targets are "
                                              f"{', '.join(MAP_TARGETS)}"})
        out[target] = column
    return out


def mapping_apply(row: dict, mapping: dict[str, str]) -> dict:
    if not mapping:
        return row
    out = {k: v for k, v in row.items() if k not in mapping.values() and k not in mapping}
    for target, column in mapping.items():
        if column in row:
            out[target] = row[column]
    return out


def format_detect(first_row: dict, *, name: str | None = None, mapping: dict[str, str] | None = None) -> PairFormat:
    """The format of a file from its first row's columns (after `mapping`), or the one named; an
    ImportFormatError naming the formats and the columns each needs when it cannot tell."""
    columns = list(first_row)
    missing_mapped = [c for c in (mapping or {}).values() if c not in first_row]
    if missing_mapped:
        raise ImportFormatError(f"the mapping names columns this file does not have: {', '.join(missing_mapped)}; "
                                f"its columns are {', '.join(columns) or 'none'}")
    row = mapping_apply(first_row, mapping or {})
    if name:
        fmt = PAIR_FORMATS.get(name)
        if fmt is None:
            raise ImportFormatError(f"unknown format {name!r}; the formats are {', '.join(PAIR_FORMAT_NAMES)}")
        if fmt.name != "argilla":
            missing = [c for c in fmt.required if c not in row]
            if missing:
                raise ImportFormatError(f"the {fmt.name} format needs the columns {', '.join(fmt.required)}; this file "
                                        f"lacks {', '.join(missing)} (its columns: {', '.join(row) or 'none'}); "
                                        "map them with --map TARGET=COLUMN (API: mapping)")
        elif not _argilla_detect(row):
            raise ImportFormatError("an Argilla export needs a ranking question column (a list of {user_id, value, "
                                    "status}) or a <question>-suggestion column; this file has "
                                    f"{', '.join(row) or 'no columns'}")
        return fmt
    for fmt in PAIR_FORMATS.values():
        if fmt.detect(row):
            return fmt
    raise ImportFormatError(f"cannot tell the format from the columns {', '.join(row) or '(none)'}. The formats and "
                            f"the columns each needs: {formats_described()}. Name one with --format (API: format=) "
                            "and map your columns with --map TARGET=COLUMN (API: mapping)")


def row_adapter(fmt: PairFormat, first_row: dict, *, mapping: dict[str, str] | None = None,
                strict: bool = False) -> Callable[[dict], Pair]:
    """row -> Pair for this file: columns mapped, the format's adapter applied; the columns it
    does not read go to metadata, or (strict) reject the line naming them."""
    mapping = mapping or {}
    adapt = fmt.adapter({k: v for k, v in mapping_apply(first_row, mapping).items() if k != GOLD_COLUMN})
    known = set(getattr(adapt, "columns", fmt.columns)) | {GOLD_COLUMN}

    def to_pair(row: dict) -> Pair:
        if not isinstance(row, dict):
            raise ValidationError({"record": "must be an object of columns"})
        row = mapping_apply(row, mapping)
        gold = False
        if GOLD_COLUMN in row:
            gold = bool_param(GOLD_COLUMN, row[GOLD_COLUMN])
            row = {k: v for k, v in row.items() if k != GOLD_COLUMN}
        extra = [k for k in row if k not in known]
        if extra and strict:
            raise ValidationError({"columns": f"not read by the {fmt.name} format: {', '.join(extra)} (accepted: "
                                              f"{', '.join(fmt.columns)}; without strict they go to metadata)"})
        pair = adapt(row)
        pair.gold = gold
        for key in extra:
            if row[key] is not None and key not in pair.metadata:
                pair.metadata[key] = row[key]
        return pair

    return to_pair
