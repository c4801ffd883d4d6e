"""Browser pages of preflab (server-rendered, htmx). Thin: reads through selectors, writes through
services; this module only turns requests into calls and results into templates.

Access: every page goes through annotation.access (another workspace's dataset, record or job
is a 404; an annotator on an admin page is a 403).
"""
from __future__ import annotations

import mimetypes
import os

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q, prefetch_related_objects
from django.http import FileResponse, Http404, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseLocation, HttpResponseStopPolling, reswap, retarget

from . import forms as ui_forms
from .access import (
    ADMIN,
    REVIEWER,
    admin_workspaces,
    dataset_for_user,
    dataset_role,
    job_for_user,
    role_at_least,
    workspace_for_user,
    workspaces_for_user,
)
from .agreement import dataset_quality
from .annotate_page import AnnotateView, annotate_view_build, shown_order, slot_names
from .errors import AnnotatorPaused, form_errors_from
from .job_selectors import job_download_name, job_page_context, job_progress_context
from .jobs import job_cancel, job_resume_or_retry, job_retry_failed
from .markdown import markdown_render
from .models import Dataset, Job, Membership, Question, Record, Response, Suggestion
from .quality.review import record_answers
from .selectors import (
    datasets_for_user,
    datasets_progress,
    field_titles,
    invitations_for,
    invitations_of,
    members_of,
    ranked_fields_of,
)
from .services import (
    api_token_get,
    api_token_rotate,
    dataset_archive,
    dataset_create,
    dataset_delete_or_enqueue,
    dataset_publish,
    dataset_unpublish,
    dataset_update,
    invitation_answer,
    member_add,
    member_password_check,
    member_remove,
    next_record_for,
    response_discard_undo,
    response_upsert,
)
from .text import text_cleaned_notes
from .views_gold import record_gold_context

# --- helpers -----------------------------------------------------------------------------------

def _require_open(user, dataset: Dataset) -> None:
    """Annotators work on published datasets only; admins may try a draft dataset out."""
    if dataset.status == Dataset.Status.PUBLISHED:
        return
    if not role_at_least(dataset_role(dataset, user), ADMIN):
        raise PermissionDenied("This dataset is not open for annotation.")


def _with_definition(dataset: Dataset) -> Dataset:
    """Load the dataset's fields and questions once; services reading dataset.questions reuse them."""
    prefetch_related_objects([dataset], "fields", "questions")
    return dataset


def _dataset_record(dataset: Dataset, record_id: int) -> Record:
    record = Record.objects.filter(pk=record_id, dataset=dataset).first()
    if record is None:
        raise Http404("No such record.")
    record.dataset = dataset
    return record


def _next_for(user, dataset: Dataset) -> tuple[Record | None, str]:
    """next_record_for for the annotate pages: (record, "") or, for a paused annotator, (None, why)."""
    try:
        record = next_record_for(user, dataset)
    except AnnotatorPaused as exc:
        return None, exc.reason
    if record is not None:
        record.dataset = dataset
    return record, ""


def _annotate_response(request, view: AnnotateView, *, status: int = 200, full: bool | None = None):
    first_ranking = next((q for q in view.questions if q["kind"] == Question.Kind.RANKING), None)
    ctx = {"v": view, "dataset": view.dataset, "first_ranking": first_ranking,
           "allow_ties": view.dataset.allow_ties}
    if full is None:
        full = not request.htmx or request.htmx.boosted
    template = "annotation/annotate.html" if full else "annotation/annotate.html#panel"
    return render(request, template, ctx, status=status)


# --- home --------------------------------------------------------------------------------------

