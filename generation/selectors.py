"""Reads of the generation app: endpoints and generation jobs a user may see, live job status."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from annotation.job_selectors import job_status
from annotation.models import Job, JobError
from annotation.selectors import membership_role, workspaces_for_user

from .models import Endpoint, GenerationOutput

JOB_KIND = "generation"


def _admin_check(user, workspace_id: int | None, what: str) -> None:
    from django.core.exceptions import PermissionDenied

    role = membership_role(user, workspace_id) if workspace_id is not None else None
    if role is None:
        raise Http404(f"No such {what}.")
    if role != "admin":
        raise PermissionDenied("Only an admin of this workspace may do this.")


def _pk(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def endpoints_for_user(user, *, workspace_id: Any = None) -> QuerySet[Endpoint]:
    """Endpoints of the workspaces the user administers (staff: all)."""
    workspaces = workspaces_for_user(user)
    if not user.is_staff:
        workspaces = workspaces.filter(memberships__user=user, memberships__role="admin")
    qs = Endpoint.objects.filter(workspace__in=workspaces).select_related("workspace")
    if workspace_id not in (None, ""):
        qs = qs.filter(workspace_id=_pk(workspace_id))
    return qs.order_by("workspace__name", "name")


def endpoint_for_user(user, pk: Any) -> Endpoint:
    endpoint = Endpoint.objects.select_related("workspace").filter(pk=_pk(pk)).first()
    _admin_check(user, endpoint.workspace_id if endpoint else None, "endpoint")
    return endpoint


def generation_jobs_for_user(user, *, workspace_id: Any = None) -> QuerySet[Job]:
    workspaces = workspaces_for_user(user)
    if not user.is_staff:
        workspaces = workspaces.filter(memberships__user=user, memberships__role="admin")
    qs = Job.objects.filter(kind=JOB_KIND, workspace__in=workspaces).select_related("dataset", "workspace")
    if workspace_id not in (None, ""):
        qs = qs.filter(workspace_id=_pk(workspace_id))
    return qs.order_by("-created_at", "-id")


def generation_job_for_user(user, pk: Any) -> Job:
    job = Job.objects.select_related("dataset", "workspace").filter(pk=_pk(pk), kind=JOB_KIND).first()
    _admin_check(user, job.workspace_id if job else None, "generation job")
    return job


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
