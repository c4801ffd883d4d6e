"""Job liveness (annotation.jobs): a running chunk carries a heartbeat; the sweep re-queues a chunk whose
heartbeat is stale, at most PREFLAB_JOB_MAX_REQUEUES times, then its job fails with the reason; the job page
and the job APIs say when and why. And a job created while the task broker is down is stored failed with
that reason (API 503, page message) and resume sends it once the broker is back.

The real-worker test (SIGKILL mid-chunk, default broker settings) is in tests/generation/test_celery_worker.py.
"""
import os
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.job_selectors import job_status
from annotation.jobs import ChunkHeartbeat, job_chunks_requeue_stalled, job_create, job_resume, job_run_inline
from annotation.models import Dataset, Job, JobChunk
from tests.factories import JobFactory, RecordFactory


@pytest.fixture
def sent(monkeypatch):
    """The chunks the sweep sends to the broker (job, index)."""
    out = []
    monkeypatch.setattr("annotation.jobs._chunk_send", lambda job, index: out.append((job.pk, index)))
    return out


@pytest.fixture
def stall(settings):
    settings.PREFLAB_JOB_STALL_SECONDS = 60
    settings.PREFLAB_JOB_MAX_REQUEUES = 2
    return settings


def _running_chunk(job: Job, index: int, *, silent_for: float, requeues: int = 0) -> JobChunk:
    return JobChunk.objects.create(job=job, index=index, status=JobChunk.Status.RUNNING, requeues=requeues,
                                   heartbeat_at=timezone.now() - timedelta(seconds=silent_for))


@pytest.mark.django_db
def test_a_stale_chunk_is_requeued_once_and_a_fresh_one_is_left_alone(stall, sent):
    job = JobFactory(status=Job.Status.RUNNING)
    stale = _running_chunk(job, 3, silent_for=94)
    fresh = _running_chunk(job, 4, silent_for=5)
    notes = job_chunks_requeue_stalled()
    assert len(notes) == 1 and notes[0].startswith("chunk 3 re-queued at ")
    assert notes[0].endswith("no heartbeat for 94 s (worker lost)")
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == JobChunk.Status.PENDING and stale.requeues == 1 and stale.requeue_note == notes[0]
    assert fresh.status == JobChunk.Status.RUNNING and fresh.requeues == 0 and fresh.requeue_note == ""
    assert sent == [(job.pk, 3)]
    # a second sweep finds nothing to do: the chunk waits in the queue, not running
    assert job_chunks_requeue_stalled() == [] and sent == [(job.pk, 3)]
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING and job.error == ""


@pytest.mark.django_db
def test_a_chunk_requeued_too_often_fails_its_job_with_the_reason_and_stays_resumable(stall, sent):
    job = JobFactory(status=Job.Status.RUNNING)
    _running_chunk(job, 0, silent_for=120, requeues=2)
    notes = job_chunks_requeue_stalled()
    assert sent == []
    assert len(notes) == 1 and "chunk 0 given up at" in notes[0] and "after 2 re-queues" in notes[0]
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error.startswith("chunk 0: no heartbeat for 120 s (worker lost) after 2 re-queues")
    assert JobChunk.objects.get(job=job).status == JobChunk.Status.FAILED
    job_resume(job=job)
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and JobChunk.objects.get(job=job).status == JobChunk.Status.PENDING


@pytest.mark.django_db
def test_a_chunk_waiting_for_its_retry_is_requeued_only_after_the_longest_backoff_too(stall, sent):
    from annotation.tasks import job_chunk_run

    backoff = job_chunk_run.retry_backoff_max
    job = JobFactory(status=Job.Status.RUNNING)
    waiting = JobChunk.objects.create(job=job, index=0, status=JobChunk.Status.FAILED,
                                      heartbeat_at=timezone.now() - timedelta(seconds=60 + backoff - 10))
    lost = JobChunk.objects.create(job=job, index=1, status=JobChunk.Status.FAILED,
                                   heartbeat_at=timezone.now() - timedelta(seconds=60 + backoff + 10))
    [note] = job_chunks_requeue_stalled()
    assert note.startswith("chunk 1 re-queued at ") and note.endswith("while waiting to retry (worker lost)")
    waiting.refresh_from_db()
    lost.refresh_from_db()
    assert waiting.status == JobChunk.Status.FAILED and waiting.requeues == 0
    assert lost.status == JobChunk.Status.PENDING and lost.requeues == 1 and sent == [(job.pk, 1)]


