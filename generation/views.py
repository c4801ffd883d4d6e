"""Browser pages of the generation app (htmx), workspace admins only: endpoints, launching a
generation job, and its live progress. Model output is rendered escaped (Django autoescape)."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from annotation.errors import form_errors_from as _form_errors
from annotation.jobs import job_cancel
from annotation.models import Workspace

from . import selectors, services
from .forms import EndpointForm, GenerationJobForm


def _admin_workspaces_or_403(user):
    qs = Workspace.objects.all() if user.is_staff else Workspace.objects.filter(
        memberships__user=user, memberships__role="admin").distinct()
    qs = qs.order_by("name")
    if not qs.exists():
        raise PermissionDenied("Only workspace admins run generation.")
    return qs


@login_required
@require_GET
def home(request):
    _admin_workspaces_or_403(request.user)
    endpoints = selectors.endpoints_for_user(request.user)
    jobs = [selectors.generation_job_status(j, errors=0) for j in selectors.generation_jobs_for_user(request.user)[:30]]
    return render(request, "generation/home.html", {"endpoints": endpoints, "jobs": jobs})


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_create(request):
    workspaces = _admin_workspaces_or_403(request.user)
    form = EndpointForm(request.POST or None, workspaces=workspaces, initial={"workspace": workspaces.first()})
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        workspace = data.pop("workspace")
        try:
            endpoint = services.endpoint_create(workspace=workspace, **data)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, f"Endpoint “{endpoint.name}” added.")
            return redirect("generation-home")
    return render(request, "generation/endpoint_form.html", {"form": form},
                  status=422 if request.method == "POST" and form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def job_launch(request):
    workspaces = _admin_workspaces_or_403(request.user)
    form = GenerationJobForm(request.POST or None, request.FILES or None, workspaces=workspaces,
                             initial={"workspace": workspaces.first()})
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            if d.get("prompts_file"):
                upload = d["prompts_file"]
                source = {"file": services.prompts_file_save(uploaded=upload, filename=upload.name),
                          "format": d.get("format") or None, "column": d.get("column") or "prompt",
                          "id_column": d.get("id_column") or None}
            else:
                source = {"dataset": d["prompts_dataset"]}
            job = services.generation_job_create(
                workspace=d["workspace"], dataset=d.get("dataset"), dataset_name=(d.get("dataset_name") or "").strip() or None,
                endpoints=list(d["endpoints"]), prompts_source=source,
                n=None if d["strategy"] == "each" else d.get("n"), strategy=d["strategy"], seed=d["seed"],
                temperatures=d.get("temperatures"), overrides=d.get("overrides") or {}, created_by=request.user)
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            return redirect("generation-job", job.pk)
    return render(request, "generation/job_launch.html", {"form": form},
                  status=422 if request.method == "POST" and form.errors else 200)


def _job_context(job) -> dict:
    return {"job": job, "status": selectors.generation_job_status(job, errors=15)}


@login_required
@require_GET
def job_detail(request, job_id: int):
    job = selectors.generation_job_for_user(request.user, job_id)
    return render(request, "generation/job_detail.html", _job_context(job))


@login_required
@require_GET
def job_progress(request, job_id: int):
    """The progress partial, polled every second; HTTP 286 stops the polling once the job ended."""
    job = selectors.generation_job_for_user(request.user, job_id)
    response = render(request, "generation/job_detail.html#progress", _job_context(job))
    if not job.is_active:
        return HttpResponseStopPolling(response.content)
    return response


@login_required
@require_POST
def job_cancel_view(request, job_id: int):
    job = selectors.generation_job_for_user(request.user, job_id)
    try:
        job_cancel(job=job)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    return redirect("generation-job", job.pk)


@login_required
@require_POST
def job_resume_view(request, job_id: int):
    job = selectors.generation_job_for_user(request.user, job_id)
    try:
        services.generation_job_resume(job=job)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    return redirect("generation-job", job.pk)
