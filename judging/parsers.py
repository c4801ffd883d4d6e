"""Parsers for judge outputs: pure functions, no database, no network.

Every parser either returns a complete, aligned result or raises `JudgeParseError` with a reason a
person can read. Nothing is ever silently turned into a null rating, and a ratings list is never
shorter, longer or in a different order than the texts that were shown:

- JSON is tried first (also inside ```json fences or with prose around it);
- then a tolerant text parser (UltraFeedback's "#### Output for Text 1 / Rating: 4 / Rationale: ..."
  layout and its usual markdown variants: bold labels, bullets, "Text 1: 4/5", headings);
- "N/A", ratings out of range, missing or duplicated sections, and refusals are errors.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

RATING_MIN, RATING_MAX = 1, 5


class JudgeParseError(ValueError):
    """The judge's output could not be read; `str(exc)` says why."""


@dataclass
class RatingsParse:
    ratings: list[int]
    rationales: list[str]
    format: str = "json"  # json | text | table


@dataclass
class PreferenceParse:
    preferred: str  # "A" | "B" | "tie"
    reasoning: str = ""
    format: str = "json"


@dataclass
class RevisionParse:
    revision: str
    reasoning: str = ""
    format: str = "json"


@dataclass
class _Section:
    number: int
    inline: str
    body: list[str] = field(default_factory=list)


# --- shared helpers ----------------------------------------------------------------------------

_REFUSAL_RE = re.compile(
    r"^\W*(?:i\s*(?:'m|am)\s+(?:sorry|afraid|unable|not able)|i\s*(?:can(?:'|no)?t|cannot|won'?t|will not)\s+"
    r"(?:help|assist|provide|do|comply|rate|evaluate|judge|fulfil|complete)|sorry,?\s+(?:but\s+)?i|"
    r"as an ai\b[^.]{0,80}\b(?:cannot|can'?t|unable)|unfortunately,?\s+i\s+(?:can(?:'|no)?t|cannot|am unable))",
    re.IGNORECASE)
_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_NA_RE = re.compile(r"^\W*(?:n\s*/\s*a|na|none|null|not applicable|-)\W*$", re.IGNORECASE)


def _is_refusal(text: str) -> bool:
    return bool(_REFUSAL_RE.search(text.strip()[:300]))


def _snippet(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")
_RATING_TOKEN_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:/\s*(\d+)|out of\s*(\d+))?")
_LONE_NUMBER_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.])")
_NUMBER_ONLY_RE = re.compile(r"(\d+(?:\.\d+)?)()()")
_TEXT_KEY_RE = re.compile(r"(?:text|response|output)[\s_-]*(\d+)", re.IGNORECASE)
_TABLE_RULE_RE = re.compile(r":?-{2,}:?")
_DIGITS_RE = re.compile(r"(\d+)")
_PREF_PREFIX_RE = re.compile(r"^(?:answer|response|output|text)\s*")
_PREF_REASONING_RE = re.compile(
    r"(?:reasoning|rationale|explanation)\s*[*_]*\s*:\s*[*_]*\s*(.*?)(?=\n\s*[*_]*\s*(?:preferred|winner|verdict)|\Z)",
    re.IGNORECASE | re.DOTALL)


@lru_cache(maxsize=16)
def _tag_res(tag: str) -> tuple[re.Pattern, re.Pattern]:
    """<tag>...</tag> (closed) and <tag>... to the end (left open)."""
    return (re.compile(rf"<\s*{tag}\s*>(.*?)<\s*/\s*{tag}\s*>", re.IGNORECASE | re.DOTALL),
            re.compile(rf"<\s*{tag}\s*>(.*)$", re.IGNORECASE | re.DOTALL))


def _json_loads(src: str) -> Any:
    """json.loads, forgiving trailing commas (a common slip of LLMs writing JSON by hand)."""
    try:
        return json.loads(src)
    except ValueError:
        fixed = _TRAILING_COMMA_RE.sub(r"\1", src)
        if fixed == src:
            raise
        return json.loads(fixed)


