"""Real Celery workers for the service tests (PostgreSQL + Redis): a worker is a subprocess
(`celery -A preflab worker`) on a queue of its own, pointed at the test database by DATABASE_URL.
The fixtures `worker_queue` and `workers` (tests/conftest.py) hand them to a test."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from annotation.models import Job, JobChunk

ROOT = Path(__file__).resolve().parents[1]


def _database_url() -> str:
    s = connection.settings_dict
    auth = quote(s.get("USER") or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{auth}@{host}:{port}/{s['NAME']}"  # the TEST database this test runs in


class Workers:
    def __init__(self, redis_url: str, queue: str):
        self.redis_url, self.queue = redis_url, queue
        self.procs: list[subprocess.Popen] = []

    def start(self, *, visibility_timeout: int = 3600, env: dict[str, str] | None = None) -> subprocess.Popen:
        """A worker on the test's queue; `env` adds to its environment (e.g. the job liveness settings)."""
        env = {**os.environ, "DATABASE_URL": _database_url(), "CELERY_BROKER_URL": self.redis_url,
               "REDIS_URL": self.redis_url, "PREFLAB_CPU_QUEUE": self.queue,
               "CELERY_VISIBILITY_TIMEOUT": str(visibility_timeout), "PREFLAB_LLM_BACKOFF": "0.01",
               "PREFLAB_LLM_BACKOFF_MAX": "0.2", "CONN_MAX_AGE": "0", "DJANGO_SETTINGS_MODULE": "tests.generation.worker_settings",
               **(env or {})}
        env.pop("CELERY_TASK_ALWAYS_EAGER", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "preflab", "worker", "-Q", self.queue, "-c", "2",
             "--pool", "threads", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"gen-{uuid.uuid4().hex[:6]}@%h", "-l", "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)

    def stderr_tail(self) -> str:
        out = []
        for proc in self.procs:
            if proc.poll() is not None and proc.stderr:
                out.append(proc.stderr.read().decode(errors="replace")[-3000:])
        return "\n".join(out)


def enqueue_chunks(job: Job, redis_url: str, queue: str, *, unfinished_only: bool = False) -> None:
    """Send the job's chunks (or only those not done) to `queue`, as job_enqueue does."""
    from annotation.tasks import job_chunk_run
    from preflab.celery import app

    chunks = job.chunks.exclude(status=JobChunk.Status.DONE) if unfinished_only else job.chunks
    with app.connection_for_write(url=redis_url) as conn:
        for index in chunks.values_list("index", flat=True):
            job_chunk_run.apply_async(args=[job.pk, index], queue=queue, connection=conn)


def wait_for(job: Job, until, timeout: float, workers: Workers) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if until(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"timed out: job {job.status} done={job.done}/{job.total} failed={job.failed} "
                         f"error={job.error!r}\nworker stderr:\n{workers.stderr_tail()}")
