"""The one job mechanism (DESIGN.md): imports, exports, generation and judging are all Jobs.

A kind registers a JobHandler (generation and judging do it in their AppConfig.ready, so
`annotation` imports neither). A job is planned into JobChunks; one Celery task runs one chunk
(`annotation.tasks.job_chunk_run`). Handlers must make `run_chunk` idempotent: the chunk may run
again after a worker was killed (acks_late), so everything it writes has a unique key.

Cancel marks the job cancelled; handlers call `ctx.check_cancelled()` between items and stop.
Resume re-enqueues the chunks that are not done; a kind with a `retry_failed` hook can also run the
failed items of a finished job again (job_retry_failed).

Reads of the one job surface (status words, the status the APIs show, the job page) are in
annotation/job_selectors.py.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, Sum
from django.utils import timezone

from .models import Job, JobChunk, JobError
from .tasks import job_chunk_run

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a chunk when its job was cancelled; the chunk stops, nothing is lost."""


class JobFailed(Exception):
    """Raised by a handler when retrying cannot help (unreadable file, missing API key...).

    The job fails at once with this message, without Celery retries; the chunk stays resumable.
    """


class _JobFinished(Exception):
    """A chunk reported progress after its job had finished (ChunkContext.progress)."""


# A job that has not finished: not ended as succeeded / partly failed / failed, or ended so with a chunk not
# done (a chunk gave up: the job failed but can be resumed). One UPDATE filter (ChunkContext.progress).
_NOT_FINISHED = (~Q(status__in=Job.FINISHED)
                 | Q(Exists(JobChunk.objects.filter(job_id=OuterRef("pk")).exclude(status=JobChunk.Status.DONE))))


def job_final_status(*, done: int, failed: int) -> str:
    """What a job that ran all its chunks ends as — the one rule: succeeded when no item failed, failed
    when every item failed, partly failed when some did."""
    if not failed:
        return Job.Status.SUCCEEDED
    return Job.Status.PARTLY_FAILED if done else Job.Status.FAILED


def job_has_finished(job: Job) -> bool:
    """True when the job ran all its chunks and ended (succeeded, partly failed or failed): nothing is left
    to resume, only failed items to retry. A job that failed because a chunk gave up has not finished."""
    return job.status in Job.FINISHED and not job.chunks.exclude(status=JobChunk.Status.DONE).exists()


class ChunkContext:
    """What a handler gets while running one chunk: counters, error records, cancellation."""

    def __init__(self, job: Job, chunk: JobChunk):
        self.job = job
        self.chunk = chunk

    def check_cancelled(self) -> None:
        status = Job.objects.filter(pk=self.job.pk).values_list("status", flat=True).first()
        if status == Job.Status.CANCELLED or status is None:
            raise JobCancelled()

    def progress(self, *, done: int = 0, failed: int = 0, tokens: int = 0) -> None:
        """Add to the counters of this chunk and its job (atomic F() updates).

        Nothing is added once the job has finished: its final counts came from the rows (finish), and
        a second copy of a chunk (a redelivered task) still running then would count them again."""
        if not (done or failed or tokens):
            return
        try:
            with transaction.atomic():
                JobChunk.objects.filter(pk=self.chunk.pk).update(done=F("done") + done, failed=F("failed") + failed)
                added = (Job.objects.filter(pk=self.job.pk).filter(_NOT_FINISHED)
                         .update(done=F("done") + done, failed=F("failed") + failed,
                                 tokens=F("tokens") + tokens, updated_at=timezone.now()))
                if not added:
                    raise _JobFinished()  # undo the chunk's part too: the two stay in step
        except _JobFinished:
            pass

    def counts_set(self, count: Callable[[], tuple[int, int]]) -> None:
        """Set this chunk's counters to `count()` -> (done, failed), what the handler finds in the rows
        it wrote, and move the job's by the difference.

        The chunk row is locked while counting, so a second copy of the chunk running at the same time
        cannot count the same rows in between; as long as that copy only counts the rows it inserted
        itself, the counters never exceed the rows. Handlers call it when a run starts (a re-run finds
        what an earlier run wrote) instead of adding what they find with `progress`."""
        with transaction.atomic():
            chunk = JobChunk.objects.select_for_update().get(pk=self.chunk.pk)
            done, failed = count()
            self.progress(done=done - chunk.done, failed=failed - chunk.failed)

    def error(self, *, item: str, error: str, raw: str = "") -> None:
        """Keep the final error of one item (replaced if the item fails again on a re-run)."""
        job_error_record(job=self.job, item=item, error=error, raw=raw)

    def clear_error(self, *, item: str) -> None:
        JobError.objects.filter(job=self.job, item=str(item)[:255]).delete()