@pytest.mark.django_db
def test_the_sweep_leaves_chunks_of_stopped_jobs_alone(stall, sent):
    for status in (Job.Status.CANCELLED, Job.Status.FAILED):
        _running_chunk(JobFactory(status=status), 0, silent_for=500)
    assert job_chunks_requeue_stalled() == [] and sent == []


@pytest.mark.django_db
def test_the_job_page_and_the_status_api_say_when_and_why_a_chunk_was_requeued(stall, sent, admin_user, dataset,
                                                                               admin_client_api):
    job = JobFactory(kind="export", workspace=dataset.workspace, dataset=dataset, status=Job.Status.RUNNING)
    _running_chunk(job, 1, silent_for=95)
    [note] = job_chunks_requeue_stalled()
    [requeue] = job_status(job)["requeues"]
    assert requeue["chunk"] == 1 and requeue["requeues"] == 1 and requeue["note"] == note and requeue["at"]
    c = Client()
    c.force_login(admin_user)
    page = c.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert note in page and "no heartbeat for 95 s (worker lost)" in page
    progress = c.get(reverse("job-progress", args=[job.pk]) + "?detail=1").content.decode()
    assert note in progress


@pytest.mark.django_db
def test_a_chunk_run_starts_its_heartbeat(dataset, monkeypatch):
    monkeypatch.setattr("annotation.jobs.job_enqueue", lambda *, job: 0)
    RecordFactory(dataset=dataset)
    job = job_create(kind="export", workspace=dataset.workspace, dataset=dataset, params={"format": "jsonl"},
                     start=False)
    before = timezone.now()
    job = job_run_inline(job=job)
    assert job.status == Job.Status.SUCCEEDED
    assert all(c.heartbeat_at is not None and c.heartbeat_at >= before for c in job.chunks.all())


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_refreshes_a_running_chunk_until_it_stops():
    job = JobFactory(status=Job.Status.RUNNING)
    old = timezone.now() - timedelta(hours=1)
    chunk = JobChunk.objects.create(job=job, index=0, status=JobChunk.Status.RUNNING, heartbeat_at=old)
    with ChunkHeartbeat(chunk.pk, every=0.05):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            chunk.refresh_from_db()
            if chunk.heartbeat_at > old:
                break
            time.sleep(0.05)
    assert chunk.heartbeat_at > old
    # once stopped, nothing writes it any more; a chunk no longer running is never revived
    JobChunk.objects.filter(pk=chunk.pk).update(status=JobChunk.Status.PENDING, heartbeat_at=old)
    with ChunkHeartbeat(chunk.pk, every=0.01) as beat:
        time.sleep(0.2)
    assert not beat._thread.is_alive()
    chunk.refresh_from_db()
    assert chunk.heartbeat_at == old
    assert not [t for t in threading.enumerate() if t.name.startswith("job-chunk-heartbeat")]


def _sweepers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "job-stall-sweep" and t.is_alive()]


def test_every_worker_starts_the_sweep_when_ready_and_stops_it_at_shutdown(settings):
    """The signals every `celery -A preflab worker` sends (docker-compose, quickstart): no beat needed."""
    from celery.signals import worker_ready, worker_shutdown

    settings.PREFLAB_JOB_SWEEP_SECONDS = 3600
    assert not _sweepers()
    worker_ready.send(sender=None)
    try:
        assert len(_sweepers()) == 1
        worker_ready.send(sender=None)  # one sweep per process
        assert len(_sweepers()) == 1
    finally:
        worker_shutdown.send(sender=None)
    assert not _sweepers()
    settings.PREFLAB_JOB_SWEEP_SECONDS = 0
    worker_ready.send(sender=None)
    assert not _sweepers()


# --- the broker is down when a job is created ---------------------------------------------------------

@pytest.fixture
def broker_down():
    """The Celery app pointed at a closed port on this machine, then restored."""
    from preflab.celery import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    saved = app.conf.broker_url, app.conf.broker_transport_options

    saved_env = os.environ.get("CELERY_BROKER_URL")

    def point(url, options, env=None):
        from kombu import pools

        app.conf.broker_url, app.conf.broker_transport_options = url, options
        # Celery reads the broker URL from the environment first (CI sets CELERY_BROKER_URL)
        if env is not None:
            os.environ["CELERY_BROKER_URL"] = env
        elif saved_env is not None:
            os.environ["CELERY_BROKER_URL"] = url
        # kombu keeps one connection pool per broker URL for the whole process: clear the registry (closing
        # what it holds) so that the next send builds a pool for the URL now set, and no later test is handed
        # a pool closed here ("Acquire on closed pool")
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    point(f"redis://127.0.0.1:{port}/0", {})
    yield lambda: point(*saved, env=saved_env)
    point(*saved, env=saved_env)