@login_required
@require_GET
def home(request):
    user = request.user
    datasets = list(datasets_for_user(user))
    administered = set(admin_workspaces(user).values_list("pk", flat=True))
    reviewing = set(workspaces_for_user(user, role=REVIEWER).values_list("pk", flat=True))
    visible = [d for d in datasets if d.status == Dataset.Status.PUBLISHED or d.workspace_id in administered]
    progress = datasets_progress([d.pk for d in visible])
    mine = dict(Response.objects.filter(user=user, dataset_id__in=[d.pk for d in visible],
                                        status=Response.Status.SUBMITTED)
                .values_list("dataset_id").annotate(n=Count("id")).values_list("dataset_id", "n"))
    cards = []
    for d in visible:
        p = progress.get(d.pk, {})
        cards.append({"dataset": d, "records": p.get("records", 0), "completed": p.get("completed", 0),
                      "mine": mine.get(d.pk, 0),
                      "is_admin": d.workspace_id in administered,
                      "is_reviewer": d.workspace_id in reviewing})
    return render(request, "annotation/home.html", {"cards": cards})


# --- annotator: focus view ---------------------------------------------------------------------

@login_required
@require_GET
def annotate(request, dataset_id: int):
    dataset = dataset_for_user(request.user, dataset_id)
    if dataset.status != Dataset.Status.PUBLISHED and not role_at_least(dataset_role(dataset, request.user), ADMIN):
        return render(request, "annotation/closed.html", {"dataset": dataset}, status=403)
    _with_definition(dataset)
    record, paused = _next_for(request.user, dataset)
    view = annotate_view_build(user=request.user, dataset=dataset, record=record)
    view.paused = paused
    return _annotate_response(request, view)


def _posted_values(dataset: Dataset, questions: list[Question], data, action: str) -> dict:
    values = ui_forms.response_values_from_post(questions, data)
    if action != Response.Status.SUBMITTED:
        values = ui_forms.response_values_keep_valid(questions, values, allow_ties=dataset.allow_ties)
    return values


@login_required
@require_POST
def record_respond(request, dataset_id: int, record_id: int):
    """Submit or discard (or, without JavaScript, save a draft of) the user's response to a record.

    htmx: answers with the next record's panel (queue) or navigates back to the history (history
    mode); a validation error answers 422 with the messages, swapped into the form's error slots,
    so nothing the annotator entered is lost.
    """
    dataset = _with_definition(dataset_for_user(request.user, dataset_id))
    _require_open(request.user, dataset)
    record = _dataset_record(dataset, record_id)
    action = request.POST.get("action", "submit")
    status = {"submit": Response.Status.SUBMITTED, "discard": Response.Status.DISCARDED,
              "draft": Response.Status.DRAFT}.get(action)
    mode = "history" if request.POST.get("mode") == "history" else "queue"
    if status is None:
        return HttpResponseBadRequest("action: must be submit, discard or draft")
    questions = list(dataset.questions.all())
    values = _posted_values(dataset, questions, request.POST, status)
    order = shown_order(request.POST, record, request.user, dataset, ranked_fields_of(questions))
    try:
        result = response_upsert(user=request.user, record=record, values=values, status=status,
                                 display_order=order, duration=ui_forms.duration_from_post(request.POST),
                                 add_duration=True)
    except ValidationError as exc:
        per_question, general = ui_forms.errors_by_question(exc)
        per_question = {k: slot_names(v, order) for k, v in per_question.items()}
        if request.htmx:
            response = render(request, "annotation/partials/form_errors.html",
                              {"record": record, "general": general, "per_question": per_question,
                               "questions": questions}, status=422)
            return reswap(retarget(response, f"#form-errors-{record.pk}"), "innerHTML")
        view = annotate_view_build(user=request.user, dataset=dataset, record=record, mode=mode,
                                   values=values, question_errors=per_question, questions=questions)
        view.errors = general or ["Please fix the answers marked below."]
        return _annotate_response(request, view, status=422, full=True)

    done_word = {"submitted": "Submitted", "discarded": "Discarded", "draft": "Draft saved"}[status]
    if mode == "history":
        messages.success(request, f"{done_word}: record {record.external_id}.")
        url = reverse("history", args=[dataset.pk])
        return HttpResponseLocation(url, target="body") if request.htmx else redirect(url)
    if not request.htmx:
        for w in result.warnings:
            messages.warning(request, w)
        return redirect("annotate", dataset.pk)
    nxt, paused = _next_for(request.user, dataset)
    view = annotate_view_build(user=request.user, dataset=dataset, record=nxt, questions=questions)
    view.paused = paused
    view.notice = f"{done_word} {record.external_id}." + (" " + " ".join(result.warnings) if result.warnings else "")
    view.done_record = record  # the browser's Back goes to it (history-record page)
    if status == Response.Status.DISCARDED:
        view.undo_url = reverse("record-undo-discard", args=[dataset.pk, record.pk])
    return _annotate_response(request, view, full=False)


