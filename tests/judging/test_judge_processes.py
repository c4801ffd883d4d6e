"""An inline judge job over several processes (job_run_inline(processes=N), manage.py judge --processes):
the same outputs as one process, the endpoint's limit kept for the run as a whole, and a process killed
mid-chunk losing nothing and counting nothing twice once the job is resumed."""
import multiprocessing
import os
import signal
import threading

import pytest
from django.core.management import call_command

from annotation.jobs import job_resume, job_run_inline
from annotation.models import Job, JobChunk, Suggestion
from judging.models import JudgeOutput, JudgeVerdict
from judging.services import judge_job_create
from judging.services.handler import _ChunkRun
from tests.factories import DatasetFactory
from tests.judging.helpers import add_records, content_rater, make_judge

pytestmark = pytest.mark.django_db(transaction=True)


def _rows(n):
    return [{"prompt": f"Q{i}", "response-1": f"a {'GOOD' if i % 3 else 'BAD'} answer {i}",
             "response-2": f"an {'OK' if i % 2 else 'BAD'} one {i}"} for i in range(n)]


def _written(dataset, job):
    """What a judge job wrote, by record external id, without the job's id."""
    suggestions = {}
    for s in Suggestion.objects.filter(record__dataset=dataset).select_related("record", "question"):
        raw = {k: v for k, v in s.raw.items() if k != "job"}
        suggestions[(s.record.external_id, s.question.name)] = (s.value, s.score, s.rationale, raw)
    verdicts = {v.record.external_id: (v.status, v.result, v.error)
                for v in JudgeVerdict.objects.filter(job=job).select_related("record")}
    outputs = {(o.record.external_id, o.call_key): (o.raw_text, o.parsed, o.attempts)
               for o in JudgeOutput.objects.filter(job=job).select_related("record")}
    priorities = dict(dataset.records.values_list("external_id", "priority"))
    return suggestions, verdicts, outputs, priorities


def test_two_processes_write_exactly_what_one_does_and_keep_the_endpoint_limit(
        require_postgres, workspace, llm_server, llm_endpoint, monkeypatch, tmp_path):
    llm_server.responder = content_rater("json")
    llm_server.latency = 0.02
    endpoint = llm_endpoint(supports_json_schema=False, max_concurrency=4)
    judge = make_judge(workspace, endpoint, aspect="helpfulness")
    dataset = DatasetFactory(workspace=workspace)
    add_records(dataset, _rows(60))

    job1 = job_run_inline(job=judge_job_create(workspace=workspace, dataset=dataset, judge=judge, start=False,
                                               chunk_size=7))
    assert job1.status == "succeeded"
    one = _written(dataset, job1)
    Suggestion.objects.filter(record__dataset=dataset).delete()
    dataset.records.update(priority=0)
    llm_server.reset()
    pids = tmp_path / "pids"
    plan = _ChunkRun.plan

    def plan_noting_the_process(self):  # patched before the fork: the processes inherit it
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
        return plan(self)

    monkeypatch.setattr(_ChunkRun, "plan", plan_noting_the_process)
    job2 = judge_job_create(workspace=workspace, dataset=dataset, judge=judge, start=False, chunk_size=7)
    ended = []
    job2 = job_run_inline(job=job2, processes=2, on_chunk=lambda index, outcome: ended.append((index, outcome)))

    assert (job2.status, job2.total, job2.done, job2.failed) == ("succeeded", 60, 60, 0), job2.error
    assert sorted(ended) == [(i, "ok") for i in range(9)]  # every chunk reported once, in this process
    assert llm_server.count == 60  # no record called twice
    assert llm_server.max_in_flight <= 4  # 2 + 2: the processes split the endpoint's limit
    assert job2.result == job1.result
    assert _written(dataset, job2) == one
    ran = pids.read_text().split()
    assert len(ran) == 9 and len(set(ran)) == 2 and str(os.getpid()) not in ran  # two other processes shared them


