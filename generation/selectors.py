"""Reads of the generation app: endpoints and generation jobs a user may see (by annotation.access's
rule), live job status. One generation job: annotation.access.job_for_user(user, pk, kind=JOB_KIND)."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from annotation.access import ADMIN, admin_workspaces, object_for_user, parse_pk
from annotation.job_selectors import job_status, requeued_chunks
from annotation.models import Job, JobError

from .models import Endpoint, GenerationOutput

JOB_KIND = "generation"


def endpoints_for_user(user, *, workspace_id: Any = None) -> QuerySet[Endpoint]:
    """Endpoints of the workspaces the user administers (staff: all)."""
    qs = Endpoint.objects.filter(workspace__in=admin_workspaces(user)).select_related("workspace")
    if workspace_id not in (None, ""):
        qs = qs.filter(workspace_id=parse_pk(workspace_id))
    return qs.order_by("workspace__name", "name")


def endpoint_for_user(user, pk: Any) -> Endpoint:
    """An endpoint of a workspace the user administers: else Http404 / PermissionDenied (annotation.access)."""
    return object_for_user(user, Endpoint.objects.select_related("workspace"), pk, role=ADMIN, what="endpoint")


def generation_jobs_for_user(user, *, workspace_id: Any = None) -> QuerySet[Job]:
    qs = (Job.objects.filter(kind=JOB_KIND, workspace__in=admin_workspaces(user)).select_related("dataset", "workspace")
          .prefetch_related(requeued_chunks()))
    if workspace_id not in (None, ""):
        qs = qs.filter(workspace_id=parse_pk(workspace_id))
    return qs.order_by("-created_at", "-id")


def generation_job_status(job: Job, *, errors: int = 10) -> dict:
    """What the API and the live UI show: the status every job has (annotation.job_selectors), the
    job's pool and strategy, responses per second, and its last errors (newest first)."""
    status = job_status(job)
    rate = status.pop("rate")
    p = job.params or {}
    return {
        **status, "endpoints": p.get("endpoints", []), "strategy": p.get("strategy"), "n": p.get("n"),
        "seed": p.get("seed"), "prompts": p.get("prompt_count"), "responses_per_second": rate,
        "last_errors": list(JobError.objects.filter(job=job).order_by("-id")
                            .values("item", "error", "created_at")[:errors]),
    }


def generation_job_panel(job: Job) -> dict:
    """What the generation panel of the one job page shows (GenerationJobHandler.detail_context)."""
    return {"status": generation_job_status(job, errors=15)}


def generation_outputs_of(job: Job) -> QuerySet[GenerationOutput]:
    return GenerationOutput.objects.filter(job=job).order_by("prompt_key", "slot")
