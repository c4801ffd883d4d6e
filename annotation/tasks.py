"""Celery tasks of the job mechanism: thin, take primary keys, call one service.

The services are imported inside the task body (HackSoft's styleguide): annotation.jobs enqueues
this task, so this module must not import annotation.jobs at load time. It is itself imported only where a task is
sent or run (annotation.jobs imports it lazily), so Celery is not loaded by processes that never send
one; it loads the project's Celery app first (settings.PREFLAB_CELERY_APP), so the task binds to that
app and its broker settings, not to Celery's unconfigured default app.
"""
from importlib import import_module

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

import_module(settings.PREFLAB_CELERY_APP)


@worker_ready.connect
def job_sweeper_on_worker_ready(**kwargs) -> None:
    """Every worker re-queues stalled chunks (annotation.jobs liveness rule): no beat needed."""
    from .jobs import job_sweeper_start

    job_sweeper_start()


@worker_shutdown.connect
def job_sweeper_on_worker_shutdown(**kwargs) -> None:
    from .jobs import job_sweeper_stop

    job_sweeper_stop()


@shared_task(
    bind=True,
    name="annotation.job_chunk_run",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(Exception,),
    dont_autoretry_for=(SoftTimeLimitExceeded,),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=5,
)
def job_chunk_run(self, job_id: int, index: int) -> str:
    from .jobs import job_chunk_execute, job_chunk_give_up

    try:
        return job_chunk_execute(job_id=job_id, index=index)
    except Exception as exc:
        if self.request.retries >= self.max_retries or isinstance(exc, SoftTimeLimitExceeded):
            job_chunk_give_up(job_id=job_id, index=index, error=f"{type(exc).__name__}: {exc}")
            return "failed"
        raise
