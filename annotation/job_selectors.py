"""Reads of the one job surface (DESIGN.md "Jobs"): the word a status is shown with, the status
every job API returns, and what the one job page and its progress partial show.

A kind adds its own part through the optional hooks of its JobHandler (annotation.jobs): the words
for its statuses and items, a page panel (`detail_template` + `detail_context`), a retry of its
failed items. Access checks stay with annotation.access.job_for_user.
"""
from __future__ import annotations

import os
from typing import Any

from .jobs import job_handler_hook, job_has_finished, job_summary
from .models import Job, JobChunk, JobError

# How pages say each status ("partly failed"). A handler's `status_words` may say it in the kind's own
# terms; job_status_word is the one place pages, CLIs and the API read the words from.
STATUS_WORDS: dict[str, str] = {value: label.lower() for value, label in Job.Status.choices}
STATUS_TONES: dict[str, str] = {Job.Status.SUCCEEDED: "ok", Job.Status.PARTLY_FAILED: "warn",
                                Job.Status.FAILED: "danger",
                                Job.Status.CANCELLED: "danger"}  # the others (running, queued): "accent"

ERRORS_SHOWN = 200  # error rows on the job page of a kind without its own panel


def job_status_word(job: Job) -> str:
    words = job_handler_hook(job.kind, "status_words") or {}
    return words.get(job.status) or STATUS_WORDS.get(job.status, job.status)


def job_status_tone(job: Job) -> str:
    """The badge (and progress bar) colour of a status: ok, warn, danger or accent."""
    return STATUS_TONES.get(job.status, "accent")


def job_words(job: Job) -> dict[str, str]:
    """How the job's kind calls its items and what happened to them (JobHandler hooks):
    {"items": "records", "done": "judged", "failed": "failed", "item": "Record"}."""
    return {"items": job_handler_hook(job.kind, "items_word", "items"),
            "done": job_handler_hook(job.kind, "done_word", "done"),
            "failed": job_handler_hook(job.kind, "failed_word", "failed"),
            "item": job_handler_hook(job.kind, "item_label", "Item")}


def job_counts_text(job: Job) -> str:
    """The counters in the kind's words: "0 records judged, 10 failed (of 10)"."""
    w = job_words(job)
    items = w["items"][:-1] if job.done == 1 and w["items"].endswith("s") else w["items"]  # "1 record judged"
    text = f"{job.done:,} {items} {w['done']}, {job.failed:,} {w['failed']}"
    return f"{text} (of {job.total:,})" if job.total else text


def job_outcome_line(job: Job) -> str:
    """One line saying how a job stands or ended, for CLIs and the API:
    "judge job 12 failed: 0 records judged, 10 failed (of 10)" (+ the job's error when it stopped on one)."""
    line = f"{job.kind} job {job.pk} {job_status_word(job)}: {job_counts_text(job)}"
    if job.error and job.status in (Job.Status.FAILED, Job.Status.PARTLY_FAILED, Job.Status.CANCELLED):
        line += f" — {' '.join(job.error.split())[:300]}"
    return line


def requeued_chunks():
    """The prefetch a list of jobs takes so that job_requeues reads no row per job:
    `jobs.prefetch_related(requeued_chunks())` (one query for the whole list)."""
    from django.db.models import Prefetch

    return Prefetch("chunks", queryset=JobChunk.objects.exclude(requeue_note="").order_by("requeued_at", "index"),
                    to_attr="requeued")


def job_requeues(job: Job) -> list[dict]:
    """When and why the stall sweep re-queued (or gave up) chunks of the job (annotation.jobs liveness):
    [{"chunk": 3, "at": datetime, "requeues": 1, "note": "chunk 3 re-queued at 05:12:03 UTC: no heartbeat
    for 94 s (worker lost)"}], oldest first. Reads the job's `requeued` prefetch when a list took it."""
    chunks = getattr(job, "requeued", None)
    if chunks is None:
        chunks = JobChunk.objects.filter(job=job).exclude(requeue_note="").order_by("requeued_at", "index")
    return [{"chunk": c.index, "at": c.requeued_at, "requeues": c.requeues, "note": c.requeue_note} for c in chunks]


def job_status(job: Job) -> dict:
    """What every job API returns about any job; a kind's API adds its own fields (its params, its
    throughput under its own name, its last errors): generation.selectors, judging.selectors."""
    s = job_summary(job)
    return {
        "id": job.pk, "name": job.name, "status": s.status, "workspace": job.workspace_id,
        "dataset": job.dataset_id, "dataset_name": job.dataset.name if job.dataset_id else None,
        "total": s.total, "done": s.done, "failed": s.failed, "progress": s.progress, "tokens": s.tokens,
        "rate": s.rate, "error": s.error, "result": job.result, "summary": job_outcome_line(job),
        "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
        "requeues": job_requeues(job),
    }


def job_download_name(job: Job) -> str:
    """The file name a job's output file is downloaded under: its kind's `download_name`, else the file's own."""
    name_of = job_handler_hook(job.kind, "download_name")
    return name_of(job) if name_of is not None else os.path.basename(job.output_file)


def job_actions(job: Job) -> dict:
    """Which of stop / resume / retry the job page offers now."""
    finished = not job.is_active and job.status != Job.Status.CANCELLED and job_has_finished(job)
    can_retry = finished and job.failed > 0 and job_handler_hook(job.kind, "retry_failed") is not None
    resume = job.status == Job.Status.CANCELLED or (job.status == Job.Status.FAILED and not finished)
    actions = {"cancel": job.is_active, "resume": resume, "retry": can_retry}
    return {**actions, "any": any(actions.values()), "items_word": job_words(job)["items"]}


def job_progress_context(job: Job, *, detail: bool) -> dict:
    """The context of the one progress partial (templates/partials/job_progress.html).

    detail=False: the compact form listed on dashboards and the import page (counters and bar; the
    error rows once the job has ended). detail=True: the job page's form, with the stop / resume /
    retry buttons and the kind's panel (or the error rows when the kind has no panel)."""
    template = job_handler_hook(job.kind, "detail_template")
    ctx: dict[str, Any] = {"job": job, "detail": detail}
    if detail:
        ctx["actions"] = job_actions(job)
        ctx["requeues"] = job_requeues(job)
    if detail and template:
        ctx["panel_template"] = f"{template}#panel"
        ctx["counters_template"] = f"{template}#counters"
        ctx["panel"] = job_handler_hook(job.kind, "detail_context")(job)
    elif not template and (detail or not job.is_active):
        ctx["errors"] = list(JobError.objects.filter(job=job).order_by("id")[:ERRORS_SHOWN])
        ctx["show_errors"] = True
    return ctx


def job_page_context(job: Job) -> dict:
    """The context of the one job page (templates/annotation/job_detail.html)."""
    ctx = job_progress_context(job, detail=True)
    template = job_handler_hook(job.kind, "detail_template")
    if template:
        ctx["head_template"] = f"{template}#head"
    return ctx
