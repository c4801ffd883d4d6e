"""The reviewers' pages (server-rendered, no inline JS): the review queue of a dataset and the
review of one record, where a reviewer accepts an annotator's answer, sets their own verdict or
sends the record back for more answers, then goes on to the next queued record.

Reviewers and admins of the dataset's workspace (access.REVIEWER); annotators get a 403, other
workspaces a 404. Logic lives in annotation.quality.review.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from . import forms as ui_forms
from .access import REVIEWER, dataset_for_user
from .annotate_page import annotate_view_build
from .markdown import markdown_render
from .models import Question, Record, Response, Review, Suggestion
from .quality.review import (
    answer_in_words,
    page_params,
    record_answers,
    record_review_score,
    review_accept,
    review_clear,
    review_of,
    review_queue,
    review_queue_next,
    review_send_back,
    review_set,
)
from .selectors import compared_fields, field_titles


@login_required
@require_GET
def review_queue_view(request, dataset_id: int):
    dataset = dataset_for_user(request.user, dataset_id, role=REVIEWER)
    try:
        page, page_size = page_params(request.GET.get("page"), None)
    except ValidationError:
        page, page_size = 1, 50
    queue = review_queue(dataset, page=page, page_size=page_size)
    return render(request, "annotation/review_queue.html", {"dataset": dataset, "queue": queue})


def _verdict_questions(questions: list[Question], values: dict, titles: dict) -> list[dict]:
    """The verdict form's questions as plain controls (a rank select per response, radios,
    checkboxes, a text box), pre-set with `values` (the current verdict)."""
    out = []
    for q in questions:
        value = values.get(q.name)
        options = q.options or {}
        item = {"name": q.name, "title": q.title or q.name, "kind": q.kind, "required": q.required}
        if q.kind == Question.Kind.RANKING:
            from .agreement import ranks_from_value

            ranks = ranks_from_value(value) or {}
            names = list(options.get("values", []))
            item["items"] = [{"field": n, "title": titles.get(n, n), "rank": ranks.get(n)} for n in names]
            item["rank_choices"] = list(range(1, len(names) + 1))
        elif q.kind == Question.Kind.PREFERENCE:
            current = value if isinstance(value, dict) else {}
            item["choices"] = [{"value": f"{f}:{level['value']}", "label": f"{titles.get(f, f)}: {level['label']}",
                                "checked": current.get("preferred") == f and current.get("strength") == level["value"]}
                               for f in options.get("compares") or [] for level in options.get("scale") or []]
            item["both_bad"] = bool(options.get("both_bad"))
            item["both_bad_checked"] = current.get("both_bad") is True
        elif q.kind in (Question.Kind.RATING, Question.Kind.LABEL):
            compares = compared_fields(q) if q.kind == Question.Kind.RATING else None
            words = ({1: f"{titles.get(compares[0], compares[0])} better", 0: "tie",
                      2: f"{titles.get(compares[1], compares[1])} better"} if compares else {})
            chosen = set(map(str, value)) if isinstance(value, list) else ({str(value)} if value is not None else set())
            item["multiple"] = bool(options.get("multiple")) and q.kind == Question.Kind.LABEL
            item["choices"] = [{"value": c, "label": words.get(c, c), "checked": str(c) in chosen}
                               for c in options.get("values", [])]
        else:
            item["value"] = value if isinstance(value, str) else ""
        out.append(item)
    return out


def _record_context(request, dataset, record: Record, *, values: dict | None = None, errors: list | None = None) -> dict:
    questions = list(dataset.questions.all())
    titles = field_titles(dataset)
    view = annotate_view_build(user=request.user, dataset=dataset, record=record, mode="review", values={},
                               questions=questions)
    answers = record_answers(record=record, questions=questions, titles=titles)
    suggestions = list(Suggestion.objects.filter(record=record).select_related("question")
                       .order_by("question__position", "agent"))
    for s in suggestions:
        s.rationale_html = markdown_render(s.rationale) if s.rationale else ""
        s.in_words = answer_in_words(s.question, s.value, titles)
    review = review_of(record=record)
    submitted = [row["response"].values or {} for row in answers
                 if row["response"].status == Response.Status.SUBMITTED and not row["excluded"]]
    why = record_review_score(questions=questions, answers=submitted,
                              suggestions=[(s.question_id, s.value, s.agent) for s in suggestions],
                              is_gold=record.is_gold, gold_answer=record.gold_answer)
    if values is None:
        values = dict(review.values) if review is not None and review.decision == Review.Decision.OWN else {}
    gold = ([{"q": q, "value": answer_in_words(q, (record.gold_answer or {}).get(q.name), titles)}
             for q in questions if q.name in (record.gold_answer or {})] if record.is_gold else [])
    return {"dataset": dataset, "record": record, "v": view, "answers": answers, "suggestions": suggestions,
            "review": review, "why": why, "gold": gold, "errors": errors or [],
            "verdict_questions": _verdict_questions(questions, values, titles),
            "submitted_count": len(submitted)}


def _record(dataset, record_id: int) -> Record:
    from django.http import Http404

    record = Record.objects.filter(pk=record_id, dataset=dataset).first()
    if record is None:
        raise Http404("No such record.")
    record.dataset = dataset
    return record


@login_required
@require_http_methods(["GET", "POST"])
def review_record_view(request, dataset_id: int, record_id: int):
    """GET: the record, every answer, the judges' suggestions (and the gold answer of a gold
    record) with the three decisions. POST action=accept (response=<id>) | own (the verdict form) |
    send_back (more=<n>) | clear, with an optional note; then the next queued record."""
    dataset = dataset_for_user(request.user, dataset_id, role=REVIEWER)
    record = _record(dataset, record_id)
    if request.method == "GET":
        return render(request, "annotation/review_record.html", _record_context(request, dataset, record))
    action = request.POST.get("action", "")
    note = request.POST.get("note", "")
    values = None
    try:
        if action == "accept":
            response_id = request.POST.get("response", "")
            review_accept(record=record, response=int(response_id) if response_id.isdigit() else response_id,
                          reviewer=request.user, note=note)
            done = "Accepted the answer"
        elif action == "own":
            values = ui_forms.response_values_from_post(list(dataset.questions.all()), request.POST)
            review_set(record=record, values=values, reviewer=request.user, note=note)
            done = "Your verdict is saved"
        elif action == "send_back":
            more = request.POST.get("more", "1")
            review_send_back(record=record, reviewer=request.user, note=note,
                             more=int(more) if more.strip().isdigit() else more)
            done = "Sent back for more answers"
        elif action == "clear":
            review_clear(record=record)
            done = "Review cleared"
        else:
            raise ValidationError({"action": "must be accept, own, send_back or clear"})
    except ValidationError as exc:
        errors = [f"{k}: {' '.join(v)}" if k != "__all__" else " ".join(v) for k, v in exc.message_dict.items()]
        return render(request, "annotation/review_record.html",
                      _record_context(request, dataset, record, values=values, errors=errors), status=422)
    nxt = review_queue_next(dataset, after=record.pk)
    messages.success(request, f"{done}: record {record.external_id}." + ("" if nxt else " The queue is empty."))
    if action == "clear":
        return redirect("review-record", dataset.pk, record.pk)
    if nxt is None:
        return redirect("review-queue", dataset.pk)
    return redirect(reverse("review-record", args=[dataset.pk, nxt]))
