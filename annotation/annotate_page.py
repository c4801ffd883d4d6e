"""The annotate page of one record: what the annotate partial shows (annotate, history and the
admins' review of a record all build it here; views.py renders it).

Annotators see "Response A/B/…" in their own display order (shuffled per annotator when the
dataset says so), never field names; answers, judge suggestions and errors are shown in the same
slots.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from .agreement import ranks_from_value
from .markdown import markdown_render, plain_render
from .models import Dataset, Field, Question, Record, Response, Suggestion
from .selectors import annotator_progress, ranked_fields_of, record_metadata_for, suggestions_shown_for
from .services import display_order_for
from .validation import question_value_validate

SLOTS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class AnnotateView:
    """Everything the annotate partial needs for one record."""

    dataset: Dataset
    record: Record | None
    mode: str = "queue"                      # queue | history | review
    prompt: dict | None = None
    context_fields: list[dict] = field(default_factory=list)
    responses: list[dict] = field(default_factory=list)
    questions: list[dict] = field(default_factory=list)
    response: Response | None = None
    display_order: list[str] = field(default_factory=list)
    suggested: bool = False
    errors: list[str] = field(default_factory=list)
    notice: str = ""
    submitted_by_me: int = 0
    progress: dict = field(default_factory=dict)   # selectors.annotator_progress
    undo_url: str = ""                       # the notice offers to undo a discard
    done_record: Record | None = None        # the record just answered (the browser's Back shows it)
    cols: int = 2
    empty: bool = False                      # the dataset has no records at all
    paused: str = ""                         # why the annotator is paused on the dataset (no record then)
    metadata: dict = field(default_factory=dict)  # what selectors.record_metadata_for lets this user see

    @property
    def question_kinds(self) -> set[str]:
        """The kinds of question on the page (the shortcuts panel lists the keys of these only)."""
        return {q["kind"] for q in self.questions}


def shown_order(data, record: Record, user, dataset: Dataset, ranked: list[str]) -> list[str]:
    """The order the annotator saw, as the page sent it back; computed when missing or not valid."""
    sent = [x for x in (data.get("display_order") or "").split(",") if x]
    if sorted(sent) == sorted(ranked):
        return sent
    return display_order_for(record=record, user_id=user.pk, field_names=ranked, shuffle=dataset.shuffle_responses)


def slot_names(message: str, order: list[str]) -> str:
    """Annotators see "Response A/B/…", not field names: say the same in error messages and in the
    judges' rationales. A name counts whole (response-1 is not in response-10), quoted or not."""
    if not message or not order:
        return message
    slot_of = {name: SLOTS[i] for i, name in enumerate(order)}
    names = "|".join(re.escape(n) for n in sorted(order, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w-])'?({names})'?(?![\w-])")
    return pattern.sub(lambda m: f"Response {slot_of[m.group(1)]}", message)


def field_html(kind: str, value: Any) -> dict:
    """A field value as safe HTML (markdown and chat rendered and sanitized; text escaped)."""
    if kind == Field.Kind.CHAT and isinstance(value, list):
        return {"chat": [{"role": str(m.get("role", "")), "html": markdown_render(str(m.get("content", "")))}
                         for m in value if isinstance(m, dict)]}
    if value is None:
        return {"html": "", "plain": True}
    if not isinstance(value, str):
        return {"html": plain_render(json.dumps(value, ensure_ascii=False, indent=2)), "plain": True}
    if kind == Field.Kind.MARKDOWN:
        return {"html": markdown_render(value), "plain": False}
    return {"html": plain_render(value), "plain": True}