class JobHandler(Protocol):
    """What a job kind implements: plan, run_chunk, finish. Optional hooks (looked up with
    job_handler_hook; a kind leaves out what it does not need):

    items_word: str              what the job's items are called ("responses", "records"); "items"
    done_word: str               what happened to a done item ("generated", "judged"); "done"
    failed_word: str             what happened to a failed one ("rejected" for import lines); "failed"
    item_label: str              the column head of an item in its error rows ("Line"); "Item"
    status_words: dict           how its pages say a status ({status: word}); see job_selectors
    detail_template: str         a template with the partials "head" and "panel": the kind's own
                                 part of the one job page (annotation.views.job_detail)
    detail_context(job) -> dict  what that template gets (as `panel`)
    download_name(job) -> str    the file name its output file is downloaded under (default: the
                                 stored file's own name)
    retry_failed(job) -> bool    make the failed items of a finished job run again: reset what they
                                 wrote and set the chunks holding them to pending (inside the
                                 caller's transaction); False when there is nothing to retry
    """

    kind: str

    def plan(self, job: Job, plan_input: Any = None) -> list[dict]:
        """Split the job into chunk specs (JSON); also sets job.total if known. `plan_input` is what
        the creating service already read and checked (job_create's argument, e.g. generation's
        prompts), so the plan need not read it again; None when the job alone says what to do."""

    def run_chunk(self, job: Job, chunk: JobChunk, ctx: ChunkContext) -> None:
        """Do the chunk's work, idempotently, reporting progress through ctx."""

    def finish(self, job: Job) -> None:
        """Called once when every chunk is done (e.g. to write a summary into job.result)."""


_HANDLERS: dict[str, JobHandler] = {}


def job_handler_register(handler: JobHandler) -> None:
    _HANDLERS[handler.kind] = handler


def job_handler_for(kind: str) -> JobHandler:
    try:
        return _HANDLERS[kind]
    except KeyError:
        raise ValidationError({"kind": f"unknown job kind {kind!r}; known: {', '.join(sorted(_HANDLERS))}"})


def job_kinds() -> list[str]:
    return sorted(_HANDLERS)


def job_handler_hook(kind: str, name: str, default: Any = None) -> Any:
    """An optional hook or attribute of a kind's handler (see JobHandler), or `default`."""
    handler = _HANDLERS.get(kind)
    return getattr(handler, name, default) if handler is not None else default


def job_error_record(*, job: Job, item: Any, error: str, raw: str = "") -> None:
    item = str(item)[:255]
    try:
        with transaction.atomic():
            JobError.objects.update_or_create(job=job, item=item, defaults={"error": error[:10_000], "raw": raw[:100_000]})
    except IntegrityError:  # a concurrent writer created it: update instead
        JobError.objects.filter(job=job, item=item).update(error=error[:10_000], raw=raw[:100_000])


# --- life cycle --------------------------------------------------------------------------------

def job_create(*, kind: str, workspace, dataset=None, created_by=None, name: str = "",
               params: dict | None = None, queue: str = "", input_file: str = "", start: bool = True,
               plan_input: Any = None) -> Job:
    """Create a job, plan its chunks (handing `plan_input` to the handler's plan) and (after
    commit) enqueue them."""
    handler = job_handler_for(kind)
    with transaction.atomic():
        job = Job.objects.create(kind=kind, workspace=workspace, dataset=dataset, created_by=created_by,
                                 name=name or kind, params=params or {}, input_file=input_file,
                                 queue=queue or settings.PREFLAB_CPU_QUEUE)
        specs = handler.plan(job, plan_input)
        JobChunk.objects.bulk_create(JobChunk(job=job, index=i, spec=s) for i, s in enumerate(specs))
        job.save()
    if start:
        transaction.on_commit(lambda: job_enqueue(job=job))
    return job