# what a JSON value can start with: anything else fails json.loads at once (so does its trailing-comma fix),
# so a judge's plain-text answer is not handed to the decoder at all
_JSON_STARTS = frozenset('{["-0123456789tfn')


def _json_candidates(text: str) -> list[Any]:
    """Parsed JSON values found in `text`: the whole text, fenced blocks, then the outermost {...}."""
    found: list[Any] = []
    sources = [text.strip()]
    if "```" in text:
        sources += [m.group(1).strip() for m in _FENCE_RE.finditer(text)]
    for src in sources:
        if not src:
            continue
        if src[0] in _JSON_STARTS:
            try:
                found.append(_json_loads(src))
                continue
            except ValueError:
                pass
        # JSON embedded in prose: only an object counts (a bare "[4, 2]" inside a rationale must
        # never be mistaken for the ratings).
        start, end = src.find("{"), src.rfind("}")
        if start != -1 and end > start:
            try:
                found.append(_json_loads(src[start:end + 1]))
            except ValueError:
                pass
    return found


def _looks_like_json(text: str) -> bool:
    t = text.strip()
    return t.startswith("{") or t.startswith("[") or t.startswith("```json") or t.startswith("```JSON")


def _rating_value(value: Any, where: str) -> int:
    """A 1-5 integer from a JSON value or a text token; "N/A" and anything else is an error."""
    if isinstance(value, bool) or value is None:
        raise JudgeParseError(f"{where}: no rating given ({value!r})")
    if isinstance(value, str):
        s = value.strip().strip("*").strip()
        if _NA_RE.match(s) or not s:
            raise JudgeParseError(f"{where}: rating is {value!r}, not a number from {RATING_MIN} to {RATING_MAX}")
        m = _RATING_TOKEN_RE.match(s)
        if not m:
            # "Highly informative (4)": a label with exactly one number in it
            numbers = _LONE_NUMBER_RE.findall(s)
            if len(numbers) != 1:
                raise JudgeParseError(f"{where}: rating {_snippet(value, 30)!r} is not a number")
            m = _NUMBER_ONLY_RE.match(numbers[0])
        scale = m.group(2) or m.group(3)
        if scale and int(scale) != RATING_MAX:
            raise JudgeParseError(f"{where}: rating {s!r} is on a scale other than 1-{RATING_MAX}")
        value = float(m.group(1))
    if not isinstance(value, (int, float)):
        raise JudgeParseError(f"{where}: rating {value!r} is not a number")
    if float(value) != int(value):
        raise JudgeParseError(f"{where}: rating {value} is not a whole number")
    value = int(value)
    if not RATING_MIN <= value <= RATING_MAX:
        raise JudgeParseError(f"{where}: rating {value} is outside {RATING_MIN}-{RATING_MAX}")
    return value


# --- UltraFeedback ratings ---------------------------------------------------------------------

_RATING_KEYS = ("rating", "score", "grade", "overall_rating")
_RATIONALE_KEYS = ("rationale", "reason", "reasoning", "explanation", "justification", "critique")
_INDEX_KEYS = ("text", "index", "id", "response", "text_index", "number")


def parse_ratings(text: str | None, n: int) -> RatingsParse:
    """Read n ratings (1-5) and rationales, in the order of the texts shown to the judge."""
    if n < 1:
        raise ValueError("n must be at least 1")
    if text is None or not text.strip():
        raise JudgeParseError("empty output")
    json_error: JudgeParseError | None = None
    for value in _json_candidates(text):
        try:
            return _ratings_from_json(value, n)
        except JudgeParseError as exc:
            json_error = json_error or exc
    try:
        return _ratings_from_text(text, n)
    except JudgeParseError as exc:
        if _is_refusal(text):
            raise JudgeParseError(f"the judge refused: {_snippet(text)!r}") from None
        if json_error is not None:
            raise json_error from None
        if _looks_like_json(text):
            raise JudgeParseError(f"invalid or truncated JSON: {_snippet(text[-60:], 60)!r}") from None
        raise exc


