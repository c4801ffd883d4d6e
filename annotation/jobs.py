"""The one job mechanism (DESIGN.md): imports, exports, generation and judging are all Jobs.

A kind registers a JobHandler (generation and judging do it in their AppConfig.ready, so
`annotation` imports neither). A job is planned into JobChunks; one Celery task runs one chunk
(`annotation.tasks.job_chunk_run`). Handlers must make `run_chunk` idempotent: the chunk may run
again after a worker was killed (acks_late), so everything it writes has a unique key.

Liveness, one rule for every kind: a running chunk carries a heartbeat (JobChunk.heartbeat_at, set
when it starts and refreshed every PREFLAB_JOB_HEARTBEAT_SECONDS by a thread beside the handler, so a
long LLM call keeps it alive). Every worker sweeps every PREFLAB_JOB_SWEEP_SECONDS
(job_chunks_requeue_stalled): a running chunk whose heartbeat is older than PREFLAB_JOB_STALL_SECONDS
lost its worker and is re-queued, at most PREFLAB_JOB_MAX_REQUEUES times; after that its job fails
with the reason (resumable). The note of each re-queue is shown on the job page and in the job APIs.

A job whose chunks could not be sent (the broker is down) is stored failed with that reason, and
resume sends them once the broker is back (job_enqueue raises JobNotQueued: the APIs answer 503).

Cancel marks the job cancelled; handlers call `ctx.check_cancelled()` between items and stop.
Resume re-enqueues the chunks that are not done; a kind with a `retry_failed` hook can also run the
failed items of a finished job again (job_retry_failed).

Reads of the one job surface (status words, the status the APIs show, the job page) are in
annotation/job_selectors.py.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, close_old_connections, connection, connections, transaction
from django.db.models import Exists, F, OuterRef, Q, Sum
from django.utils import timezone

from .job_share import PROCESS_SHARE_ENV
from .models import Job, JobChunk, JobError

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a chunk when its job was cancelled; the chunk stops, nothing is lost."""


class JobFailed(Exception):
    """Raised by a handler when retrying cannot help (unreadable file, missing API key...).

    The job fails at once with this message, without Celery retries; the chunk stays resumable.
    """


class JobNotQueued(Exception):
    """The job was stored, but its chunks could not be sent to the task broker (job_enqueue): the job
    is failed with the reason, and resume sends them once the broker is back. APIs answer 503."""

    def __init__(self, job: Job, message: str):
        super().__init__(message)
        self.job, self.message = job, message


def broker_errors() -> tuple[type[BaseException], ...]:
    """What sending a task raises when the broker cannot be reached (kombu wraps the transport's errors
    in its OperationalError; a refused or reset socket may surface as OSError). Imported here, not at
    start-up: kombu comes with Celery, which only processes that send tasks load (annotation.tasks)."""
    from kombu.exceptions import OperationalError

    return (OperationalError, OSError)


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
                JobChunk.objects.filter(pk=self.chunk.pk).update(done=F("done") + done, failed=F("failed") + failed,
                                                                 heartbeat_at=timezone.now())
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
_HANDLER_PATHS: dict[str, str] = {}  # kind -> dotted path of its handler class, imported on first use


def job_handler_register(handler: JobHandler) -> None:
    _HANDLERS[handler.kind] = handler


def job_handler_register_lazy(*, kind: str, path: str) -> None:
    """Register a kind by the dotted path of its handler class, imported the first time a job of that
    kind is planned, run or shown: a process that runs one kind of job (`manage.py judge`) does not load
    the code of every other kind at start-up. A module that registers its handlers itself when imported
    may be named by one of them."""
    if kind not in _HANDLERS:
        _HANDLER_PATHS[kind] = path


def _handler(kind: str) -> JobHandler | None:
    handler = _HANDLERS.get(kind)
    if handler is None and kind in _HANDLER_PATHS:
        from django.utils.module_loading import import_string

        cls = import_string(_HANDLER_PATHS[kind])
        handler = _HANDLERS.get(kind)  # the module registered its handlers when imported
        if handler is None:
            handler = _HANDLERS[kind] = cls()
        _HANDLER_PATHS.pop(kind, None)
    return handler


def job_handler_for(kind: str) -> JobHandler:
    handler = _handler(kind)
    if handler is None:
        raise ValidationError({"kind": f"unknown job kind {kind!r}; known: {', '.join(job_kinds())}"})
    return handler


def job_kinds() -> list[str]:
    return sorted({*_HANDLERS, *_HANDLER_PATHS})