def annotate_view_build(*, user, dataset: Dataset, record: Record | None, mode: str = "queue",
                        response: Response | None = None, values: dict | None = None,
                        fields: list[Field] | None = None, questions: list[Question] | None = None,
                        question_errors: dict[str, str] | None = None) -> AnnotateView:
    """The annotate view of `record` for `user` (record None: the "nothing left" state).

    `values` (default: the user's response) are the answers to show, e.g. a refused submit's;
    `question_errors` the messages to show under each question. mode: queue | history | review
    (review: an admin's view, responses named and in field order).
    """
    view = AnnotateView(dataset=dataset, record=record, mode=mode)
    if mode != "review":  # (an admin's review of a record shows no progress of theirs)
        view.progress = annotator_progress(dataset=dataset, user=user)
        view.submitted_by_me = view.progress["submitted"]
    if record is None:
        view.empty = not Record.objects.filter(dataset=dataset).exists()
        return view
    fields = fields if fields is not None else list(dataset.fields.all())
    questions = questions if questions is not None else list(dataset.questions.all())
    if response is None:
        response = Response.objects.filter(record=record, user=user).first()
    view.response = response
    view.metadata = record_metadata_for(record=record, dataset=dataset, user=user)
    view.display_order = _display_order(user=user, dataset=dataset, record=record, response=response,
                                        ranked=ranked_fields_of(questions), mode=mode)
    page = _Page(view.display_order, fields, record.fields or {})
    if values is None:
        values = dict(response.values) if response else {}
    suggestions: dict[int, Suggestion] = {}
    if dataset.show_suggestions:
        found = list(Suggestion.objects.filter(record=record))
        # an annotator sees them only on the assignments the anchoring experiment shows them on
        if mode == "review" or suggestions_shown_for(record=record, user=user, dataset=dataset,
                                                     has_suggestions=bool(found)):
            suggestions = _pick_suggestions(found)
    _add_fields(view, page, prompt_field=dataset.prompt_field)
    first_ranks = _add_questions(view, page, questions, values=values, suggestions=suggestions,
                                 question_errors=question_errors or {})
    _add_responses(view, page, first_ranks)
    return view


class _Page:
    """The record's fields, by name, and the slot (A, B, …) each shown response takes."""

    def __init__(self, order: list[str], fields: list[Field], rec_fields: dict):
        self.order = order
        self.slot_of = {name: SLOTS[i] for i, name in enumerate(order)}
        self.fields = fields
        self.by_name = {f.name: f for f in fields}
        self.rec_fields = rec_fields


def _display_order(*, user, dataset: Dataset, record: Record, response: Response | None, ranked: list[str],
                   mode: str) -> list[str]:
    """The order of the ranked fields on this page: the one the annotator already saw when their
    response stored it, else their own (shuffled per annotator when the dataset says so)."""
    stored_order = response.display_order if response else None
    if mode == "review":
        return list(ranked)  # admins compare answers by field name: canonical order, no shuffle
    if stored_order and sorted(stored_order) == sorted(ranked):
        return list(stored_order)
    return display_order_for(record=record, user_id=user.pk, field_names=ranked, shuffle=dataset.shuffle_responses)


def suggestion_pick_key(score: float | None, updated_at) -> tuple:
    """The order in which a question's suggestions compete to be shown: the best scored, then the latest
    (the anchoring figures of annotation.quality.metrics read which one was shown by it too)."""
    return (score is not None, score or 0.0, updated_at)


def _pick_suggestions(suggestions: list[Suggestion]) -> dict[int, Suggestion]:
    """The suggestion to show per question: the best scored, then the latest."""
    best: dict[int, Suggestion] = {}
    for s in suggestions:
        cur = best.get(s.question_id)
        if cur is None or suggestion_pick_key(s.score, s.updated_at) > suggestion_pick_key(cur.score, cur.updated_at):
            best[s.question_id] = s
    return best


def _add_fields(view: AnnotateView, page: _Page, *, prompt_field: str) -> None:
    """The prompt, and the fields that are neither the prompt nor a response, as context."""
    rec_fields = page.rec_fields
    prompt = page.by_name.get(prompt_field)
    if prompt is not None and prompt.name in rec_fields:
        view.prompt = {"name": prompt.name, "title": prompt.title or prompt.name,
                       **field_html(prompt.kind, rec_fields.get(prompt.name))}
    for f in page.fields:
        if f.name == prompt_field or f.name in page.slot_of or f.name not in rec_fields:
            continue
        view.context_fields.append({"name": f.name, "title": f.title or f.name, **field_html(f.kind, rec_fields[f.name])})