def _ratings_from_json(value: Any, n: int) -> RatingsParse:
    items: Any = None
    if isinstance(value, dict):
        for key in ("ratings", "results", "evaluations", "outputs", "scores", "texts"):
            if key in value:
                items = value[key]
                break
        if items is None:
            keyed = {}
            for k, v in value.items():
                m = _TEXT_KEY_RE.fullmatch(str(k).strip())
                if m:
                    keyed[int(m.group(1))] = v
            if keyed:
                items = [dict(v, text=k) if isinstance(v, dict) else {"text": k, "rating": v}
                         for k, v in sorted(keyed.items())]
            elif n == 1 and any(k in value for k in _RATING_KEYS):
                items = [value]
        if isinstance(items, list) and items and not isinstance(items[0], dict) and "rationales" in value:
            rats = value["rationales"]
            if not isinstance(rats, list) or len(rats) != len(items):
                raise JudgeParseError("JSON: the rationales list does not match the ratings list")
            items = [{"rating": r, "rationale": t} for r, t in zip(items, rats)]
    elif isinstance(value, list):
        items = value
    if not isinstance(items, list):
        raise JudgeParseError("JSON: no list of ratings found")
    if len(items) != n:
        raise JudgeParseError(f"JSON: {len(items)} ratings for {n} texts")
    ratings: list[int | None] = [None] * n
    rationales: list[str] = [""] * n
    for pos, item in enumerate(items):
        if isinstance(item, dict):
            index = next((item[k] for k in _INDEX_KEYS if k in item), None)
            if index is not None:
                try:
                    index = int(str(index).strip().lower().removeprefix("text").strip())
                except ValueError:
                    raise JudgeParseError(f"JSON: entry {pos + 1} names text {index!r}") from None
                if not 1 <= index <= n:
                    raise JudgeParseError(f"JSON: entry {pos + 1} names text {index}, but there are {n} texts")
                slot = index - 1
            else:
                slot = pos
            if ratings[slot] is not None:
                raise JudgeParseError(f"JSON: text {slot + 1} is rated twice")
            raw = next((item[k] for k in _RATING_KEYS if k in item), None)
            if not any(k in item for k in _RATING_KEYS):
                raise JudgeParseError(f"JSON: entry {pos + 1} has no rating")
            ratings[slot] = _rating_value(raw, f"text {slot + 1}")
            rat = next((item[k] for k in _RATIONALE_KEYS if k in item), "")
            rationales[slot] = "" if rat is None else str(rat).strip()
        else:
            ratings[pos] = _rating_value(item, f"text {pos + 1}")
    return RatingsParse(ratings=[int(r) for r in ratings], rationales=rationales, format="json")  # type: ignore[arg-type]


# A section header on a line of its own (or with the rating inline): "#### Output for Text 1",
# "**Text 2**", "- Text 3:", "Response 1 - Rating: 4", "Text 1: 4/5", "### Evaluation of Text 2".
_HEADER_RE = re.compile(
    r"^[\s>#*_\-•]*(?:\d+[.)]\s*)?(?:output|evaluation|rating|assessment|feedback|review)?\s*(?:for|of)?\s*\**\s*"
    r"(?:text|response|answer|output)\s*#?\s*(\d+)\s*[*_]*\s*(?:[:.)\-–—]\s*[*_]*)?\s*(.*)$",
    re.IGNORECASE)
_INLINE_RATING_RE = re.compile(
    r"^(?:\(?\s*(?:rating|score)\s*[*_]*\s*[:=\-–]?\s*[*_]*\s*)?(n\s*/\s*a\b|\d+(?:\.\d+)?(?:\s*/\s*\d+|\s+out of\s+\d+)?)"
    r"\s*\)?\s*[*_]*\s*(?:[-–—,;:.|]\s*)?(.*)$",
    re.IGNORECASE)
