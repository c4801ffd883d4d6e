"""Browser pages of the judging app (htmx), workspace admins only: judges, launching a judge job,
and the cleaning view of an imported preference set. A job's page, progress, stop and resume are the
one job surface of annotation; judging adds its panel through JudgeJobHandler. LLM text is rendered
escaped (Django autoescape; no |safe anywhere in templates/judging/)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotation.access import ADMIN, admin_workspaces, dataset_for_user
from annotation.errors import form_errors_from as _form_errors

from . import selectors, services
from .apis import cleaned_export_url
from .forms import JudgeForm, JudgeJobForm

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


@login_required
@require_GET
def cleaning(request, dataset_id: int):
    dataset = dataset_for_user(request.user, dataset_id, role=ADMIN)
    agent = request.GET.get("agent") or None
    page = selectors.cleaning_page(dataset=dataset, agent=agent, limit=500)
    return render(request, "judging/cleaning.html", {
        "dataset": dataset, "summary": page, "flips": page["results"], "agent": agent,
        "export_url": cleaned_export_url(dataset), "export_url_confident": cleaned_export_url(dataset, min_margin=2),
        "imported": dataset.records.filter(metadata__has_key="original_chosen").exists()})
