"""The "simulation" job kind through a real Celery worker (Redis broker; PostgreSQL in CI)."""
import time

import pytest
from django.conf import settings

from annotation.models import Job, Response
from judging.evaluation.simulation import simulated_annotator_create, simulation_job_create
from tests.factories import DatasetFactory
from tests.judging.evaluation.helpers import judge_responder, make_judge, pair_records


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_simulation_job_runs_on_a_real_worker(require_postgres, redis_url, workspace, llm_server, llm_endpoint):
    from celery.contrib.testing.worker import start_worker

    from preflab.celery import app

    llm_server.responder = judge_responder
    dataset = DatasetFactory(workspace=workspace, min_submitted=2)
    pair_records(dataset, 8, seed=11)
    judge = make_judge(workspace, llm_endpoint())
    pool = [simulated_annotator_create(workspace=workspace, name=f"wk{i}", judge=judge, seed=i) for i in range(2)]
    with start_worker(app, queues=[settings.PREFLAB_CPU_QUEUE], perform_ping_check=False, pool="solo",
                      concurrency=1, shutdown_timeout=20):
        job = simulation_job_create(dataset=dataset, annotators=pool)  # enqueued on commit (autocommit here)
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if not job.is_active:
                break
            time.sleep(0.2)
    job = Job.objects.get(pk=job.pk)
    assert job.status == Job.Status.SUCCEEDED, (job.status, job.error)
    assert job.done == 16 and job.total == 16
    assert Response.objects.filter(dataset=dataset, status="submitted").count() == 16
