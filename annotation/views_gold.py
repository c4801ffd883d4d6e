"""The record page's gold panel (admins): what the known answer is, and the forms that mark a
record gold from an annotator's answer or from a chosen best response, change it, or unmark it.
Writes go through annotation.quality.gold's services; POST, then a redirect to the record page."""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from .access import ADMIN, record_for_user
from .errors import validation_message
from .models import Question, Record, Response
from .quality.gold import question_answer_matches, records_gold_clear, records_gold_set
from .quality.gold_files import gold_answer_best, gold_answer_from_values
from .quality.review import answer_in_words
from .selectors import compared_fields, dataset_questions, ranked_question_of


def record_gold_context(*, record: Record, questions: list[Question], titles: dict[str, str]) -> dict:
    """The gold panel: the known answer in words (gold records), and the ranked question whose best
    response the admin can pick, with its choices (field name, title)."""
    question = ranked_question_of(questions)
    by_name = {q.name: q for q in questions}
    known = [{"q": by_name[name], "value": answer_in_words(by_name[name], value, titles)}
             for name, value in (record.gold_answer or {}).items() if name in by_name] if record.is_gold else []
    choices, current = [], None
    if question is not None:
        names = compared_fields(question) or list((question.options or {}).get("values", []))
        choices = [(name, titles.get(name, name)) for name in names]
        known_value = (record.gold_answer or {}).get(question.name) if record.is_gold else None
        if known_value is not None:  # the response the known answer calls best, by the one matching rule
            current = next((name for name in names if _best_matches(question, known_value, name)), None)
    return {"known": known, "question": question, "choices": choices, "current": current}


def _best_matches(question: Question, known: Any, name: str) -> bool:
    try:
        return question_answer_matches(question, known, gold_answer_best(question=question, best=name)[question.name])
    except ValidationError:
        return False


@login_required
@require_POST
def record_gold_view(request, dataset_id: int, record_id: int):
    """action=response (response=<id>: that submitted answer is the known answer), action=best
    (best=<field>: that response is the best one), action=clear (no longer gold)."""
    record = record_for_user(request.user, record_id, role=ADMIN)
    if record.dataset_id != dataset_id:
        raise Http404("No such record.")
    dataset = record.dataset
    action = request.POST.get("action", "")
    questions = dataset_questions(dataset)
    try:
        if action == "clear":
            records_gold_clear(dataset=dataset, record_ids=[record.pk])
            messages.success(request, "The record is no longer gold; answers given to it are kept.")
        elif action in ("response", "best"):
            if action == "response":
                response = Response.objects.filter(record=record, pk=_int(request.POST.get("response")),
                                                   status=Response.Status.SUBMITTED).first()
                if response is None:
                    raise ValidationError({"response": "not a submitted answer to this record"})
                answer = gold_answer_from_values(questions=questions, values=response.values)
            else:
                question = ranked_question_of(questions)
                if question is None:
                    raise ValidationError({"best": "this dataset has no ranking or preference question"})
                answer = gold_answer_best(question=question, best=request.POST.get("best") or None)
            was_gold = record.is_gold
            records_gold_set(dataset=dataset, answers={record.pk: answer})
            messages.success(request, "Known answer changed." if was_gold else
                             "The record is gold: annotators get it at the dataset's gold rate, without knowing.")
        else:
            return HttpResponseBadRequest("action: must be response, best or clear")
    except ValidationError as exc:
        messages.error(request, f"Nothing changed: {validation_message(exc)}")
    return redirect("record-detail", dataset.pk, record.pk)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