_RATING_LINE_RE = re.compile(
    r"^[\s>#*_\-•]*(?:overall\s+)?(?:rating|score)\s*(?:\([^)]*\))?\s*[*_]*\s*[:=\-–]\s*[*_]*\s*(.*)$", re.IGNORECASE)
_RATIONALE_LINE_RE = re.compile(
    r"^[\s>#*_\-•]*(?:rationale|reason(?:ing)?|explanation|justification|critique)\s*[*_]*\s*[:=\-–]\s*[*_]*\s*(.*)$",
    re.IGNORECASE)


def _header(line: str) -> tuple[int, str] | None:
    m = _HEADER_RE.match(line)
    if not m:
        return None
    rest = m.group(2).strip()
    # "Text 2 is clearly worse because..." is prose, not a header: after the number there must be
    # nothing, or a rating.
    if rest and not _INLINE_RATING_RE.match(rest.strip("*_ ")) and not _RATING_LINE_RE.match(rest) \
            and not _RATIONALE_LINE_RE.match(rest):
        return None
    return int(m.group(1)), rest


def _ratings_from_table(text: str, n: int) -> RatingsParse | None:
    """A markdown table with a rating column ("| Text | Rating | Rationale |"); None if there is none."""
    if "|" not in text:
        return None
    rows = [[c.strip().strip("*_ ") for c in ln.strip().strip("|").split("|")]
            for ln in text.splitlines() if ln.strip().startswith("|")]
    rows = [r for r in rows if not all(_TABLE_RULE_RE.fullmatch(c) or not c for c in r)]
    if len(rows) < 2:
        return None
    head = [c.lower() for c in rows[0]]
    rating_col = next((i for i, c in enumerate(head) if c in ("rating", "score") or c.startswith("rating")), None)
    if rating_col is None:
        return None
    index_col = next((i for i, c in enumerate(head) if c in ("text", "response", "answer", "#", "output", "no.")), 0)
    rationale_col = next((i for i, c in enumerate(head) if c.startswith(_RATIONALE_KEYS)), None)
    body = rows[1:]
    if len(body) != n:
        raise JudgeParseError(f"table: {len(body)} rows for {n} texts")
    ratings: list[int | None] = [None] * n
    rationales = [""] * n
    for pos, row in enumerate(body):
        if len(row) != len(head):
            raise JudgeParseError(f"table: row {pos + 1} has {len(row)} cells, the header {len(head)}")
        m = _DIGITS_RE.search(row[index_col])
        if not m or not 1 <= int(m.group(1)) <= n:
            raise JudgeParseError(f"table: row {pos + 1} does not name a text from 1 to {n}")
        slot = int(m.group(1)) - 1
        if ratings[slot] is not None:
            raise JudgeParseError(f"table: text {slot + 1} is rated twice")
        ratings[slot] = _rating_value(row[rating_col], f"text {slot + 1}")
        if rationale_col is not None:
            rationales[slot] = row[rationale_col]
    return RatingsParse(ratings=[int(r) for r in ratings], rationales=rationales, format="table")  # type: ignore[arg-type]


def _ratings_from_text(text: str, n: int) -> RatingsParse:
    table = _ratings_from_table(text, n)
    if table is not None:
        return table
    sections: list[_Section] = []
    for line in text.splitlines():
        head = _header(line)
        if head is not None:
            sections.append(_Section(number=head[0], inline=head[1]))
        elif sections:
            sections[-1].body.append(line)
    if not sections:
        if n == 1:
            sections = [_Section(number=1, inline="", body=text.splitlines())]
        else:
            raise JudgeParseError(f"no sections for Text 1..{n} found")
    numbers = [s.number for s in sections]
    dupes = sorted({x for x in numbers if numbers.count(x) > 1})
    if dupes:
        raise JudgeParseError(f"text {dupes[0]} appears in more than one section")
    if sorted(numbers) != list(range(1, n + 1)):
        missing = [i for i in range(1, n + 1) if i not in numbers]
        extra = [i for i in numbers if not 1 <= i <= n]
        why = f"missing text {', '.join(map(str, missing))}" if missing else f"unexpected text {', '.join(map(str, extra))}"
        raise JudgeParseError(f"found {len(sections)} sections for {n} texts ({why})")
    ratings: list[int] = [0] * n
    rationales: list[str] = [""] * n
    for sec in sections:
        rating, rationale = _section_read(sec)
        ratings[sec.number - 1] = rating
        rationales[sec.number - 1] = rationale
    return RatingsParse(ratings=ratings, rationales=rationales, format="text")