@login_required
@require_POST
def record_undo_discard(request, dataset_id: int, record_id: int):
    """The Undo of the notice after a discard: the record comes back with the answers it was
    discarded with (a draft again), in the annotate panel."""
    dataset = _with_definition(dataset_for_user(request.user, dataset_id))
    _require_open(request.user, dataset)
    record = _dataset_record(dataset, record_id)
    questions = list(dataset.questions.all())
    response = response_discard_undo(user=request.user, record=record)
    paused = ""
    if response is None:
        shown, paused = _next_for(request.user, dataset)
        notice = f"Nothing to undo: {record.external_id} is not discarded any more."
    else:
        shown, notice = record, f"Discard undone: {record.external_id} is back."
    view = annotate_view_build(user=request.user, dataset=dataset, record=shown, questions=questions,
                               response=response)
    view.paused = paused
    view.notice = notice
    return _annotate_response(request, view, full=not request.htmx)


@login_required
@require_POST
def record_draft(request, dataset_id: int, record_id: int):
    """Auto-save / Ctrl+S: store the valid answers as a draft. Never turns a submitted or discarded
    response back into a draft (a late auto-save after Submit must not undo it)."""
    dataset = _with_definition(dataset_for_user(request.user, dataset_id))
    _require_open(request.user, dataset)
    record = _dataset_record(dataset, record_id)
    questions = list(dataset.questions.all())
    values = _posted_values(dataset, questions, request.POST, Response.Status.DRAFT)
    state, text = "saved", ""
    with transaction.atomic():
        Record.objects.select_for_update().filter(pk=record.pk).values_list("pk").first()
        existing = Response.objects.filter(record=record, user=request.user).first()
        if existing is not None and existing.status != Response.Status.DRAFT:
            state, text = "kept", f"Already {existing.status}; not saved as a draft"
        else:
            order = shown_order(request.POST, record, request.user, dataset, ranked_fields_of(questions))
            response_upsert(user=request.user, record=record, values=values, status=Response.Status.DRAFT,
                            display_order=order, duration=ui_forms.duration_from_post(request.POST),
                            add_duration=True)
            text = f"Draft saved · {timezone.localtime():%H:%M:%S}"
    return render(request, "annotation/partials/save_state.html", {"state": state, "text": text})


# --- annotator: history ------------------------------------------------------------------------

@login_required
@require_GET
def history(request, dataset_id: int):
    dataset = dataset_for_user(request.user, dataset_id)
    status = request.GET.get("status", "")
    qs = (Response.objects.filter(dataset=dataset, user=request.user).select_related("record")
          .order_by("-updated_at", "-id"))
    if status in Response.Status.values:
        qs = qs.filter(status=status)
    page = Paginator(qs, 25).get_page(request.GET.get("page"))
    rows = []
    for r in page.object_list:
        prompt = (r.record.fields or {}).get(dataset.prompt_field, "")
        if isinstance(prompt, list):  # chat: the last user message
            users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
            prompt = users[-1] if users else ""
        rows.append({"response": r, "record": r.record, "prompt": str(prompt)[:160]})
    return render(request, "annotation/history.html",
                  {"dataset": dataset, "page": page, "rows": rows, "status": status,
                   "statuses": Response.Status.choices})