def job_enqueue(*, job: Job) -> int:
    """Send every chunk that is not done to the job's queue; returns how many were sent."""
    pending = list(job.chunks.exclude(status=JobChunk.Status.DONE).values_list("index", flat=True))
    if not pending:
        job_finish_if_complete(job_id=job.pk)
        return 0
    for index in pending:
        job_chunk_run.apply_async(args=[job.pk, index], queue=job.queue or settings.PREFLAB_CPU_QUEUE)
    return len(pending)


def job_cancel(*, job: Job) -> Job:
    if not job.is_active:
        raise ValidationError({"status": f"a {job.get_status_display().lower()} job cannot be cancelled"})
    Job.objects.filter(pk=job.pk).update(status=Job.Status.CANCELLED, finished_at=timezone.now())
    job.refresh_from_db()
    return job


def job_resume(*, job: Job) -> Job:
    """Run again the chunks of a cancelled or failed job that are not done."""
    if job.is_active:
        raise ValidationError({"status": "the job is already running"})
    if job_has_finished(job):
        raise ValidationError({"status": "the job has finished; nothing to resume"})
    with transaction.atomic():
        job.chunks.exclude(status=JobChunk.Status.DONE).update(status=JobChunk.Status.PENDING)
        Job.objects.filter(pk=job.pk).update(status=Job.Status.QUEUED, finished_at=None, error="")
    job.refresh_from_db()
    transaction.on_commit(lambda: job_enqueue(job=job))
    return job


def job_retry_failed(*, job: Job) -> Job:
    """Run the failed items of a finished job again, when its kind can (a `retry_failed` hook)."""
    retry = job_handler_hook(job.kind, "retry_failed")
    if retry is None:
        raise ValidationError({"status": f"{job.kind} jobs cannot retry their failed items"})
    if job.is_active:
        raise ValidationError({"status": "the job is still running"})
    if not job_has_finished(job):
        raise ValidationError({"status": f"a {job.get_status_display().lower()} job is resumed, not retried"})
    items = job_handler_hook(job.kind, "items_word", "items")
    with transaction.atomic():
        if not retry(job):
            raise ValidationError({"status": f"the job has finished with no failed {items}; nothing to resume"})
        Job.objects.filter(pk=job.pk).update(status=Job.Status.QUEUED, finished_at=None, error="")
    job.refresh_from_db()
    transaction.on_commit(lambda: job_enqueue(job=job))
    return job


def job_resume_or_retry(*, job: Job) -> Job:
    """Resume a cancelled or failed job; retry the failed items of a finished one (when its kind can)."""
    if job_handler_hook(job.kind, "retry_failed") is not None and job_has_finished(job):
        return job_retry_failed(job=job)
    return job_resume(job=job)


