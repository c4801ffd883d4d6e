"""Reads of the generation app: endpoints and generation jobs a user may see (by annotation.access's
rule), live job status. One generation job: annotation.access.job_for_user(user, pk, kind=JOB_KIND)."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from annotation.access import ADMIN, admin_workspaces, object_for_user, parse_pk
from annotation.jobs import job_summary
from annotation.models import Job, JobError

from .models import Endpoint, GenerationOutput
from .services import JOB_KIND


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
    qs = Job.objects.filter(kind=JOB_KIND, workspace__in=admin_workspaces(user)).select_related("dataset", "workspace")
    if workspace_id not in (None, ""):
        qs = qs.filter(workspace_id=parse_pk(workspace_id))
    return qs.order_by("-created_at", "-id")


def generation_job_status(job: Job, *, errors: int = 10) -> dict:
    """What the API and the live UI show: counters, throughput, tokens, failures, last errors."""
    s = job_summary(job)
    p = job.params or {}
    return {
        "id": job.pk, "name": job.name, "status": s.status, "workspace": job.workspace_id,
        "dataset": job.dataset_id, "dataset_name": job.dataset.name if job.dataset_id else None,
        "endpoints": p.get("endpoints", []), "strategy": p.get("strategy"), "n": p.get("n"),
        "seed": p.get("seed"), "prompts": p.get("prompt_count"),
        "total": s.total, "done": s.done, "failed": s.failed, "progress": s.progress, "tokens": s.tokens,
        "responses_per_second": s.rate, "error": s.error, "result": job.result,
        "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
        "last_errors": list(JobError.objects.filter(job=job).order_by("-id")
                            .values("item", "error", "created_at")[:errors]),
    }


def generation_outputs_of(job: Job) -> QuerySet[GenerationOutput]:
    return GenerationOutput.objects.filter(job=job).order_by("prompt_key", "slot")