@pytest.mark.django_db(transaction=True)  # the job is enqueued when the request's transaction commits
def test_a_job_created_while_the_broker_is_down_answers_503_and_resume_sends_it_later(
        broker_down, admin_client_api, workspace, llm_endpoint, monkeypatch):
    a, b = llm_endpoint(), llm_endpoint()
    body = {"workspace": workspace.pk, "dataset_name": "broker-down", "endpoints": [a.name, b.name], "n": 2,
            "strategy": "sample", "seed": 1, "prompts": ["Why is the sky blue?", "Name a prime."]}
    r = admin_client_api.post("/api/v1/generation-jobs/", body, format="json")
    assert r.status_code == 503, r.content
    detail = r.json()["detail"]
    assert "was not queued: the task broker could not be reached" in detail and "resume the job" in detail
    job = Job.objects.get(pk=r.json()["job"])
    assert r.json()["status"] == "failed" and job.status == Job.Status.FAILED and job.error == detail
    assert Dataset.objects.filter(name="broker-down").count() == 1
    # the status API says it too, and resume while the broker is still down says the same, changing nothing
    status = admin_client_api.get(f"/api/v1/generation-jobs/{job.pk}/").json()
    assert status["status"] == "failed" and "was not queued" in status["error"]
    r = admin_client_api.post(f"/api/v1/generation-jobs/{job.pk}/resume/")
    assert r.status_code == 503 and "was not queued" in r.json()["detail"]
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    # the broker is back: resume sends the job's chunks
    broker_down()
    sent = []
    monkeypatch.setattr("annotation.jobs._chunk_send", lambda job, index: sent.append(index))
    r = admin_client_api.post(f"/api/v1/generation-jobs/{job.pk}/resume/")
    assert r.status_code == 200, r.content
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and job.error == ""
    assert sent == list(job.chunks.values_list("index", flat=True)) and sent
    job = job_run_inline(job=job)
    assert job.status == Job.Status.SUCCEEDED and job.done == 4


@pytest.mark.django_db(transaction=True)
def test_a_page_that_starts_a_job_while_the_broker_is_down_says_so_and_opens_the_job(broker_down, admin_user, dataset):
    RecordFactory(dataset=dataset)
    c = Client()
    c.force_login(admin_user)
    r = c.post(reverse("dataset-export", args=[dataset.pk]), {"format": "jsonl", "style": "standard"})
    job = Job.objects.get(dataset=dataset, kind="export")
    assert r.status_code == 302 and r["Location"] == reverse("job-detail", args=[job.pk])
    assert job.status == Job.Status.FAILED and "the task broker could not be reached" in job.error
    page = c.get(r["Location"]).content.decode()
    assert "was not queued: the task broker could not be reached" in page
    assert reverse("job-resume", args=[job.pk]) in page and ">Resume<" in page
    r = c.post(reverse("job-resume", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and r["HX-Redirect"] == reverse("job-detail", args=[job.pk])
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED


def test_job_lists_read_the_requeue_notes_in_one_query(admin_user, dataset, django_assert_max_num_queries):
    """The job list APIs say every job's re-queues without one query per job."""
    from django.utils import timezone

    from tests.conftest import client_for
    from tests.factories import JobFactory

    for _ in range(5):
        job = JobFactory(kind="judge", workspace=dataset.workspace, dataset=dataset, params={})
        JobChunk.objects.create(job=job, index=0, status=JobChunk.Status.PENDING, requeues=1,
                                requeued_at=timezone.now(), requeue_note="chunk 0 re-queued: no heartbeat for 95 s")
    client = client_for(admin_user)
    with django_assert_max_num_queries(3):  # token, jobs, their re-queued chunks
        rows = client.get(f"/api/v1/judge-jobs/?dataset={dataset.pk}").json()
    assert len(rows) == 5 and all(r["requeues"][0]["note"].startswith("chunk 0 re-queued") for r in rows)
