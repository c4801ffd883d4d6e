"""A REAL Celery worker over Redis runs generation jobs (PostgreSQL + Redis; required in CI).

The worker is a subprocess (`celery -A preflab worker`) on a queue of its own, pointed at the test
database by DATABASE_URL. The second test kills it with SIGKILL mid-job, starts another, and checks
exact counts: n responses per prompt, no duplicates, nothing lost (acks_late + reject_on_worker_lost;
a short Redis visibility timeout so the unacknowledged chunk is redelivered within seconds), and
that nothing stored before the kill is requested again.
"""
import signal

import pytest

from annotation.job_selectors import job_status
from annotation.models import Job, JobChunk, Record
from generation.models import GenerationOutput
from generation.services import generation_job_create
from tests.workers import enqueue_chunks, wait_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

def _prompts(tmp_path, count: int) -> str:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(f'{{"prompt": "worker question {i}"}}\n' for i in range(count)))
    return str(path)


def test_a_real_worker_runs_a_job_end_to_end(require_postgres, redis_url, worker_queue, workers, workspace,
                                             llm_endpoint, llm_server, tmp_path):
    llm_server.latency = 0.05
    pool = [llm_endpoint(queue=worker_queue), llm_endpoint(queue=worker_queue)]
    job = generation_job_create(workspace=workspace, dataset_name="celery-e2e", endpoints=pool, n=2, seed=5,
                                chunk_size=10, prompts_source={"file": _prompts(tmp_path, 30)}, start=False)
    assert job.queue == worker_queue and job.chunks.count() == 3
    workers.start()
    enqueue_chunks(job, redis_url, worker_queue)
    job = wait_for(job, lambda j: not j.is_active, 45, workers)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.done == 60 and job.failed == 0 and job.tokens > 0
    records = list(Record.objects.filter(dataset=job.dataset))
    assert len(records) == 30
    assert all(r.fields["response-1"] and r.fields["response-2"] for r in records)
    assert all(r.metadata["response-1"]["endpoint"] != r.metadata["response-2"]["endpoint"] for r in records)
    assert llm_server.count == 60


def test_worker_killed_mid_job_loses_and_duplicates_nothing(require_postgres, redis_url, worker_queue, workers,
                                                            workspace, llm_endpoint, llm_server, tmp_path):
    llm_server.latency = 0.3
    ep = llm_endpoint(queue=worker_queue, max_concurrency=4)
    job = generation_job_create(workspace=workspace, dataset_name="celery-kill", endpoints=[ep], n=2,
                                strategy="samples", temperatures=[0.3, 0.9], chunk_size=20,
                                prompts_source={"file": _prompts(tmp_path, 40)}, start=False)
    first = workers.start(visibility_timeout=4)
    enqueue_chunks(job, redis_url, worker_queue)
    job = wait_for(job, lambda j: j.done >= 12, 30, workers)  # mid-way: ~2 s of a ~6 s job
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    job.refresh_from_db()
    assert job.is_active and job.done < 80
    stored = set(GenerationOutput.objects.filter(job=job).values_list("prompt_key", "slot"))
    assert 0 < len(stored) < 80
    requests_at_kill = llm_server.count
    workers.start(visibility_timeout=4)
    job = wait_for(job, lambda j: not j.is_active, 50, workers)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.done == 80 and job.failed == 0
    assert GenerationOutput.objects.filter(job=job).count() == 80
    records = list(Record.objects.filter(dataset=job.dataset))
    assert len(records) == 40 and len({r.external_id for r in records}) == 40
    assert all(set(r.fields) == {"prompt", "response-1", "response-2"} for r in records)
    assert sorted(r.fields["prompt"] for r in records) == sorted(f"worker question {i}" for i in range(40))
    assert all(c.status == JobChunk.Status.DONE for c in job.chunks.all())
    # what was stored before the kill was never asked again. (A slot may be asked twice after it:
    # with a 4 s visibility timeout Redis also hands a still-running chunk to a second thread,
    # and the unique (job, prompt, slot) key keeps the counts exact all the same.)
    temperature_slot = {0.3: 0, 0.9: 1}
    asked_after = {(str(int(b["messages"][-1]["content"].split()[-1]) + 1), temperature_slot[b["temperature"]])
                   for b in llm_server.requests[requests_at_kill:]}
    assert not asked_after & stored
    assert asked_after | stored == {(str(i), s) for i in range(1, 41) for s in (0, 1)}


# the liveness settings of the workers below: heartbeat every 0.5 s, stalled after 4 s, swept every second
LIVENESS = {"PREFLAB_JOB_HEARTBEAT_SECONDS": "0.5", "PREFLAB_JOB_STALL_SECONDS": "4", "PREFLAB_JOB_SWEEP_SECONDS": "1"}


def test_a_chunk_of_a_killed_worker_is_requeued_by_the_stall_sweep_with_default_broker_settings(
        require_postgres, redis_url, worker_queue, workers, workspace, llm_endpoint, llm_server, tmp_path):
    """Redis would hand the killed worker's chunks out again only after its visibility timeout (3600 s
    by default, left as is here): the stall sweep of the surviving worker re-queues them once their
    heartbeat is PREFLAB_JOB_STALL_SECONDS old, and the job completes with exact counts."""
    llm_server.latency = 0.3
    ep = llm_endpoint(queue=worker_queue, max_concurrency=4)
    job = generation_job_create(workspace=workspace, dataset_name="celery-stall", endpoints=[ep], n=2,
                                strategy="samples", temperatures=[0.3, 0.9], chunk_size=20,
                                prompts_source={"file": _prompts(tmp_path, 40)}, start=False)
    first = workers.start(env=LIVENESS)
    enqueue_chunks(job, redis_url, worker_queue)
    job = wait_for(job, lambda j: j.done >= 12, 30, workers)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    job.refresh_from_db()
    assert job.is_active and job.done < 80
    killed = set(job.chunks.filter(status=JobChunk.Status.RUNNING).values_list("index", flat=True))
    assert killed
    workers.start(env=LIVENESS)
    job = wait_for(job, lambda j: not j.is_active, 60, workers)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.done == 80 and job.failed == 0
    assert GenerationOutput.objects.filter(job=job).count() == 80
    records = list(Record.objects.filter(dataset=job.dataset))
    assert len(records) == 40 and len({r.external_id for r in records}) == 40
    assert all(c.status == JobChunk.Status.DONE for c in job.chunks.all())
    # each chunk the killed worker held was re-queued, and the job's status says when and why
    requeues = job_status(job)["requeues"]
    assert killed <= {r["chunk"] for r in requeues} and all(r["requeues"] >= 1 for r in requeues)
    assert all("re-queued at" in r["note"] and "(worker lost)" in r["note"] for r in requeues)