def job_handler_hook(kind: str, name: str, default: Any = None) -> Any:
    """An optional hook or attribute of a kind's handler (see JobHandler), or `default`."""
    handler = _handler(kind)
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


def _chunk_send(job: Job, index: int) -> None:
    """Send one chunk's task to the job's queue: the one place a chunk is sent (job_enqueue, the sweep)."""
    from .tasks import job_chunk_run

    job_chunk_run.apply_async(args=[job.pk, index], queue=job.queue or settings.PREFLAB_CPU_QUEUE)


def job_enqueue(*, job: Job) -> int:
    """Send every chunk that is not done to the job's queue; returns how many were sent.

    When the broker cannot be reached, the job is left failed with the reason (a job resume accepts:
    resume sends the chunks again) and JobNotQueued is raised for the caller to say so (API: 503)."""
    pending = list(job.chunks.exclude(status=JobChunk.Status.DONE).values_list("index", flat=True))
    if not pending:
        job_finish_if_complete(job_id=job.pk)
        return 0
    try:
        for index in pending:
            _chunk_send(job, index)
    except broker_errors() as exc:
        log.warning("job %s: could not reach the task broker: %s", job.pk, exc)
        message = (f"{job.kind} job {job.pk} was not queued: the task broker could not be reached "
                   f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}). Nothing ran; resume the job "
                   "once the broker is back.")
        Job.objects.filter(pk=job.pk, status__in=Job.ACTIVE).update(status=Job.Status.FAILED, error=message,
                                                                    finished_at=timezone.now())
        job.refresh_from_db()
        raise JobNotQueued(job, message) from exc
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
                                                    attempts=F("attempts") + 1, heartbeat_at=now)
        chunk.refresh_from_db()
    job.refresh_from_db()
    ctx = ChunkContext(job, chunk)
    try:
        with ChunkHeartbeat(chunk.pk):
            handler.run_chunk(job, chunk, ctx)
    except JobCancelled:
        JobChunk.objects.filter(pk=chunk.pk).update(status=JobChunk.Status.PENDING)
        return "cancelled"
    except JobFailed as exc:
        job_chunk_give_up(job_id=job.pk, index=index, error=str(exc))
        return "failed"
    except Exception as exc:
        log.exception("job %s chunk %s failed", job.pk, index)
        # waiting for its Celery retry: the stall sweep counts its silence from now (job_chunks_requeue_stalled)
        JobChunk.objects.filter(pk=chunk.pk).update(status=JobChunk.Status.FAILED, heartbeat_at=timezone.now())
        Job.objects.filter(pk=job.pk).update(error=f"chunk {index}: {type(exc).__name__}: {exc}"[:10_000])
        raise
    JobChunk.objects.filter(pk=chunk.pk).update(status=JobChunk.Status.DONE)
    job_finish_if_complete(job_id=job.pk)
    return "ok"


def job_run_inline(*, job: Job, on_chunk: Callable[[int, str], None] | None = None, overlap: int | None = None,
                   processes: int = 1) -> Job:
    """Run every chunk that is not done in this process (CLIs, `wait=true` API calls, benches). No
    Celery retry here: a chunk that raises fails the job with the reason (it stays resumable); a
    cancel stops it. `on_chunk(index, outcome)` follows progress (called in this thread).

    `overlap` chunks run at once, each in its own thread with its own database connection (default:
    2 on PostgreSQL outside a transaction, else 1, one after the other), so the next chunk plans and
    fills the endpoint's slots while the last requests of the previous one finish: the LLM client's
    per-endpoint limit is shared by the threads of a process, so no more than max_concurrency
    requests are ever in flight; it serves the earlier chunk first, so one chunk finishes while the next
    fills the slots it frees and the one after is planned, and the pipe never drains between chunks. A
    handler may make its first chunk small so that its calls go out at once. Chunks of one job may run
    at once anyway (Celery workers), so handlers already allow it.

    `processes` > 1 (PostgreSQL outside a transaction; otherwise ignored): the chunks are shared out
    among that many processes forked from this one, each running `overlap` of them at once, so a job
    whose own work (parsing, writing, the HTTP client) needs more than one core gets more than one
    (job_run_processes)."""
    indexes = list(job.chunks.exclude(status=JobChunk.Status.DONE).values_list("index", flat=True))
    concurrent = connection.vendor == "postgresql" and not connection.in_atomic_block
    if overlap is None:
        overlap = 2 if concurrent else 1
    if concurrent and processes > 1 and len(indexes) > 1:
        job_run_processes(job=job, indexes=indexes, on_chunk=on_chunk, overlap=overlap, processes=processes)
    elif overlap <= 1 or len(indexes) <= 1:
        for index in indexes:
            job.refresh_from_db(fields=["status"])
            if job.status in (Job.Status.CANCELLED, Job.Status.FAILED):
                break
            outcome = _inline_chunk_run(job_id=job.pk, index=index)
            if on_chunk is not None:
                on_chunk(index, outcome)
            if outcome in ("cancelled", "failed"):
                break
    else:
        _inline_chunks_overlap(job=job, indexes=indexes, on_chunk=on_chunk, overlap=overlap)
    job.refresh_from_db()
    return job