def job_chunk_execute(*, job_id: int, index: int) -> str:
    """Run one chunk (the body of the Celery task). Returns what happened, for logs and tests."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return "missing"
    if job.status == Job.Status.CANCELLED:
        return "cancelled"
    chunk = JobChunk.objects.filter(job=job, index=index).first()
    if chunk is None or chunk.status == JobChunk.Status.DONE:
        return "done-already"
    handler = job_handler_for(job.kind)
    # A re-run of a chunk (worker killed) starts its counters from zero again: the handler
    # re-counts what it finds already written (ChunkContext.counts_set), so the job's totals stay
    # exact. Under the chunk's lock, look again: another copy of this task (acks_late redelivers a
    # killed worker's task, and an operator may send it again) may have finished the chunk, and the
    # job, since the check above; running it again would only count its rows a second time.
    with transaction.atomic():
        chunk = JobChunk.objects.select_for_update().get(pk=chunk.pk)
        status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
        if chunk.status == JobChunk.Status.DONE or status in (Job.Status.SUCCEEDED, Job.Status.PARTLY_FAILED):
            return "done-already"
        if status == Job.Status.CANCELLED:
            return "cancelled"
        now = timezone.now()
        Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(status=Job.Status.RUNNING, started_at=now)
        Job.objects.filter(pk=job.pk, started_at__isnull=True).update(started_at=now)
        if chunk.done or chunk.failed:
            Job.objects.filter(pk=job.pk).update(done=F("done") - chunk.done, failed=F("failed") - chunk.failed)
        JobChunk.objects.filter(pk=chunk.pk).update(status=JobChunk.Status.RUNNING, done=0, failed=0,
                                                    attempts=F("attempts") + 1)
        chunk.refresh_from_db()
    job.refresh_from_db()
    ctx = ChunkContext(job, chunk)
    try:
        handler.run_chunk(job, chunk, ctx)
    except JobCancelled:
        JobChunk.objects.filter(pk=chunk.pk).update(status=JobChunk.Status.PENDING)
        return "cancelled"
    except JobFailed as exc:
        job_chunk_give_up(job_id=job.pk, index=index, error=str(exc))
        return "failed"
    except Exception as exc:
        log.exception("job %s chunk %s failed", job.pk, index)
        JobChunk.objects.filter(pk=chunk.pk).update(status=JobChunk.Status.FAILED)
        Job.objects.filter(pk=job.pk).update(error=f"chunk {index}: {type(exc).__name__}: {exc}"[:10_000])
        raise
    JobChunk.objects.filter(pk=chunk.pk).update(status=JobChunk.Status.DONE)
    job_finish_if_complete(job_id=job.pk)
    return "ok"


def job_run_inline(*, job: Job, on_chunk: Callable[[int, str], None] | None = None) -> Job:
    """Run every chunk that is not done in this process, one after the other (CLIs, `wait=true`
    API calls, benches). No Celery retry here: a chunk that raises fails the job with the reason
    (it stays resumable); a cancel stops the loop. `on_chunk(index, outcome)` follows progress."""
    for index in list(job.chunks.exclude(status=JobChunk.Status.DONE).values_list("index", flat=True)):
        job.refresh_from_db(fields=["status"])
        if job.status in (Job.Status.CANCELLED, Job.Status.FAILED):
            break
        try:
            outcome = job_chunk_execute(job_id=job.pk, index=index)
        except Exception as exc:  # noqa: BLE001 - recorded on the job, which fails and can be resumed
            job_chunk_give_up(job_id=job.pk, index=index, error=f"{type(exc).__name__}: {exc}")
            outcome = "failed"
        if on_chunk is not None:
            on_chunk(index, outcome)
        if outcome in ("cancelled", "failed"):
            break
    job.refresh_from_db()
    return job


def job_chunk_give_up(*, job_id: int, index: int, error: str) -> None:
    """Called when a chunk exhausted its retries: the job fails, the error is kept."""
    with transaction.atomic():
        JobChunk.objects.filter(job_id=job_id, index=index).update(status=JobChunk.Status.FAILED)
        Job.objects.filter(pk=job_id).exclude(status=Job.Status.CANCELLED).update(
            status=Job.Status.FAILED, error=f"chunk {index}: {error}"[:10_000], finished_at=timezone.now())


def job_finish_if_complete(*, job_id: int) -> bool:
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status not in Job.ACTIVE:
            return False
        if job.chunks.exclude(status=JobChunk.Status.DONE).exists():
            return False
        totals = job.chunks.aggregate(done=Sum("done"), failed=Sum("failed"))
        job.done, job.failed = totals["done"] or 0, totals["failed"] or 0
        handler = job_handler_for(job.kind)
        handler.finish(job)  # may recount done / failed from what the chunks wrote
        job.status = job_final_status(done=job.done, failed=job.failed)
        job.finished_at = timezone.now()
        job.save()
    return True


@dataclass
class JobSummary:
    id: int
    kind: str
    status: str
    total: int
    done: int
    failed: int
    progress: float
    tokens: int
    rate: float | None
    error: str


def job_summary(job: Job) -> JobSummary:
    rate = None
    if job.started_at:
        end = job.finished_at or timezone.now()
        seconds = (end - job.started_at).total_seconds()
        if seconds > 0:
            rate = round((job.done + job.failed) / seconds, 2)
    return JobSummary(id=job.pk, kind=job.kind, status=job.status, total=job.total, done=job.done,
                      failed=job.failed, progress=round(job.progress, 4), tokens=job.tokens, rate=rate,
                      error=job.error)
