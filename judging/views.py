"""Browser pages of the judging app (htmx), workspace admins only: judges, launching a judge job,
and the cleaning view of an imported preference set. A job's page, progress, stop and resume are the
one job surface of annotation; judging adds its panel through JudgeJobHandler. LLM text is rendered
escaped (Django autoescape; no |safe anywhere in templates/judging/)."""
from __future__ import annotations

import itertools

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import Http404, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.access import ADMIN, admin_workspaces, dataset_for_user
from annotation.errors import form_errors_from as _form_errors
from annotation.errors import validation_message
from annotation.exports import CONTENT_TYPES, jsonl_chunks
from annotation.models import Record
from annotation.selectors import field_titles

from . import selectors, services
from .apis import cleaned_export_url
from .forms import JudgeForm, JudgeJobForm
from .models import FlipDecision

REFUSED = "Only workspace admins manage judges."


@login_required
@require_http_methods(["GET", "POST"])
def judge_list(request):
    workspaces = admin_workspaces(request.user, refuse=REFUSED)
    form = JudgeForm(request.POST or None, workspaces=workspaces, initial={"workspace": workspaces.first()})
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        workspace = data.pop("workspace")
        try:
            judge = services.judge_create(workspace=workspace, **data)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"Judge “{judge.name}” created.")
            return redirect("judging-home")
    judges = selectors.judges_for_user(request.user)
    jobs = selectors.judge_jobs_for_user(request.user)[:20]
    return render(request, "judging/judge_list.html", {"form": form, "judges": judges, "jobs": jobs},
                  status=422 if request.method == "POST" else 200)


@login_required
@require_http_methods(["GET", "POST"])
def job_launch(request):
    workspaces = admin_workspaces(request.user, refuse=REFUSED)
    initial = {}
    if request.GET.get("dataset", "").isdigit():
        initial["dataset"] = int(request.GET["dataset"])
    form = JudgeJobForm(request.POST or None, workspaces=workspaces, initial=initial)
    if request.method == "POST" and form.is_valid():
        dataset, judge = form.cleaned_data["dataset"], form.cleaned_data["judge"]
        if dataset.workspace_id != judge.workspace_id:
            form.add_error("judge", "the judge and the dataset must be in the same workspace")
        else:
            try:
                job = services.judge_job_create(
                    workspace=dataset.workspace, dataset=dataset, judge=judge, created_by=request.user,
                    target_dataset=form.cleaned_data["target_dataset"] or None,
                    answer_field=form.cleaned_data["answer_field"] or None)
            except ValidationError as exc:
                _form_errors(form, exc)
            else:
                return redirect("job-detail", job.pk)
    return render(request, "judging/job_launch.html", {"form": form},
                  status=422 if request.method == "POST" else 200)


CLEANED_UNDECIDED = {"keep": "undecided flips keep the original", "drop": "leave out undecided flips"}


def _cleaning_context(dataset, titles: dict, flip) -> dict:
    return {"dataset": dataset, "f": flip, "titles": titles, "decisions": FlipDecision.Decision}


@login_required
@require_GET
def cleaning(request, dataset_id: int):
    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    agent = request.GET.get("agent") or None
    page = selectors.cleaning_page(dataset=dataset, agent=agent, limit=500)
    decided = dict(FlipDecision.objects.filter(record__dataset=dataset).values_list("decision")
                   .annotate(n=Count("id")).values_list("decision", "n"))
    return render(request, "judging/cleaning.html", {
        "dataset": dataset, "summary": page, "flips": page["results"], "agent": agent,
        "titles": field_titles(dataset), "decisions": FlipDecision.Decision, "decided": decided,
        "cleaned_exports": [(reverse("judging-cleaned-export", args=[dataset.pk]) + f"?undecided={k}", label)
                            for k, label in CLEANED_UNDECIDED.items()],
        "export_url": cleaned_export_url(dataset), "export_url_confident": cleaned_export_url(dataset, min_margin=2),
        "imported": dataset.records.filter(metadata__has_key="original_chosen").exists()})


@login_required
@require_POST
def flip_decide_view(request, dataset_id: int, record_id: int):
    """Accept, reject or take back the decision on one flip; htmx swaps the flip's row."""
    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    record = get_object_or_404(Record, pk=record_id, dataset=dataset)
    agent = request.POST.get("agent", "")
    try:
        services.flip_decide(record=record, decision=request.POST.get("decision", ""), user=request.user)
    except ValidationError as exc:
        if request.htmx:
            return HttpResponseBadRequest(validation_message(exc))
        messages.error(request, validation_message(exc))
    if not request.htmx:
        return redirect(reverse("judging-cleaning", args=[dataset.pk]) + f"#flip-{record.pk}")
    flip = selectors.cleaning_flip(dataset=dataset, record_id=record.pk, agent=agent)
    if flip is None:
        raise Http404("No flip of this record by this judge.")
    return render(request, "judging/cleaning.html#flip-row", _cleaning_context(dataset, field_titles(dataset), flip))


@login_required
@require_GET
def cleaned_export(request, dataset_id: int):
    """The imported pairs as JSONL with the admin's decisions applied (see selectors.cleaned_pairs)."""
    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    undecided = request.GET.get("undecided") or "keep"
    try:
        rows = selectors.cleaned_pairs(dataset=dataset, undecided=undecided)
        first = next(rows, None)
    except ValidationError as exc:
        return HttpResponseBadRequest(validation_message(exc))
    body = jsonl_chunks(itertools.chain([first] if first is not None else [], rows))
    response = StreamingHttpResponse(body, content_type=CONTENT_TYPES["jsonl"])
    safe_name = "".join(c if c.isalnum() or c in "-_" else "-" for c in dataset.name)[:80] or "dataset"
    response["Content-Disposition"] = f'attachment; filename="{safe_name}-{dataset.pk}-cleaned.jsonl"'
    return response