def test_a_process_killed_mid_chunk_loses_nothing_and_the_resume_counts_nothing_twice(
        require_postgres, workspace, dataset, llm_server, llm_endpoint, monkeypatch):
    monkeypatch.setattr("annotation.jobs._chunk_send", lambda job, index: None)  # resumed here, not by a worker
    llm_server.responder = content_rater("json")
    llm_server.latency = 0.05
    endpoint = llm_endpoint(supports_json_schema=False, max_concurrency=4)
    judge = make_judge(workspace, endpoint, aspect="helpfulness")
    add_records(dataset, _rows(60))
    killed: list[int] = []
    lock = threading.Lock()
    respond = llm_server.responder

    def kill_a_process_once(body):
        # runs in this test process (the server's thread): at the 20th call, SIGKILL one of the job's processes
        with lock:
            if llm_server.count >= 20 and not killed:
                children = multiprocessing.active_children()
                if children:
                    killed.append(children[0].pid)
                    os.kill(children[0].pid, signal.SIGKILL)
        return respond(body)

    llm_server.responder = kill_a_process_once
    job = judge_job_create(workspace=workspace, dataset=dataset, judge=judge, start=False, chunk_size=10)
    job = job_run_inline(job=job, processes=2)
    assert killed
    assert job.status == Job.Status.FAILED
    assert "exited (code -9)" in job.error
    assert JudgeVerdict.objects.filter(job=job).count() < 60

    llm_server.responder = respond
    job = job_run_inline(job=job_resume(job=job), processes=2)
    assert (job.status, job.done, job.failed) == ("succeeded", 60, 0), job.error
    assert JudgeVerdict.objects.filter(job=job).count() == 60
    assert JudgeOutput.objects.filter(job=job).count() == 60
    assert Suggestion.objects.filter(record__dataset=dataset).count() == 60
    assert sum(JobChunk.objects.filter(job=job).values_list("done", flat=True)) == 60


def test_manage_py_judge_processes_option(require_postgres, workspace, dataset, llm_server, llm_endpoint, capsys):
    llm_server.responder = content_rater("markdown")
    endpoint = llm_endpoint(supports_json_schema=False, max_concurrency=6)
    make_judge(workspace, endpoint, name="uf-procs", aspect="helpfulness")
    add_records(dataset, _rows(30))
    call_command("judge", "--dataset", str(dataset.pk), "--judge", "uf-procs", "--no-progress", "--processes", "3",
                 "--chunk-size", "4")
    job = Job.objects.get(kind="judge", dataset=dataset)
    assert (job.status, job.done) == ("succeeded", 30)
    assert llm_server.count == 30 and llm_server.max_in_flight <= 6
    assert "30 records judged" in capsys.readouterr().out


def test_a_job_planned_for_several_processes_gets_even_chunks_and_one_for_one_process_keeps_its_size(
        workspace, llm_endpoint):
    from judging.services import default_chunk_size

    judge = make_judge(workspace, llm_endpoint(supports_json_schema=False, max_concurrency=256), aspect="helpfulness")
    one = default_chunk_size(judge, records=10_000)
    two = default_chunk_size(judge, records=10_000, processes=2)
    assert one == 4096  # 16 pipe-fulls: 3 chunks, too coarse to share between processes
    assert two == 1250 and -(-10_000 // two) == 8  # 4 each, and each still 2 pipe-fulls of a process's 128 slots
    assert default_chunk_size(judge, records=300, processes=2) == 256  # never below 2 pipe-fulls of a share

    dataset = DatasetFactory(workspace=workspace)
    add_records(dataset, _rows(600))
    job = judge_job_create(workspace=workspace, dataset=dataset, judge=judge, processes=2, start=False)
    sizes = [len(c.spec["record_ids"]) for c in job.chunks.order_by("index")]
    assert sizes == [256, 256, 88]


def test_a_job_for_one_process_starts_with_a_small_chunk_and_an_explicit_size_is_kept(workspace, llm_endpoint):
    """The first chunk is two pipe-fulls of the endpoint's slots (its calls go out while the next chunk is
    planned); the rest keep the default size; a size asked for is used for every chunk."""
    judge = make_judge(workspace, llm_endpoint(supports_json_schema=False, max_concurrency=64), aspect="helpfulness")
    dataset = DatasetFactory(workspace=workspace)
    add_records(dataset, _rows(2500))
    job = judge_job_create(workspace=workspace, dataset=dataset, judge=judge, start=False)
    sizes = [len(c.spec["record_ids"]) for c in job.chunks.order_by("index")]
    assert sizes == [128, 1024, 1024, 324] and job.total == 2500
    ids = [i for c in job.chunks.order_by("index") for i in c.spec["record_ids"]]
    assert ids == sorted(dataset.records.values_list("pk", flat=True))  # every record once, in order
    job = judge_job_create(workspace=workspace, dataset=dataset, judge=judge, chunk_size=1000, start=False)
    assert [len(c.spec["record_ids"]) for c in job.chunks.order_by("index")] == [1000, 1000, 500]
