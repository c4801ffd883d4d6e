"""A REAL Celery worker over Redis runs a judge job (PostgreSQL + Redis; required in CI): the
"judge" handler is registered in the worker process (JudgingConfig.ready) and a killed worker's
chunk is redelivered without duplicating outputs, verdicts or suggestions.

The worker harness is tests/workers.py, shared with the generation worker tests."""
import signal

import pytest

from annotation.models import Job, Suggestion
from judging.models import JudgeOutput, JudgeVerdict
from judging.services import judge_job_create
from tests.factories import RecordFactory
from tests.judging.helpers import content_rater, make_judge
from tests.workers import enqueue_chunks, wait_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _records(dataset, n):
    for i in range(n):
        RecordFactory(dataset=dataset, external_id=f"w{i}", fields={
            "prompt": f"Q{i}", "response-1": "GOOD" if i % 2 else "BAD", "response-2": "BAD" if i % 2 else "GOOD"})


def test_a_real_worker_judges_a_dataset_and_survives_sigkill(require_postgres, redis_url, worker_queue, workers,
                                                             workspace, dataset, llm_endpoint, llm_server,
                                                             monkeypatch):
    monkeypatch.setenv("PREFLAB_JUDGE_FLUSH_SECONDS", "0.1")  # the workers write (and report) every 0.1 s
    llm_server.responder = content_rater("json")
    llm_server.latency = 0.2
    judge = make_judge(workspace, llm_endpoint(queue=worker_queue, max_concurrency=2))
    _records(dataset, 40)
    job = judge_job_create(workspace=workspace, dataset=dataset, judge=judge, chunk_size=10, start=False)
    assert job.queue == worker_queue and job.chunks.count() == 4
    first = workers.start(visibility_timeout=3)
    enqueue_chunks(job, redis_url, worker_queue)
    wait_for(job, lambda j: j.done >= 4, 30, workers)
    first.send_signal(signal.SIGKILL)  # mid-chunk
    first.wait(10)
    job.refresh_from_db()
    assert job.is_active and job.done < 40
    workers.start(visibility_timeout=3)
    # Redis hands the killed worker's unacknowledged chunks back after the visibility timeout (kombu's
    # restore sweep can take a while); send the unfinished chunks again as well, as an operator
    # would: a chunk delivered twice must not duplicate anything either.
    enqueue_chunks(job, redis_url, worker_queue, unfinished_only=True)
    try:
        job = wait_for(job, lambda j: not j.is_active, 60, workers)
    except AssertionError as exc:
        chunks = list(job.chunks.values_list("index", "status", "done", "failed", "attempts"))
        raise AssertionError(f"{exc}\nchunks: {chunks}") from None
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.done, job.failed) == (40, 0)
    assert JudgeVerdict.objects.filter(job=job).count() == 40
    assert JudgeOutput.objects.filter(job=job).count() == 40
    assert 40 <= llm_server.count < 80  # what the killed worker had stored was not asked again
    sugg = Suggestion.objects.filter(record__dataset=dataset)
    assert sugg.count() == 40
    for s in sugg.select_related("record"):
        good = "response-1" if s.record.fields["response-1"] == "GOOD" else "response-2"
        assert s.value[0] == {"value": good, "rank": 1}