@login_required
@require_GET
def history_record(request, dataset_id: int, record_id: int):
    dataset = dataset_for_user(request.user, dataset_id)
    record = _dataset_record(dataset, record_id)
    response = Response.objects.filter(record=record, user=request.user).first()
    if response is None:
        raise Http404("You have not answered this record.")
    view = annotate_view_build(user=request.user, dataset=dataset, record=record, mode="history",
                               response=response)
    return _annotate_response(request, view, full=True)


# --- admin: datasets ---------------------------------------------------------------------------

@login_required
@require_GET
def dataset_list(request):
    workspaces = list(admin_workspaces(request.user, refuse="Only workspace admins manage datasets."))
    datasets = list(Dataset.objects.filter(workspace__in=workspaces).select_related("workspace")
                    .order_by("workspace__name", "-created_at"))
    progress = datasets_progress([d.pk for d in datasets])
    rows = [{"dataset": d, **progress.get(d.pk, {})} for d in datasets]
    return render(request, "annotation/dataset_list.html", {"rows": rows, "workspaces": workspaces})


@login_required
@require_http_methods(["GET", "POST"])
def dataset_create_view(request):
    workspaces = admin_workspaces(request.user, refuse="Only workspace admins create datasets.")
    example_fields, example_questions = ui_forms.advanced_example()
    form = ui_forms.DatasetCreateForm(request.POST or None, workspaces=workspaces,
                                      initial={"workspace": workspaces.first(), "fields_json": example_fields,
                                               "questions_json": example_questions})
    if request.method == "POST" and form.is_valid():
        try:
            dataset = dataset_create(created_by=request.user, **form.service_kwargs())
        except ValidationError as exc:
            form_errors_from(form, exc, field_for=form.field_for_error)
        else:
            messages.success(request, f"Dataset “{dataset.name}” created. Import records, then publish it.")
            return redirect("dashboard", dataset.pk)
    return render(request, "annotation/dataset_create.html", {"form": form},
                  status=422 if request.method == "POST" else 200)


@login_required
@require_POST
def dataset_publish_view(request, dataset_id: int):
    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    try:
        dataset_publish(dataset=dataset)
        messages.success(request, f"“{dataset.name}” is published: annotators can start.")
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    return redirect("dashboard", dataset.pk)


@login_required
@require_http_methods(["GET", "POST"])
def dataset_settings_view(request, dataset_id: int):
    """Change a dataset's name, guidelines, overlap and display settings."""
    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    initial = {k: getattr(dataset, k) for k in ui_forms.DatasetSettingsForm.base_fields}
    initial["visible_metadata"] = ", ".join(dataset.visible_metadata or [])
    form = ui_forms.DatasetSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            dataset_update(dataset=dataset, **form.settings_changes())
        except ValidationError as exc:
            dataset.refresh_from_db()
            form_errors_from(form, exc)
        else:
            messages.success(request, f"Settings of “{dataset.name}” saved.")
            return redirect("dashboard", dataset.pk)
    return render(request, "annotation/dataset_settings.html", {"dataset": dataset, "form": form},
                  status=422 if request.method == "POST" else 200)


DATASET_STATUS_ACTIONS = {
    "unpublish": (dataset_unpublish, "“{name}” is unpublished: annotators no longer see it; answers are kept."),
    "archive": (dataset_archive, "“{name}” is archived: closed to annotators, kept with its answers and exports."),
}


@login_required
@require_POST
def dataset_status_view(request, dataset_id: int):
    """Unpublish or archive a dataset (the dashboard's buttons ask for confirmation first)."""
    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    action = DATASET_STATUS_ACTIONS.get(request.POST.get("action", ""))
    if action is None:
        return HttpResponseBadRequest("action: must be unpublish or archive")
    service, done = action
    service(dataset=dataset)
    messages.success(request, done.format(name=dataset.name))
    return redirect("dashboard", dataset.pk)