def _inline_chunk_run(*, job_id: int, index: int) -> str:
    try:
        return job_chunk_execute(job_id=job_id, index=index)
    except Exception as exc:  # noqa: BLE001 - recorded on the job, which fails and can be resumed
        job_chunk_give_up(job_id=job_id, index=index, error=f"{type(exc).__name__}: {exc}")
        return "failed"


def _inline_chunks_overlap(*, job: Job, indexes: list[int], on_chunk: Callable[[int, str], None] | None,
                           overlap: int) -> None:
    """job_run_inline with `overlap` chunk threads: a new chunk starts when one ends, until a chunk is
    cancelled or fails (the running ones finish, as a Celery worker's would)."""
    import queue

    ended: queue.Queue = queue.Queue()

    def run(index: int) -> None:
        outcome = "failed"
        try:
            outcome = _inline_chunk_run(job_id=job.pk, index=index)
        finally:
            connections.close_all()  # this thread's own connection
            ended.put((index, outcome))

    todo = iter(indexes)
    running = 0
    stopping = False

    def start_next() -> bool:
        job.refresh_from_db(fields=["status"])
        if job.status in (Job.Status.CANCELLED, Job.Status.FAILED):
            return False
        index = next(todo, None)
        if index is None:
            return False
        threading.Thread(target=run, args=(index,), name=f"job-{job.pk}-chunk-{index}", daemon=True).start()
        return True

    while running < overlap and start_next():
        running += 1
    while running:
        index, outcome = ended.get()
        running -= 1
        if on_chunk is not None:
            on_chunk(index, outcome)
        if outcome in ("cancelled", "failed"):
            stopping = True
        if not stopping and start_next():
            running += 1


# --- inline runs over several processes ------------------------------------------------------------

def job_run_processes(*, job: Job, indexes: list[int], on_chunk: Callable[[int, str], None] | None,
                      overlap: int, processes: int) -> None:
    """job_run_inline over `processes` processes forked from this one (PostgreSQL, outside a transaction).

    This process hands out the chunk indexes, `overlap` at a time to each process, as they finish, and
    stops handing out when a chunk is cancelled or fails or the job is cancelled or failed (the running
    ones finish, as a Celery worker's would). Each chunk runs through job_chunk_execute, so the claim
    rules are the Celery tasks': the chunk's row lock, its heartbeat, its counters re-counted from what
    it wrote. Each process gets its share of every per-process limit (job_share.process_share), so an endpoint
    never has more than its max_concurrency calls in flight from the whole run. A process that dies
    (killed, out of memory) leaves its running chunks given up with the reason: the job fails and can be
    resumed, and the resume re-counts what those chunks wrote (nothing lost, nothing counted twice)."""
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("fork")
    connections.close_all()  # a forked process must not share this one's database connections
    workers: list[_ChunkProcess] = []
    try:
        for i in range(min(processes, len(indexes))):
            ours, theirs = context.Pipe()
            process = context.Process(target=_chunk_process_main, args=(job.pk, theirs, f"{i}/{processes}"),
                                      name=f"job-{job.pk}-process-{i}", daemon=True)
            process.start()
            theirs.close()
            workers.append(_ChunkProcess(process=process, conn=ours))
        todo = deque(indexes)
        stopping = False

        def feed(worker: _ChunkProcess, most: int = overlap) -> None:
            nonlocal stopping
            while not stopping and todo and len(worker.running) < most:
                job.refresh_from_db(fields=["status"])
                if job.status in (Job.Status.CANCELLED, Job.Status.FAILED):
                    stopping = True
                    return
                index = todo.popleft()
                try:
                    worker.conn.send(index)
                except OSError:  # the process died while idle: the chunk goes to another one
                    todo.appendleft(index)
                    return
                worker.running.add(index)

        def ended(index: int, outcome: str) -> None:
            nonlocal stopping
            if on_chunk is not None:
                on_chunk(index, outcome)
            if outcome in ("cancelled", "failed"):
                stopping = True

        for most in range(1, overlap + 1):  # one chunk each first, then the next: the processes start even
            for worker in workers:
                feed(worker, most)
        while any(w.running for w in workers):
            busy = [w for w in workers if w.running]
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                if worker.conn in ready or worker.process.sentinel in ready:
                    for index, outcome in worker.receive():
                        ended(index, outcome)
                    if not worker.process.is_alive() and worker.running:
                        why = f"the process running it exited (code {worker.process.exitcode}) before it ended"
                        for index in sorted(worker.running):
                            job_chunk_give_up(job_id=job.pk, index=index, error=why)
                            ended(index, "failed")
                        worker.running.clear()
                    feed(worker)
        if todo and not stopping:  # every process died with chunks left: the job fails, resumable
            job_chunk_give_up(job_id=job.pk, index=todo[0], error="no process was left to run it")
            ended(todo[0], "failed")
    finally:
        for worker in workers:
            worker.stop()