def _add_questions(view: AnnotateView, page: _Page, questions: list[Question], *, values: dict,
                   suggestions: dict[int, Suggestion], question_errors: dict[str, str]) -> dict[str, int]:
    """The questions with their answers (or a judge's suggestion, pre-filled); returns the first
    ranking question's ranks, which the response cards show too."""
    first_ranking = next((q for q in questions if q.kind == Question.Kind.RANKING), None)
    first_ranks: dict[str, int] = {}
    for q in questions:
        value = values.get(q.name)
        suggestion = suggestions.get(q.pk)
        prefilled, suggestion_note = False, ""
        if value is None and suggestion is not None and q.name not in question_errors:
            suggestion_note = _suggestion_unfit(q, suggestion.value, page, allow_ties=view.dataset.allow_ties)
            if not suggestion_note:
                value, prefilled = suggestion.value, True
                view.suggested = True
        qv: dict[str, Any] = {"q": q, "name": q.name, "kind": q.kind, "title": q.title or q.name,
                              "description": q.description, "required": q.required, "error": question_errors.get(q.name, ""),
                              "prefilled": prefilled, "suggestion_note": suggestion_note,
                              "suggestion": None}
        if suggestion is not None:
            rationale = suggestion.rationale or ""
            if view.mode != "review":  # annotators see letters, admins field names
                rationale = slot_names(rationale, page.order)
            qv["suggestion"] = {"agent": suggestion.agent, "score": suggestion.score,
                                "rationale_html": markdown_render(rationale) if rationale else ""}
        if q.kind == Question.Kind.RANKING:
            ranks = _ranking_items(qv, q, value, page)
            if q is first_ranking:
                first_ranks = ranks
        elif q.kind == Question.Kind.RATING:
            _rating_choices(qv, q, value, page)
        elif q.kind == Question.Kind.PREFERENCE:
            _preference_choices(qv, q, value, page)
        elif q.kind == Question.Kind.LABEL:
            qv["choices"] = list(q.options.get("values", []))
            qv["multiple"] = bool(q.options.get("multiple"))
            qv["selected"] = set(value if isinstance(value, list) else ([value] if value else []))
        else:
            qv["value"] = value if isinstance(value, str) else ""
            qv["placeholder"] = q.options.get("placeholder", "")
        view.questions.append(qv)
    return first_ranks


def _suggestion_unfit(q: Question, value: Any, page: _Page, *, allow_ties: bool) -> str:
    """Why a judge's suggestion cannot pre-fill this question ("" when it can): the page pre-fills
    only answers that could be submitted as they are, and otherwise asks the annotator to choose."""
    try:
        question_value_validate(q, value, allow_ties=allow_ties)
    except ValidationError:
        pass
    else:
        return ""
    ranks = ranks_from_value(value) if q.kind == Question.Kind.RANKING else None
    if ranks and not allow_ties:
        tied: dict[Any, list[str]] = {}
        for name in page.order:
            if name in ranks:
                tied.setdefault(ranks[name], []).append(f"Response {page.slot_of[name]}")
        groups = [names for names in tied.values() if len(names) > 1]
        if groups:
            equal = "; ".join(" and ".join(names) if len(names) == 2 else ", ".join(names) for names in groups)
            return f"The judge found {equal} equal. This dataset needs a strict order: choose one."
    return "The judge's suggestion does not fit this question, so nothing is pre-filled: choose yourself."