@login_required
@require_http_methods(["GET", "POST"])
def dataset_delete_view(request, dataset_id: int):
    """Delete a dataset after a confirmation page where the admin types its name."""
    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    error = ""
    if request.method == "POST":
        if request.POST.get("confirm_name", "").strip() != dataset.name:
            error = "Type the dataset's name exactly to confirm; nothing was deleted."
        else:
            name = dataset.name
            counts, job = dataset_delete_or_enqueue(dataset=dataset, user=request.user)
            if job is not None:
                messages.info(request, f"“{name}” is archived and being deleted by a background job.")
                return redirect("job-detail", job.pk)
            messages.success(request, f"“{name}” deleted with its {counts['records']:,} records and "
                                      f"{counts['responses']:,} answers.")
            return redirect("dataset-list")
    counts = _dashboard_counts(dataset)
    n_responses = Response.objects.filter(dataset=dataset).count()
    return render(request, "annotation/dataset_delete.html",
                  {"dataset": dataset, "counts": counts, "n_responses": n_responses,
                   "n_jobs": Job.objects.filter(dataset=dataset).count(), "error": error},
                  status=422 if error else 200)


def _dashboard_counts(dataset: Dataset) -> dict:
    """Records by state in one aggregate: completed, in progress (leased or partly answered), pending."""
    c = Record.objects.filter(dataset=dataset).aggregate(
        n_records=Count("id"),
        n_completed=Count("id", filter=Q(completed=True)),
        n_in_progress=Count("id", filter=Q(completed=False) & (Q(leased_count__gt=0) | Q(submitted_count__gt=0))),
        n_leased=Count("id", filter=Q(completed=False, leased_count__gt=0)),
    )
    out = {k[2:]: v for k, v in c.items()}
    out["pending"] = out["records"] - out["completed"] - out["in_progress"]
    out["partial"] = out["in_progress"] - out["leased"]
    return out


def _dashboard_context(dataset: Dataset) -> dict:
    counts = _dashboard_counts(dataset)
    quality = dataset_quality(dataset)
    record_ids = [d.record for d in quality.disagreements]
    ext = dict(Record.objects.filter(pk__in=record_ids).values_list("pk", "external_id"))
    titles = field_titles(dataset)
    disagreements = [{"d": d, "external_id": ext.get(d.record, d.record),
                      "top": [(titles.get(f, f), n) for f, n in d.top_choices.items()]}
                     for d in quality.disagreements]
    names = {a.user_id: a.username for a in quality.annotators}
    pairs = [{"a": names.get(p.a, p.a), "b": names.get(p.b, p.b), "records": p.records, "agreement": p.agreement}
             for p in quality.pairs]
    # live refresh: every few seconds for a campaign-sized dataset, once a minute for huge ones
    poll = 5 if counts["records"] <= 100_000 else 60
    return {"dataset": dataset, "counts": counts, "quality": quality, "pairs": pairs,
            "disagreements": disagreements, "refreshed": timezone.now(), "poll_seconds": poll,
            "agreement_hint": _agreement_hint(dataset, quality)}


def _agreement_hint(dataset: Dataset, quality) -> str:
    """Why the agreement figures are empty (an empty figure always says why), or ""."""
    if quality.overall_agreement is not None:
        return ""
    if not quality.question:
        return "No agreement: this dataset has no ranking question."
    if dataset.min_submitted == 1:
        return ("No agreement: the overlap is 1, so each record goes to one annotator. Set the overlap to 2 "
                "or more to measure agreement.")
    return (f"No agreement yet: it needs records ranked by two annotators (overlap {dataset.min_submitted}); "
            "none has been so far.")


