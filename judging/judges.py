"""What a judge sends to its LLM: prompts (from the template files in judging/prompts/), the JSON
schema for structured output, and the list of calls one record needs. No database writes here.

Templates use `string.Template` placeholders ($instruction, $texts, $n, $aspect_rubric,
$format_instructions, $answer_a, $answer_b, $answer), so JSON braces in a template need no escaping
and text from records is inserted verbatim, never re-interpreted.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Any

from .models import Judge
from .scoring import PairVerdict, pair_verdict, shuffled_order

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
FOUR_ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")


@lru_cache(maxsize=64)
def prompt_file(name: str) -> str:
    return (PROMPTS_DIR / name).read_text(encoding="utf-8").strip()


def text_of(value: Any) -> str:
    """A field value as plain text for a prompt (chat fields become "role: content" turns)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" if isinstance(m, dict) else str(m)
                           for m in value)
    return json.dumps(value, ensure_ascii=False)


def aspects_for(judge: Judge) -> list[str]:
    """The aspects one record is rated on: one, or the four for overall = mean of aspects."""
    if judge.aspect == Judge.Aspect.OVERALL and judge.overall_mode == Judge.OverallMode.MEAN_OF_ASPECTS:
        return list(FOUR_ASPECTS)
    return [judge.aspect]


def uses_structured_output(judge: Judge) -> bool:
    return bool(judge.use_structured_output and judge.endpoint.supports_json_schema)


# --- JSON schemas for response_format ----------------------------------------------------------