def _section_read(sec: _Section) -> tuple[int, str]:
    where = f"text {sec.number}"
    lines = ([sec.inline] if sec.inline else []) + sec.body
    rating_token: str | None = None
    rationale_parts: list[str] = []
    in_rationale = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if rating_token is None:
            m = _RATING_LINE_RE.match(stripped)
            if m:
                rating_token = m.group(1).strip()
                tail = _INLINE_RATING_RE.match(rating_token.strip("*_ "))
                if tail and tail.group(2).strip():
                    rest = tail.group(2).strip()
                    rm = _RATIONALE_LINE_RE.match(rest)
                    rationale_parts.append(rm.group(1) if rm else rest)
                    in_rationale = True
                    rating_token = tail.group(1)
                continue
            if i == 0 and sec.inline:
                m2 = _INLINE_RATING_RE.match(stripped.strip("*_ "))
                if m2:
                    rating_token = m2.group(1)
                    if m2.group(2).strip():
                        rm = _RATIONALE_LINE_RE.match(m2.group(2).strip())
                        rationale_parts.append(rm.group(1) if rm else m2.group(2).strip())
                        in_rationale = True
                    continue
        m = _RATIONALE_LINE_RE.match(stripped)
        if m:
            rationale_parts.append(m.group(1))
            in_rationale = True
            continue
        if in_rationale or (rating_token is not None and stripped):
            rationale_parts.append(stripped)
            in_rationale = True
    if rating_token is None:
        raise JudgeParseError(f"{where}: no rating found")
    rating = _rating_value(rating_token.strip("*_ ()[]"), where)
    rationale = "\n".join(p for p in rationale_parts).strip().strip("*_").strip()
    return rating, rationale


# --- pairwise preference -----------------------------------------------------------------------

_PREF_WORDS = {"a": "A", "b": "B", "1": "A", "2": "B", "tie": "tie", "draw": "tie", "equal": "tie",
               "both": "tie", "neither": "tie", "same": "tie"}
_PREF_LINE_RE = re.compile(
    r"(?:preferred|preference|winner|better(?:\s+answer|\s+response)?|verdict|final\s+answer|choice|decision)"
    r"\s*[*_]*\s*(?:[:=\-–]|\s(?:is|would be))\s*[*_\[\(]*\s*(?:answer|response|output|text)?\s*[*_\[\(]*\s*"
    r"(a|b|1|2|tie|draw|equal|both|neither|same)\b",
    re.IGNORECASE)
_MTBENCH_RE = re.compile(r"\[\[\s*(a|b|c|tie)\s*\]\]", re.IGNORECASE)
_BARE_RE = re.compile(r"^[\s*_\[\(\"']*(?:answer|response|output)?\s*[\(\[]?\s*(a|b|tie)\s*[\)\]]?[\s*_.\"'\]\)]*$",
                      re.IGNORECASE)