@login_required
@require_GET
def dashboard(request, dataset_id: int):
    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    ctx = _dashboard_context(dataset)
    ctx["jobs"] = list(Job.objects.filter(dataset=dataset).order_by("-created_at")[:8])
    ctx["fields"] = list(dataset.fields.all())
    ctx["questions"] = list(dataset.questions.all())
    ctx["export_format_names"] = ["jsonl", "csv", "parquet"]
    ctx["export_styles"] = ["standard", "conversational"]
    ctx["export_form"] = ui_forms.ExportForm(dataset=dataset)
    return render(request, "annotation/dashboard.html", ctx)


@login_required
@require_GET
def dashboard_stats(request, dataset_id: int):
    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    return render(request, "annotation/dashboard.html#stats", _dashboard_context(dataset))


@login_required
@require_GET
def record_detail(request, dataset_id: int, record_id: int):
    """A record with every annotator's answer and the judges' suggestions (admins)."""
    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    record = _dataset_record(dataset, record_id)
    view = annotate_view_build(user=request.user, dataset=dataset, record=record, mode="review")
    questions = list(dataset.questions.all())
    titles = field_titles(dataset)
    answers = record_answers(record=record, questions=questions, titles=titles)
    suggestions = list(Suggestion.objects.filter(record=record).select_related("question").order_by("question__position", "agent"))
    for s in suggestions:
        s.rationale_html = markdown_render(s.rationale)
    return render(request, "annotation/record_detail.html",
                  {"dataset": dataset, "record": record, "v": view, "answers": answers, "questions": questions,
                   "suggestions": suggestions, "gold": record_gold_context(record=record, questions=questions, titles=titles),
                   "cleaned_notes": text_cleaned_notes(metadata=record.metadata, suggestions=suggestions)})


# --- admin: import / export / jobs -------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def dataset_import(request, dataset_id: int):
    from .imports import format_from_name, import_file_save
    from .jobs import job_create

    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    form = ui_forms.ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        fmt = form.cleaned_data.get("format") or format_from_name(upload.name)
        if not fmt:
            form.add_error("format", "cannot tell the format from the file name: choose one")
        else:
            try:
                params = {"format": fmt}
                if fmt == "pairs":
                    params.update(pair_format=form.cleaned_data.get("pair_format") or None,
                                  mapping=form.mapping(request.POST), strict=form.cleaned_data.get("strict", False))
                path = import_file_save(dataset=dataset, uploaded_file=upload)
                job = job_create(kind="import", workspace=dataset.workspace, dataset=dataset,
                                 created_by=request.user, name=f"import {upload.name}"[:200],
                                 input_file=path, params=params)
            except ValidationError as exc:
                form.add_error(None, "; ".join(exc.messages))
            else:
                return redirect("job-detail", job.pk)
    jobs = list(Job.objects.filter(dataset=dataset, kind="import").order_by("-created_at")[:10])
    fields = list(dataset.fields.all())
    return render(request, "annotation/import.html", {"dataset": dataset, "form": form, "jobs": jobs,
                                                       "fields": fields},
                  status=422 if request.method == "POST" else 200)


PREVIEW_ROWS = 5
PREVIEW_CHARS = 300


@login_required
@require_POST
def dataset_import_preview(request, dataset_id: int):
    """The mapping step of a pair import (htmx): the file's columns, its first rows, the format
    told from them (or why none), and one select per target column to map a file column to."""
    from .imports import MAP_TARGETS, format_from_name, pairs_preview

    dataset_for_user(request.user, dataset_id, role=ADMIN)
    form = ui_forms.ImportForm(request.POST, request.FILES)
    form.is_valid()
    upload = request.FILES.get("file")
    context: dict = {"targets": MAP_TARGETS, "columns": [], "rows": [], "error": None, "format": None, "chosen": {},
                     "dataset_id": dataset_id}
    if upload is None:
        context["error"] = "choose a file first"
        return render(request, "annotation/partials/import_preview.html", context)
    try:
        context["chosen"] = mapping = form.mapping(request.POST)
    except ValidationError as exc:
        context["error"], mapping = "; ".join(exc.messages), {}
    hint = format_from_name(upload.name)
    preview = pairs_preview(upload, filetype=hint if hint in ("csv", "parquet") else None,
                            fmt=form.cleaned_data.get("pair_format") or None, mapping=mapping, rows=PREVIEW_ROWS)
    context["error"] = context["error"] or preview["error"]
    context["format"] = preview["format"]
    context["columns"] = preview["columns"]
    context["rows"] = [[_preview_cell(r.get(c)) for c in preview["columns"]] for r in preview["rows"]]
    return render(request, "annotation/partials/import_preview.html", context)