def ratings_schema(n: int) -> dict:
    return {
        "type": "object",
        "properties": {
            "ratings": {
                "type": "array", "minItems": n, "maxItems": n,
                "items": {
                    "type": "object",
                    "properties": {"text": {"type": "integer", "minimum": 1, "maximum": n},
                                   "rating": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
                                   "rationale": {"type": "string"}},
                    "required": ["text", "rating", "rationale"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["ratings"],
        "additionalProperties": False,
    }


PREFERENCE_SCHEMA = {
    "type": "object",
    "properties": {"reasoning": {"type": "string"}, "preferred": {"type": "string", "enum": ["A", "B", "tie"]}},
    "required": ["reasoning", "preferred"],
    "additionalProperties": False,
}

REVISION_SCHEMA = {
    "type": "object",
    "properties": {"reasoning": {"type": "string"}, "revision": {"type": "string"}},
    "required": ["reasoning", "revision"],
    "additionalProperties": False,
}


def response_format(name: str, schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


# --- planned calls -----------------------------------------------------------------------------

@dataclass
class PlannedCall:
    call_key: str
    kind: str                    # ratings | pair | clair
    messages: list[dict]
    params: dict
    shown_order: list[str]       # field names in the order shown (ratings: Text 1..n; pair: [A, B]; clair: [answer])
    meta: dict = field(default_factory=dict)


@lru_cache(maxsize=64)
def _template_parts(template_text: str) -> tuple[tuple[str, str | None], ...]:
    """A template split once into (text, None) pieces and (placeholder as written, name) slots, by
    string.Template's own pattern: rendering is then a join, not a regular-expression pass with a
    callback per placeholder for every record (UltraFeedback's prompt: 7 → 2.4 µs a record, of the
    ~70 µs that planning a record costs)."""
    parts: list[tuple[str, str | None]] = []
    pos = 0
    for m in Template.pattern.finditer(template_text):
        if m.start() > pos:
            parts.append((template_text[pos:m.start()], None))
        name = m.group("named") or m.group("braced")
        if name is not None:
            parts.append((m.group(), name))
        elif m.group("escaped") is not None:
            parts.append((Template.delimiter, None))
        else:  # invalid: kept as written, as safe_substitute does
            parts.append((m.group(), None))
        pos = m.end()
    if pos < len(template_text):
        parts.append((template_text[pos:], None))
    return tuple(parts)


def _render(template_text: str, values: dict) -> str:
    """Template(template_text).safe_substitute(values): unknown placeholders stay as written."""
    return "".join(text if name is None or name not in values else str(values[name])
                   for text, name in _template_parts(template_text))


def _messages(user: str) -> list[dict]:
    return [{"role": "system", "content": prompt_file("system.txt")}, {"role": "user", "content": user}]


def _params(judge: Judge, fmt: dict | None) -> dict:
    params = {k: v for k, v in (judge.params or {}).items() if k != "response_format"}
    if fmt is not None:
        params["response_format"] = fmt
    return params


@lru_cache(maxsize=64)
def _format_instructions(fmt_file: str, n: int) -> str:
    return _render(prompt_file(fmt_file), {"n": str(n)})


def ratings_call(judge: Judge, *, aspect: str, instruction: str, texts: list[str], order: list[str]) -> PlannedCall:
    n = len(texts)
    structured = uses_structured_output(judge)
    fmt_file = "ultrafeedback_format_json.txt" if structured else "ultrafeedback_format_text.txt"
    body = "\n\n".join(f"<Text {i}>\n{t}\n</Text {i}>" for i, t in enumerate(texts, start=1))
    values = {"n": str(n), "instruction": instruction, "texts": body,
              "aspect_rubric": prompt_file(f"aspects/{aspect}.txt"),
              "format_instructions": _format_instructions(fmt_file, n)}
    template = judge.template.strip() or prompt_file("ultrafeedback.txt")
    return PlannedCall(call_key=f"ratings:{aspect}", kind="ratings", messages=_messages(_render(template, values)),
                       params=_params(judge, response_format("ratings", ratings_schema(n)) if structured else None),
                       shown_order=order, meta={"aspect": aspect})


def pair_call(judge: Judge, *, instruction: str, a_field: str, b_field: str, a_text: str, b_text: str,
              call_key: str) -> PlannedCall:
    structured = uses_structured_output(judge)
    fmt_file = "pairwise_format_json.txt" if structured else "pairwise_format_text.txt"
    values = {"instruction": instruction, "answer_a": a_text, "answer_b": b_text,
              "format_instructions": prompt_file(fmt_file)}
    template = judge.template.strip() or prompt_file("pairwise.txt")
    return PlannedCall(call_key=call_key, kind="pair", messages=_messages(_render(template, values)),
                       params=_params(judge, response_format("preference", PREFERENCE_SCHEMA) if structured else None),
                       shown_order=[a_field, b_field])


def clair_call(judge: Judge, *, instruction: str, answer_field: str, answer: str) -> PlannedCall:
    structured = uses_structured_output(judge)
    fmt_file = "clair_format_json.txt" if structured else "clair_format_text.txt"
    values = {"instruction": instruction, "answer": answer, "format_instructions": prompt_file(fmt_file)}
    template = judge.template.strip() or prompt_file("clair.txt")
    return PlannedCall(call_key="clair", kind="clair", messages=_messages(_render(template, values)),
                       params=_params(judge, response_format("revision", REVISION_SCHEMA) if structured else None),
                       shown_order=[answer_field])


def pair_keys(fields: list[str]) -> list[tuple[str, str, str]]:
    """(call_key, A field, B field) for every pair of fields, both orders."""
    out = []
    for i in range(len(fields)):
        for j in range(i + 1, len(fields)):
            f1, f2 = fields[i], fields[j]
            # keys by position in the ranked fields (field names may be long); shown_order names the fields
            out.append((f"pair:{i + 1}-{j + 1}:AB", f1, f2))
            out.append((f"pair:{i + 1}-{j + 1}:BA", f2, f1))
    return out


def pair_verdicts(fields: list[str], picks: dict[str, str]) -> list[PairVerdict]:
    """One verdict per pair of fields, combining the judge's picks ("A", "B" or "tie", by call key)
    of the pair's two orders."""
    return [pair_verdict(a, b, picks[key], picks[key[:-2] + "BA"]) for key, a, b in pair_keys(fields)[::2]]


def calls_for(judge: Judge, record, *, prompt_field: str, fields: list[str],
              answer_field: str | None = None) -> list[PlannedCall]:
    """Every LLM call needed to judge one record (before any retry)."""
    instruction = text_of(record.fields.get(prompt_field))
    if judge.method == Judge.Method.CLAIR:
        assert answer_field is not None
        return [clair_call(judge, instruction=instruction, answer_field=answer_field,
                           answer=text_of(record.fields.get(answer_field)))]
    if judge.method == Judge.Method.PAIRWISE:
        return [pair_call(judge, instruction=instruction, a_field=a, b_field=b,
                          a_text=text_of(record.fields.get(a)), b_text=text_of(record.fields.get(b)), call_key=key)
                for key, a, b in pair_keys(fields)]
    # UltraFeedback: the responses are shown in a per-record seeded shuffle, the same for every aspect
    order = shuffled_order(fields, f"judge:{judge.pk}:record:{record.pk}")
    texts = [text_of(record.fields.get(f)) for f in order]
    return [ratings_call(judge, aspect=a, instruction=instruction, texts=texts, order=order) for a in aspects_for(judge)]


def retry_messages(call: PlannedCall, error: str) -> list[dict]:
    """The same prompt again, with a short reminder of the format after a parse failure."""
    reminder = _render(prompt_file("reminder.txt"), {"error": error[:200]})
    messages = [dict(m) for m in call.messages]
    messages[-1]["content"] = messages[-1]["content"] + "\n\n" + reminder
    return messages


def retry_params(call: PlannedCall, attempt: int) -> dict:
    """A fixed seed would give the same bad answer again: move it on per attempt."""
    params = dict(call.params)
    if isinstance(params.get("seed"), int):
        params["seed"] = params["seed"] + attempt
    return params