def _ranking_items(qv: dict, q: Question, value: Any, page: _Page) -> dict[str, int]:
    """A ranking question's items in slot terms; returns the ranks of the answer shown."""
    ranks = ranks_from_value(value) or {}
    names = list(q.options.get("values", []))
    shown = [n for n in page.order if n in names] + [n for n in names if n not in page.order]
    items = [{"field": n, "slot": page.slot_of.get(n, "?"),
              "title": page.by_name[n].title if n in page.by_name else n, "rank": ranks.get(n)} for n in shown]
    # the list shows the current ranking: ranked first (by rank), unranked after in display order
    qv["items"] = sorted(items, key=lambda it: (it["rank"] is None, it["rank"] or 0, shown.index(it["field"])))
    qv["count"] = len(items)
    qv["rank_choices"] = list(range(1, len(items) + 1))
    return ranks


def _rating_choices(qv: dict, q: Question, value: Any, page: _Page) -> None:
    """A rating's choices; a comparison rating says them in slot terms, in display order."""
    compares = q.options.get("compares")
    if compares:
        order, slot_of = page.order, page.slot_of
        a, b = sorted(compares, key=lambda n: order.index(n) if n in order else 99)
        val_a = 1 if a == compares[0] else 2
        qv["compare"] = [
            {"value": val_a, "label": f"{slot_of.get(a, a)} is better"},
            {"value": 0, "label": "Tie"},
            {"value": 3 - val_a, "label": f"{slot_of.get(b, b)} is better"},
        ]
    qv["choices"] = list(q.options.get("values", []))
    qv["value"] = value


def _preference_choices(qv: dict, q: Question, value: Any, page: _Page) -> None:
    """A graded preference in slot terms: one row per strength level (strongest first), the left
    response's choice then the right one's. Keys run across the scale from the left response's
    strongest (1) to the right one's strongest (2N); 0 toggles "both are bad"."""
    options = q.options or {}
    compares = list(options.get("compares") or [])
    left, right = sorted(compares, key=lambda n: page.order.index(n) if n in page.order else 99)
    scale = list(options.get("scale") or [])
    n = len(scale)
    answer = value if isinstance(value, dict) else {}

    def choice(field_name: str, level: dict, key: int) -> dict:
        return {"key": key, "slot": page.slot_of.get(field_name, "?"), "label": level["label"],
                "value": f"{field_name}:{level['value']}",
                "checked": answer.get("preferred") == field_name and answer.get("strength") == level["value"]}

    qv["pref"] = {
        "slots": [page.slot_of.get(left, "?"), page.slot_of.get(right, "?")],
        "rows": [[choice(left, level, i + 1), choice(right, level, 2 * n - i)] for i, level in enumerate(scale)],
        "keys": 2 * n,
        "both_bad": bool(options.get("both_bad")),
        "both_bad_checked": answer.get("both_bad") is True,
    }


def preference_summary(question: Question, value: Any) -> str:
    """A preference answer in words for an admin's review, by field name: "response-2 better (2)",
    "both bad", or both."""
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    parts = []
    if value.get("preferred") is not None:
        label = next((lv["label"] for lv in (question.options or {}).get("scale") or []
                      if lv["value"] == value.get("strength")), str(value.get("strength")))
        parts.append(f"{value['preferred']} {label} ({value.get('strength')})")
    if value.get("both_bad"):
        parts.append("both bad")
    return " · ".join(parts)


def _add_responses(view: AnnotateView, page: _Page, first_ranks: dict[str, int]) -> None:
    """The response cards, in display order, with the rank the first ranking gives them."""
    for name in page.order:
        f = page.by_name.get(name)
        title = (f.title if f else name) or name
        view.responses.append({"name": name, "slot": page.slot_of[name], "title": title,
                               "label": f"{title} · {name}" if view.mode == "review" else f"Response {page.slot_of[name]}",
                               "rank": first_ranks.get(name),
                               **field_html(f.kind if f else Field.Kind.TEXT, page.rec_fields.get(name))})
    n = len(view.responses)
    view.cols = 1 if n <= 1 else (2 if n in (2, 4) else 3)