def _preview_cell(value) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


@login_required
@require_POST
def dataset_export(request, dataset_id: int):
    from .jobs import job_create

    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    form = ui_forms.ExportForm(request.POST, dataset=dataset)
    if not form.is_valid():
        messages.error(request, "Export: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect("dashboard", dataset.pk)
    d = form.cleaned_data
    kind = d.get("export") or "triplets"
    if kind == "responses":
        params = {"export": kind, "format": d["format"], "include_gold": bool(d.get("include_gold")),
                  "include_excluded": bool(d.get("include_excluded"))}
        name = f"export responses {params['format']}"
    else:
        params = {"export": kind, "format": d["format"], "style": d.get("style") or "standard",
                  "pairs": d.get("pairs") or "best_worst", "resolve": d.get("resolve") or "majority",
                  "source": d.get("source") or "human", "include_ties": bool(d.get("include_ties")),
                  "margin_from": d.get("margin_from") or "votes", "include_both_bad": bool(d.get("include_both_bad")),
                  "include_gold": bool(d.get("include_gold")), "include_excluded": bool(d.get("include_excluded")),
                  "reviews": d.get("reviews") or "use"}
        if d.get("question"):
            params["question"] = d["question"]
        if d.get("trl_margin") and kind == "triplets":
            params["trl_margin"] = d["trl_margin"]
        name = f"export {kind} {params['format']} ({params['style']})"
    try:
        job = job_create(kind="export", workspace=dataset.workspace, dataset=dataset, created_by=request.user,
                         name=name, params=params)
    except ValidationError as exc:
        messages.error(request, "Export: " + "; ".join(exc.messages))
        return redirect("dashboard", dataset.pk)
    return redirect("job-detail", job.pk)


# --- the one job surface (every kind): page, progress partial, stop / resume / retry ------------

@login_required
@require_GET
def job_detail(request, job_id: int, kind: str | None = None):
    job = job_for_user(request.user, job_id, kind=kind)
    if kind is not None:  # an old per-app job URL: the page lives at /jobs/<id>/
        return redirect("job-detail", job.pk)
    return render(request, "annotation/job_detail.html", job_page_context(job))


@login_required
@require_GET
def job_progress(request, job_id: int, kind: str | None = None, detail: bool | None = None):
    """The live progress partial of any job, compact (lists) or `?detail=1` (the job page). Polled
    every second by templates/partials/job_progress.html; polling stops (286) once the job has ended."""
    job = job_for_user(request.user, job_id, kind=kind)
    detail = request.GET.get("detail") == "1" if detail is None else detail
    response = render(request, "partials/job_progress.html", job_progress_context(job, detail=detail))
    if not job.is_active:
        return HttpResponseStopPolling(response.content)
    return response


def _job_action(request, job_id: int, kind: str | None, action, done: str):
    job = job_for_user(request.user, job_id, kind=kind)
    try:
        action(job=job)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.info(request, done)
    return redirect("job-detail", job.pk)


@login_required
@require_POST
def job_cancel_view(request, job_id: int, kind: str | None = None):
    return _job_action(request, job_id, kind, job_cancel,
                       "The job was cancelled; what it wrote is kept. Resume it to finish.")


@login_required
@require_POST
def job_resume_view(request, job_id: int, kind: str | None = None):
    """Resume a stopped job; a finished one retries its failed items when its kind can."""
    return _job_action(request, job_id, kind, job_resume_or_retry, "The job was resumed.")


@login_required
@require_POST
def job_retry_view(request, job_id: int, kind: str | None = None):
    return _job_action(request, job_id, kind, job_retry_failed, "The failed items run again.")


@login_required
@require_GET
def job_download(request, job_id: int):
    job = job_for_user(request.user, job_id)
    path = job.output_file
    if not path or not os.path.isfile(path):
        raise Http404("This job has no output file (yet).")
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return FileResponse(open(path, "rb"), as_attachment=True, filename=job_download_name(job),
                        content_type=content_type)


# --- admin: workspaces and members -------------------------------------------------------------

@login_required
@require_GET
def workspace_list(request):
    workspaces = list(admin_workspaces(request.user, refuse="Only workspace admins manage members.")
                      .annotate(n_members=Count("memberships", distinct=True), n_datasets=Count("datasets", distinct=True)))
    if len(workspaces) == 1:
        return redirect("members", workspaces[0].pk)
    return render(request, "annotation/workspace_list.html", {"workspaces": workspaces})


@login_required
@require_http_methods(["GET", "POST"])
def members(request, workspace_id: int):
    workspace = workspace_for_user(request.user, workspace_id, role=ADMIN)
    form = ui_forms.MemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            member_password_check(actor=request.user, username=d["username"], password=d.get("password") or None)
            added = member_add(actor=request.user, workspace=workspace, username=d["username"], role=d["role"],
                               password=d.get("password") or None)
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, added.message)
            if not added.invited and d["username"] == request.user.get_username() and d["role"] != ADMIN:
                return redirect("home")  # no longer an admin here: the members page would be a 403
            return redirect("members", workspace.pk)
    rows = list(members_of(workspace))
    counts = dict(Response.objects.filter(dataset__workspace=workspace, status=Response.Status.SUBMITTED)
                  .values_list("user_id").annotate(n=Count("id")).values_list("user_id", "n"))
    for m in rows:
        m.submitted = counts.get(m.user_id, 0)
    return render(request, "annotation/members.html",
                  {"workspace": workspace, "members": rows, "form": form, "roles": Membership.Role.choices,
                   "invitations": invitations_of(workspace)},
                  status=422 if request.method == "POST" else 200)


