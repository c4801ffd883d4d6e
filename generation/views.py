"""Browser pages of the generation app (htmx), workspace admins only: endpoints, launching a
generation job. A job's page, progress, stop and resume are the one job surface of annotation
(annotation.views.job_detail ...); generation adds its panel through GenerationJobHandler."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotation.access import admin_workspaces
from annotation.errors import form_errors_from as _form_errors

from . import selectors, services
from .forms import EndpointForm, GenerationJobForm

REFUSED = "Only workspace admins run generation."


@login_required
@require_GET
def home(request):
    admin_workspaces(request.user, refuse=REFUSED)
    endpoints = selectors.endpoints_for_user(request.user)
    jobs = [{"job": j, "status": selectors.generation_job_status(j, errors=0)}
            for j in selectors.generation_jobs_for_user(request.user)[:30]]
    return render(request, "generation/home.html", {"endpoints": endpoints, "jobs": jobs})


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_create(request):
    workspaces = admin_workspaces(request.user, refuse=REFUSED)
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
    workspaces = admin_workspaces(request.user, refuse=REFUSED)
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
            return redirect("job-detail", job.pk)
    return render(request, "generation/job_launch.html", {"form": form},
                  status=422 if request.method == "POST" and form.errors else 200)
