"""Simulation jobs count what the simulated annotators answered, never a chunk's work twice."""
import pytest
from django.db.models import F

from annotation.jobs import job_chunk_execute
from annotation.models import JobChunk, Response
from judging.evaluation.simulation import simulated_annotator_create, simulation_job_create
from tests.factories import DatasetFactory
from tests.helpers import chunk_run_again
from tests.judging.evaluation.helpers import judge_responder, make_judge, pair_records

pytestmark = pytest.mark.django_db


@pytest.fixture
def simulation_job(workspace, llm_server, llm_endpoint):
    llm_server.responder = judge_responder
    dataset = DatasetFactory(workspace=workspace, min_submitted=2)
    pair_records(dataset, 10, seed=4)
    judge = make_judge(workspace, llm_endpoint())
    sims = [simulated_annotator_create(workspace=workspace, name=f"s{i}", judge=judge, flip_probability=0.25, seed=i)
            for i in range(3)]
    return simulation_job_create(dataset=dataset, annotators=sims, start=False)


def test_the_finished_job_counts_the_answers_not_the_chunk_counters(simulation_job):
    """Two copies of a chunk that ran at once (a redelivery after SIGKILL) may both count what they
    saw; the job's final figures come from the responses."""
    job = simulation_job
    assert job_chunk_execute(job_id=job.pk, index=0) == "ok"
    assert job_chunk_execute(job_id=job.pk, index=1) == "ok"
    JobChunk.objects.filter(job=job, index=0).update(done=F("done") + 10)  # what a double count leaves
    assert job_chunk_execute(job_id=job.pk, index=2) == "ok"
    job.refresh_from_db()
    submitted = Response.objects.filter(dataset=job.dataset, status="submitted").count()
    assert job.status == "succeeded" and submitted == 20
    assert (job.done, job.failed, job.total) == (20, 0, 20)
    assert job.result["submitted"] == 20


def test_a_straggling_copy_of_a_chunk_changes_nothing(simulation_job):
    job = simulation_job
    for chunk in job.chunks.all():
        job_chunk_execute(job_id=job.pk, index=chunk.index)
    job.refresh_from_db()
    assert (job.status, job.done) == ("succeeded", 20)
    chunk_run_again(job, 0)
    job.refresh_from_db()
    assert (job.done, job.failed) == (20, 0)
    assert Response.objects.filter(dataset=job.dataset, status="submitted").count() == 20


def test_a_paused_simulated_annotator_stops_and_the_others_finish(simulation_job):
    """A simulated annotator paused on the dataset (the gold policy, or an admin) gets no records, as
    a person would; the job does not fail on it."""
    from annotation.models import Membership
    from annotation.quality.standing import standing_set

    job = simulation_job
    paused = Membership.objects.get(workspace=job.dataset.workspace, user__username__endswith="s0").user
    standing_set(dataset=job.dataset, user=paused, paused=True, reason="check records missed")
    for chunk in job.chunks.all():
        assert job_chunk_execute(job_id=job.pk, index=chunk.index) == "ok"
    job.refresh_from_db()
    assert job.status == "succeeded"
    assert not Response.objects.filter(dataset=job.dataset, user=paused).exists()
    assert Response.objects.filter(dataset=job.dataset, status="submitted").count() == 20  # the two others: 10 x 2