def parse_preference(text: str | None) -> PreferenceParse:
    """Which of Answer A / Answer B the judge prefers ("A", "B" or "tie")."""
    if text is None or not text.strip():
        raise JudgeParseError("empty output")
    for value in _json_candidates(text):
        if isinstance(value, dict):
            key = next((k for k in ("preferred", "winner", "preference", "choice", "verdict", "better") if k in value), None)
            if key is None:
                continue
            word = str(value[key]).strip().strip("()[]").lower()
            word = _PREF_PREFIX_RE.sub("", word)
            if word not in _PREF_WORDS:
                raise JudgeParseError(f"JSON: preferred is {value[key]!r}, not A, B or tie")
            reasoning = next((value[k] for k in ("reasoning", "rationale", "explanation", "reason") if k in value), "")
            return PreferenceParse(_PREF_WORDS[word], str(reasoning or "").strip(), "json")
    verdicts = [m.group(1).lower() for m in _PREF_LINE_RE.finditer(text)]
    verdicts += [("tie" if m.group(1).lower() == "c" else m.group(1).lower()) for m in _MTBENCH_RE.finditer(text)]
    if not verdicts:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        if lines and _BARE_RE.match(lines[-1]):
            verdicts = [_BARE_RE.match(lines[-1]).group(1).lower()]
    if not verdicts:
        if _is_refusal(text):
            raise JudgeParseError(f"the judge refused: {_snippet(text)!r}")
        if _looks_like_json(text):
            raise JudgeParseError(f"invalid or truncated JSON: {_snippet(text[-60:], 60)!r}")
        raise JudgeParseError("no verdict (A, B or tie) found")
    picks = {_PREF_WORDS[v] for v in verdicts}
    if len(picks) > 1:
        raise JudgeParseError(f"contradictory verdicts: {', '.join(sorted(picks))}")
    reasoning = ""
    m = _PREF_REASONING_RE.search(text)
    if m:
        reasoning = m.group(1).strip()
    return PreferenceParse(picks.pop(), reasoning, "text")


# --- CLAIR revision ----------------------------------------------------------------------------

def _tagged(text: str, tag: str) -> tuple[str | None, bool]:
    """Content of <tag>...</tag>; (content, closed). An opened but unclosed tag gives closed=False."""
    closed_re, open_re = _tag_res(tag)
    m = closed_re.search(text)
    if m:
        return m.group(1), True
    m = open_re.search(text)
    if m:
        return m.group(1), False
    return None, False


_MD_SECTION_RE = re.compile(r"^[\s#*_]*(reasoning|revision|revised answer|corrected answer)[\s*_]*:?[\s*_]*$",
                            re.IGNORECASE | re.MULTILINE)


def parse_revision(text: str | None, *, finish_reason: str | None = None) -> RevisionParse:
    """The judge's minimal revision and its reasoning (JSON, <reasoning>/<revision> tags, or headings)."""
    if text is None or not text.strip():
        raise JudgeParseError("empty output")
    for value in _json_candidates(text):
        if isinstance(value, dict) and ("revision" in value or "revised_answer" in value):
            revision = value.get("revision", value.get("revised_answer"))
            if not isinstance(revision, str) or not revision.strip():
                raise JudgeParseError("JSON: the revision is empty")
            return RevisionParse(revision.strip(), str(value.get("reasoning") or "").strip(), "json")
    revision, closed = _tagged(text, "revision")
    if revision is not None:
        if not closed:
            raise JudgeParseError("the <revision> section is not closed (truncated output?)")
        if not revision.strip():
            raise JudgeParseError("the revision is empty")
        reasoning, _ = _tagged(text, "reasoning")
        return RevisionParse(revision.strip(), (reasoning or "").strip(), "text")
    heads = list(_MD_SECTION_RE.finditer(text))
    rev_heads = [h for h in heads if h.group(1).lower() != "reasoning"]
    if rev_heads:
        if finish_reason == "length":
            raise JudgeParseError("the output was cut off (finish_reason=length)")
        start = rev_heads[-1].end()
        revision = text[start:].strip()
        if not revision:
            raise JudgeParseError("the revision is empty")
        reasoning = ""
        reas = [h for h in heads if h.group(1).lower() == "reasoning" and h.start() < rev_heads[-1].start()]
        if reas:
            reasoning = text[reas[-1].end():rev_heads[-1].start()].strip()
        return RevisionParse(revision, reasoning, "text")
    if _is_refusal(text):
        raise JudgeParseError(f"the judge refused: {_snippet(text)!r}")
    if _looks_like_json(text):
        raise JudgeParseError(f"invalid or truncated JSON: {_snippet(text[-60:], 60)!r}")
    raise JudgeParseError("no <revision> section found")