@dataclass
class _ChunkProcess:
    """A forked process of job_run_processes, as its parent sees it."""
    process: Any
    conn: Any
    running: set = field(default_factory=set)

    def receive(self) -> list[tuple[int, str]]:
        """Every (index, outcome) the process sent so far."""
        out = []
        try:
            while self.conn.poll():
                index, outcome = self.conn.recv()
                self.running.discard(index)
                out.append((index, outcome))
        except (EOFError, OSError):  # it exited; what it had sent was read
            pass
        return out

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _chunk_process_main(job_id: int, conn, share: str) -> None:
    """A process of job_run_processes: run each chunk index it is sent in a thread of its own (its
    parent sends at most `overlap` at a time), send back (index, outcome), stop at None."""
    os.environ[PROCESS_SHARE_ENV] = share
    lock = threading.Lock()
    threads = []

    def run(index: int) -> None:
        outcome = "failed"
        try:
            outcome = _inline_chunk_run(job_id=job_id, index=index)
        finally:
            connections.close_all()  # this thread's own connection
            with lock:
                conn.send((index, outcome))

    while True:
        try:
            index = conn.recv()
        except EOFError:  # the parent is gone
            break
        if index is None:
            break
        thread = threading.Thread(target=run, args=(index,), name=f"job-{job_id}-chunk-{index}", daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()


def job_chunk_give_up(*, job_id: int, index: int, error: str) -> None:
    """Called when a chunk exhausted its retries: the job fails, the error is kept."""
    with transaction.atomic():
        JobChunk.objects.filter(job_id=job_id, index=index).update(status=JobChunk.Status.FAILED)
        Job.objects.filter(pk=job_id).exclude(status=Job.Status.CANCELLED).update(
            status=Job.Status.FAILED, error=f"chunk {index}: {error}"[:10_000], finished_at=timezone.now())


# --- liveness: heartbeat, stall sweep ------------------------------------------------------------

class ChunkHeartbeat:
    """While a chunk runs, a thread beside it refreshes the chunk's heartbeat every
    PREFLAB_JOB_HEARTBEAT_SECONDS (one UPDATE of one row), whatever the handler is doing; it dies with
    the worker, which is how the sweep learns that the worker was lost. A chunk the sweep already
    re-queued (no longer running) is not revived."""

    def __init__(self, chunk_id: int, every: float | None = None):
        self.chunk_id = chunk_id
        self.every = float(settings.PREFLAB_JOB_HEARTBEAT_SECONDS if every is None else every)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ChunkHeartbeat:
        if self.every > 0:
            self._thread = threading.Thread(target=self._beat, name=f"job-chunk-heartbeat-{self.chunk_id}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    JobChunk.objects.filter(pk=self.chunk_id, status=JobChunk.Status.RUNNING).update(
                        heartbeat_at=timezone.now())
                except Exception as exc:  # noqa: BLE001 - a missed beat is retried at the next one
                    log.warning("heartbeat of job chunk %s not written: %s", self.chunk_id, exc)
        finally:
            connections.close_all()  # this thread's own connections


def _stall_note(*, index: int, at: datetime, silent: float, requeues: int, give_up: bool, retrying: bool) -> str:
    when = timezone.localtime(at).strftime("%H:%M:%S %Z")
    why = f"no heartbeat for {silent:.0f} s{' while waiting to retry' if retrying else ''} (worker lost)"
    if give_up:
        return (f"chunk {index} given up at {when}: {why} after {requeues} re-queue{'s' if requeues != 1 else ''}; "
                "resume the job to run it again")
    return f"chunk {index} re-queued at {when}: {why}"


def _silent_since(before: datetime) -> Q:
    return Q(heartbeat_at__lt=before) | Q(heartbeat_at__isnull=True, updated_at__lt=before)


def job_chunks_requeue_stalled(*, now: datetime | None = None) -> list[str]:
    """The liveness rule, one sweep: every running chunk of an active job whose heartbeat is older than
    PREFLAB_JOB_STALL_SECONDS lost its worker (so did a failed one of an active job — a chunk waiting for
    its Celery retry — silent for that long plus the task's longest retry backoff). It is set pending and
    sent again (its note says when and why), unless it was re-queued PREFLAB_JOB_MAX_REQUEUES times
    already: then it is failed and its job fails with that reason (job_chunk_give_up; resumable).
    Returns the notes of what it did.

    Safe to run in every worker at once: each chunk is claimed with one conditional UPDATE (same status,
    still stale), so only one sweep re-queues it; a second copy of the chunk that still runs somewhere
    counts nothing twice (job_chunk_execute's lock, ChunkContext.counts_set)."""
    from .tasks import job_chunk_run

    now = now or timezone.now()
    cutoff = now - timedelta(seconds=float(settings.PREFLAB_JOB_STALL_SECONDS))
    retry_cutoff = cutoff - timedelta(seconds=float(getattr(job_chunk_run, "retry_backoff_max", 0) or 0))
    most = int(settings.PREFLAB_JOB_MAX_REQUEUES)
    stale_q = (Q(_silent_since(cutoff), status=JobChunk.Status.RUNNING)
               | Q(_silent_since(retry_cutoff), status=JobChunk.Status.FAILED))
    notes = []
    stale = (JobChunk.objects.filter(stale_q, job__status__in=Job.ACTIVE)
             .select_related("job").order_by("pk")[:1000])
    for chunk in stale:
        silent = (now - (chunk.heartbeat_at or chunk.updated_at)).total_seconds()
        give_up = chunk.requeues >= most
        note = _stall_note(index=chunk.index, at=now, silent=silent, requeues=chunk.requeues, give_up=give_up,
                           retrying=chunk.status == JobChunk.Status.FAILED)
        claim = JobChunk.objects.filter(stale_q, pk=chunk.pk, status=chunk.status)
        with transaction.atomic():
            if give_up:
                if not claim.update(status=JobChunk.Status.FAILED, requeued_at=now, requeue_note=note):
                    continue
                job_chunk_give_up(job_id=chunk.job_id, index=chunk.index, error=note.split(": ", 1)[1])
            else:
                if not claim.update(status=JobChunk.Status.PENDING, requeues=F("requeues") + 1, requeued_at=now,
                                    requeue_note=note):
                    continue
                _chunk_send(chunk.job, chunk.index)  # a broker error rolls the claim back: the next sweep retries
        log.warning("job %s: %s", chunk.job_id, note)
        notes.append(note)
    return notes


class _Sweeper:
    """The sweep of one worker process: a daemon thread calling job_chunks_requeue_stalled every
    PREFLAB_JOB_SWEEP_SECONDS (started on Celery's worker_ready, stopped on worker_shutdown:
    annotation.tasks), so every deployment that runs a worker sweeps, beat or not."""

    _lock = threading.Lock()
    _thread: threading.Thread | None = None
    _stop = threading.Event()

    @classmethod
    def start(cls, every: float | None = None) -> bool:
        every = float(settings.PREFLAB_JOB_SWEEP_SECONDS if every is None else every)
        with cls._lock:
            if every <= 0 or (cls._thread is not None and cls._thread.is_alive()):
                return False
            cls._stop = threading.Event()
            cls._thread = threading.Thread(target=cls._loop, args=(every, cls._stop), name="job-stall-sweep", daemon=True)
            cls._thread.start()
        return True

    @classmethod
    def stop(cls) -> None:
        with cls._lock:
            cls._stop.set()
            thread, cls._thread = cls._thread, None
        if thread is not None:
            thread.join(timeout=10)

    @staticmethod
    def _loop(every: float, stop: threading.Event) -> None:
        try:
            while not stop.wait(every):
                close_old_connections()
                try:
                    job_chunks_requeue_stalled()
                except Exception:  # the database or broker is away: the next sweep retries
                    log.exception("the stall sweep of jobs failed")
        finally:
            connections.close_all()


job_sweeper_start = _Sweeper.start
job_sweeper_stop = _Sweeper.stop


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
