"""The options of a triplet export, checked (query string, CLI or job params), and what it exports:
the question and the fields it orders."""
from __future__ import annotations

import datetime
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from ..models import Dataset, Question
from ..selectors import compared_fields, ranked_question_of
from ..validation import bool_param

PAIRS = ("best_worst", "all", "best_vs_rest")
RESOLVE = ("majority", "mean_rank", "weighted")
SOURCES = ("human", "suggestions", "both")
STYLES = ("standard", "conversational")
FORMATS = ("jsonl", "csv", "parquet")
EXTENSIONS = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}
CONTENT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8",
                 "parquet": "application/vnd.apache.parquet"}
MARGIN_COLUMNS = ("vote_margin", "rank_margin", "strength_margin", "judge_margin")
# reviewed: the row comes from a reviewer's verdict (accepted answer or own), not the votes; reviewed_by: who
REVIEW_COLUMNS = ("reviewed", "reviewed_by")
BASE_COLUMNS = ("prompt", "chosen", "rejected", "record_id", "external_id", "chosen_field", "rejected_field",
                "annotators", "agreement", *MARGIN_COLUMNS, "tie", "source", *REVIEW_COLUMNS)
MARGIN_FROM = ("votes", "strength")
REVIEWS = ("use", "ignore")  # use: a reviewed verdict replaces the record's votes; ignore: the votes as they are
# trl_margin=<column>: TRL's RewardTrainer reads a column named `margin` into its loss
# (-logsigmoid(r_chosen - r_rejected - margin)); it is written only when asked for, from one named column.
TRL_MARGIN = MARGIN_COLUMNS
PARAMETERS = {"format", "question", "pairs", "resolve", "source", "include_ties", "style", "min_margin",
              "margin_from", "include_both_bad", "trl_margin", "include_gold",
              "include_excluded", "reviews"}
# What every export kind reads the same way: gold records and excluded annotators' answers are left out
# unless asked for (annotation.quality: gold, standing).
QUALITY_PARAMETERS = {"include_gold", "include_excluded"}


def file_name_part(text: str, fallback: str = "dataset") -> str:
    """User text (a dataset's name) as part of a download's file name: lower-case ASCII letters, digits and
    single hyphens only (no quotes, slashes, dots or control characters), at most 80 characters."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text)[:80].strip("-") or fallback


def export_file_name(dataset: Dataset, *, fmt: str, style: str, source: str, day: datetime.date,
                     kind: str = "triplets") -> str:
    """The file name of a triplet export, saying what is in it and when it was made, so that two exports
    never land on the same name: `helpfulness-triplets-conversational-human-2026-12-03.jsonl`."""
    name = file_name_part(dataset.name, fallback=f"dataset-{dataset.pk}")
    return f"{name}-{kind}-{style}-{source}-{day.isoformat()}.{EXTENSIONS[fmt]}"


def columns_for(source: str, trl_margin: str | None = None) -> tuple[str, ...]:
    return BASE_COLUMNS + (("ratings",) if source != "human" else ()) + (("margin",) if trl_margin else ())


def export_params_parse(params: dict, *, with_format: bool = True) -> dict:
    """Check export options (query string, CLI or job params). Raises ValidationError naming the bad one."""
    unknown = set(params) - PARAMETERS
    if unknown:
        raise ValidationError({sorted(unknown)[0]: f"unknown parameter; known: {', '.join(sorted(PARAMETERS))}"})
    out: dict[str, Any] = {}
    for name, choices, default in (("pairs", PAIRS, "best_worst"), ("resolve", RESOLVE, "majority"),
                                   ("source", SOURCES, "human"), ("style", STYLES, "standard"),
                                   ("margin_from", MARGIN_FROM, "votes"), ("reviews", REVIEWS, "use")):
        out[name] = _choice(name, params.get(name) or default, choices)
    if with_format:
        out["format"] = _choice("format", params.get("format") or "jsonl", FORMATS)
    out["include_ties"] = bool_param("include_ties", params.get("include_ties"))
    out["include_both_bad"] = bool_param("include_both_bad", params.get("include_both_bad"))
    out.update(quality_params_parse(params))
    out["question"] = params.get("question") or None
    out["trl_margin"] = _choice("trl_margin", params["trl_margin"], TRL_MARGIN) if params.get("trl_margin") else None
    out["min_margin"] = _number_or_none("min_margin", params.get("min_margin"))
    return out


def quality_params_parse(params: dict) -> dict:
    """include_gold (gold records, left out by default) and include_excluded (the answers of annotators
    excluded on the dataset, left out by default), as every export kind reads them."""
    return {name: bool_param(name, params.get(name)) for name in sorted(QUALITY_PARAMETERS)}


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValidationError({name: f"must be one of {', '.join(choices)}, not {str(value)[:40]!r}"})
    return value


def _number_or_none(name: str, value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValidationError({name: f"must be a number, not {str(value)[:40]!r}"})


@dataclass(frozen=True)
class Target:
    """What is being compared: the question and the fields it orders."""

    question: Question
    fields: tuple[str, ...]
    compares: bool  # a pairwise question (options.compares): a comparison rating or a graded preference
    graded: bool = False  # a graded preference: answers carry a strength and may call both responses bad

    @property
    def offers_both_bad(self) -> bool:
        return self.graded and bool((self.question.options or {}).get("both_bad"))


def export_target(dataset: Dataset, question: str | None = None) -> Target:
    """The question to export: the named one, else the first ranking, else the first pairwise question
    (a comparison rating or a graded preference)."""
    questions = list(dataset.questions.all())
    if question:
        q = next((q for q in questions if q.name == question), None)
        if q is None:
            raise ValidationError({"question": f"no question {question!r} in this dataset"})
    else:
        q = ranked_question_of(questions)
        if q is None:
            raise ValidationError({"question": "this dataset has no ranking question and no pairwise question "
                                               "(a preference, or a rating with options.compares) to export"})
    options = q.options or {}
    if q.kind == Question.Kind.RANKING:
        return Target(q, tuple(options.get("values") or ()), False)
    compares = compared_fields(q)
    if compares:
        return Target(q, tuple(compares), True, graded=q.kind == Question.Kind.PREFERENCE)
    raise ValidationError({"question": f"{q.name!r} is a {q.kind} question; triplets need a ranking question, "
                                      "a preference question or a rating with options.compares"})