@login_required
@require_POST
def member_remove_view(request, workspace_id: int, user_id: int):
    workspace = workspace_for_user(request.user, workspace_id, role=ADMIN)
    user = get_object_or_404(get_user_model(), pk=user_id, memberships__workspace=workspace)
    if user == request.user:
        messages.error(request, "You cannot remove yourself from the workspace.")
    else:
        try:
            member_remove(workspace=workspace, user=user)
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        else:
            messages.success(request, f"{user.username} removed from {workspace.name}.")
    return redirect("members", workspace.pk)


# --- everyone: one's own account -----------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def account(request):
    """See one's API token (for the REST API and the CLI) and rotate it."""
    if request.method == "POST":
        api_token_rotate(user=request.user)
        messages.success(request, "A new API token was made; the old one no longer works.")
        return redirect("account")
    token = api_token_get(user=request.user)
    return render(request, "annotation/account.html",
                  {"token": token, "invitations": invitations_for(request.user)})


@login_required
@require_POST
def invitation_answer_view(request, invitation_id: int, action: str):
    """Accept or decline an invitation to a workspace (the account page's buttons)."""
    if action not in ("accept", "decline"):
        raise Http404("No such action.")
    try:
        invitation = invitation_answer(user=request.user, invitation_id=invitation_id, accept=action == "accept")
    except ValidationError as exc:  # not one of this account's invitations: it does not exist for them
        raise Http404("; ".join(exc.messages)) from exc
    done = "You joined" if action == "accept" else "You declined the invitation to"
    messages.success(request, f"{done} {invitation.workspace.name}.")
    return redirect("account")
