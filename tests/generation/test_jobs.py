"""Generation jobs: strategies, metadata, idempotent chunks, failures, cancel/resume, prompt sources."""
import threading
import time
from collections import Counter

import orjson
import pytest
from django.core.exceptions import ValidationError

from annotation.jobs import job_cancel, job_chunk_execute, job_run_inline
from annotation.models import Job, JobChunk, JobError, Record
from generation.models import GenerationOutput
from generation.services import (
    generation_job_create,
    generation_job_resume,
    slot_plan,
)
from tests.factories import DatasetFactory, RecordFactory
from tests.helpers import chunk_run_again

pytestmark = pytest.mark.django_db


def write_jsonl(path, prompts, **extra):
    with open(path, "wb") as f:
        for i, p in enumerate(prompts):
            f.write(orjson.dumps({"prompt": p, **{k: v[i] for k, v in extra.items()}}) + b"\n")
    return str(path)


@pytest.fixture
def prompt_file(tmp_path):
    return write_jsonl(tmp_path / "prompts.jsonl", [f"Explain topic {i}" for i in range(12)])


def run(job):
    return job_run_inline(job=job)


def test_sample_strategy_is_seeded_and_reproducible(workspace, llm_endpoint, prompt_file):
    pool = [llm_endpoint() for _ in range(3)]
    target = DatasetFactory(workspace=workspace)
    job = run(generation_job_create(workspace=workspace, dataset=target, endpoints=pool, n=2, strategy="sample",
                                    seed=7, prompts_source={"file": prompt_file}, start=False))
    assert job.status == Job.Status.SUCCEEDED and job.done == 24 and job.failed == 0 and job.total == 24
    records = {r.external_id: r for r in Record.objects.filter(dataset=target)}
    assert len(records) == 12
    plans = {}
    for eid, r in records.items():
        used = [r.metadata["response-1"]["endpoint"], r.metadata["response-2"]["endpoint"]]
        assert len(set(used)) == 2 and set(used) <= {e.name for e in pool}
        assert r.fields["prompt"].startswith("Explain topic")
        key = eid.split("-")[-1]
        plans[key] = used
        # the record's text really came from the endpoint named in its metadata
        assert f"[{r.metadata['response-1']['model']} " in r.fields["response-1"]
    assert len({tuple(p) for p in plans.values()}) > 1  # the draw varies between prompts
    # same seed, another job: the same plan per prompt; another seed: a different one somewhere
    again = [slot_plan(prompt_key=k, strategy="sample", pool=[e.name for e in pool], n=2, seed=7, temperatures=None)
             for k in sorted(plans)]
    assert [[name for name, _ in a] for a in again] == [plans[k] for k in sorted(plans)]
    other = [slot_plan(prompt_key=k, strategy="sample", pool=[e.name for e in pool], n=2, seed=8, temperatures=None)
             for k in sorted(plans)]
    assert [[name for name, _ in a] for a in other] != [plans[k] for k in sorted(plans)]


def test_each_strategy_every_endpoint_once(workspace, llm_endpoint, prompt_file, llm_server):
    pool = [llm_endpoint(), llm_endpoint(), llm_endpoint()]
    job = run(generation_job_create(workspace=workspace, dataset_name="each-ds", endpoints=pool, strategy="each",
                                    prompts_source={"file": prompt_file}, start=False))
    assert job.params["n"] == 3 and job.done == 36
    for r in Record.objects.filter(dataset=job.dataset):
        assert [r.metadata[f"response-{i}"]["endpoint"] for i in (1, 2, 3)] == [e.name for e in pool]
    assert Counter(b["model"] for b in llm_server.requests) == {e.model: 12 for e in pool}
    q = job.dataset.questions.get()
    assert q.kind == "ranking" and q.options["values"] == ["response-1", "response-2", "response-3"]


def test_samples_strategy_with_temperatures_and_metadata(workspace, llm_endpoint, prompt_file, llm_server):
    ep = llm_endpoint(params={"max_tokens": 100, "top_p": 0.95, "seed": 11})
    job = run(generation_job_create(workspace=workspace, dataset_name="samples-ds", endpoints=[ep], n=3,
                                    strategy="samples", temperatures=[0.2, 0.7, 1.2], overrides={ep.name: {"top_p": 0.8}},
                                    prompts_source={"file": prompt_file}, start=False))
    assert job.done == 36
    temps = Counter((b["temperature"], b["seed"], b["top_p"], b["max_tokens"]) for b in llm_server.requests)
    assert temps == {(0.2, 11, 0.8, 100): 12, (0.7, 12, 0.8, 100): 12, (1.2, 13, 0.8, 100): 12}
    r = Record.objects.filter(dataset=job.dataset).first()
    meta = r.metadata["response-2"]
    assert meta["endpoint"] == ep.name and meta["model"] == ep.model
    assert meta["params"] == {"max_tokens": 100, "top_p": 0.8, "seed": 12, "temperature": 0.7}
    assert meta["prompt_tokens"] > 0 and meta["completion_tokens"] > 0 and meta["finish_reason"] == "stop"
    assert meta["latency_s"] >= 0
    assert len({r.fields["response-1"], r.fields["response-2"], r.fields["response-3"]}) == 3
    assert r.metadata["generation"]["job"] == job.pk
    assert job.tokens == sum(o.prompt_tokens + o.completion_tokens for o in GenerationOutput.objects.filter(job=job))
    assert job.result["records"] == 12


def test_rerunning_a_chunk_is_idempotent(workspace, llm_endpoint, prompt_file, llm_server):
    pool = [llm_endpoint(), llm_endpoint()]
    target = DatasetFactory(workspace=workspace)
    job = generation_job_create(workspace=workspace, dataset=target, endpoints=pool, n=2, chunk_size=5,
                                prompts_source={"file": prompt_file}, start=False)
    assert job.chunks.count() == 3
    run(job)
    assert llm_server.count == 24
    # a redelivered task runs a chunk again: nothing is asked twice, nothing duplicated
    JobChunk.objects.filter(job=job, index=1).update(status=JobChunk.Status.PENDING)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
    assert job_chunk_execute(job_id=job.pk, index=1) == "ok"
    assert llm_server.count == 24
    # a chunk killed between storing outputs and writing records, and one missing an output
    GenerationOutput.objects.filter(job=job, prompt_key="6", slot=1).delete()
    Record.objects.filter(dataset=target, external_id__in=[f"gen-{job.pk}-6", f"gen-{job.pk}-7"]).delete()
    JobChunk.objects.filter(job=job, index=1).update(status=JobChunk.Status.PENDING)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
    job_chunk_execute(job_id=job.pk, index=1)
    assert llm_server.count == 25  # only the missing slot was requested
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.done == 24 and job.failed == 0
    assert GenerationOutput.objects.filter(job=job).count() == 24
    records = Record.objects.filter(dataset=target)
    assert records.count() == 12
    assert all(set(r.fields) == {"prompt", "response-1", "response-2"} for r in records)


def test_failed_slots_are_kept_and_resume_retries_them(workspace, llm_endpoint, prompt_file, llm_server):
    ep = llm_endpoint(max_retries=1)
    llm_server.fail("500", times=10_000, when=lambda b: b["messages"][-1]["content"] == "Explain topic 3"
                    and b.get("temperature") == 1.0)
    job = run(generation_job_create(workspace=workspace, dataset_name="fail-ds", endpoints=[ep], n=2,
                                    strategy="samples", temperatures=[0.5, 1.0],
                                    prompts_source={"file": prompt_file}, start=False))
    assert job.status == Job.Status.PARTLY_FAILED and job.done == 23 and job.failed == 1
    err = JobError.objects.get(job=job)
    assert err.item == "4#1" and "HTTP 500" in err.error and "after 2 attempts" in err.error  # line 4 = topic 3
    assert Record.objects.filter(dataset=job.dataset).count() == 11  # the prompt is not half-written
    llm_server.clear_failures()
    job = generation_job_resume(job=job)
    assert job.status == Job.Status.QUEUED
    job = run(job)
    assert job.status == Job.Status.SUCCEEDED and job.done == 24 and job.failed == 0
    assert not JobError.objects.filter(job=job).exists()
    assert Record.objects.filter(dataset=job.dataset).count() == 12
    with pytest.raises(ValidationError, match="nothing to resume"):
        generation_job_resume(job=job)


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_promptly_and_resume_completes_exactly(workspace, llm_endpoint, tmp_path, llm_server,
                                                            monkeypatch):
    enqueued = []
    monkeypatch.setattr("annotation.jobs.job_enqueue", lambda *, job: enqueued.append(job.pk))  # run here instead
    path = write_jsonl(tmp_path / "p.jsonl", [f"q{i}" for i in range(40)])
    ep = llm_endpoint(max_concurrency=4)
    llm_server.latency = 0.2
    job = generation_job_create(workspace=workspace, dataset_name="cancel-ds", endpoints=[ep], n=2,
                                strategy="samples", prompts_source={"file": path}, start=False)

    def cancel_soon():
        time.sleep(0.9)
        job_cancel(job=Job.objects.get(pk=job.pk))

    t = threading.Thread(target=cancel_soon)
    t.start()
    started = time.perf_counter()
    run(job)
    t.join()
    assert time.perf_counter() - started < 3.2  # the full job would take ~4 s
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert 0 < job.done < 80
    sent_before = llm_server.count
    assert sent_before < 60
    job = generation_job_resume(job=job)
    assert job.status == Job.Status.QUEUED and enqueued == [job.pk]  # resume hands the chunks to the workers
    job = run(job)
    assert job.status == Job.Status.SUCCEEDED and job.done == 80 and job.failed == 0
    assert GenerationOutput.objects.filter(job=job).count() == 80
    assert Record.objects.filter(dataset=job.dataset).count() == 40
    assert llm_server.count <= 80 + 4  # at most the requests in flight at cancel were asked again


def test_prompts_from_a_dataset_fill_its_records_in_place(workspace, llm_endpoint):
    ds = DatasetFactory(workspace=workspace)
    ds.fields.filter(name__startswith="response-").update(required=False)
    for i in range(3):
        RecordFactory(dataset=ds, external_id=f"r{i}", fields={"prompt": f"P{i}"}, priority=2.5)
    job = run(generation_job_create(workspace=workspace, dataset=ds, endpoints=[llm_endpoint(), llm_endpoint()],
                                    prompts_source={"dataset": ds.pk}, start=False))
    assert job.done == 6
    records = list(Record.objects.filter(dataset=ds).order_by("external_id"))
    assert [r.external_id for r in records] == ["r0", "r1", "r2"]
    assert all(r.fields["response-1"] and r.fields["response-2"] and r.priority == 2.5 for r in records)
    assert records[0].fields["prompt"] == "P0" and records[0].fields["response-1"].endswith("answer to: P0")


def test_csv_and_parquet_prompts_with_columns_and_ids(workspace, llm_endpoint, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_path = tmp_path / "p.csv"
    csv_path.write_text('uid,text\na1,"Hello, world"\na2,"Second\nline"\n')
    pq_path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"question": ["x?", "y?"], "qid": [10, 11]}), pq_path)
    ep1, ep2 = llm_endpoint(), llm_endpoint()
    job = run(generation_job_create(workspace=workspace, dataset_name="csv-ds", endpoints=[ep1, ep2],
                                    prompts_source={"file": str(csv_path), "column": "text", "id_column": "uid"},
                                    start=False))
    assert dict(Record.objects.filter(dataset=job.dataset).values_list("external_id", "fields__prompt")) == {
        "a1": "Hello, world", "a2": "Second\nline"}
    job = run(generation_job_create(workspace=workspace, dataset=job.dataset, endpoints=[ep1, ep2],
                                    prompts_source={"file": str(pq_path), "column": "question", "id_column": "qid"},
                                    start=False))
    assert set(Record.objects.filter(dataset=job.dataset).values_list("external_id", flat=True)) == {"a1", "a2", "10", "11"}


def test_chat_prompts_make_a_chat_field(workspace, llm_endpoint, tmp_path, llm_server):
    chat = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Bonjour?"}]
    path = write_jsonl(tmp_path / "chat.jsonl", [chat])
    job = run(generation_job_create(workspace=workspace, dataset_name="chat-ds", endpoints=[llm_endpoint(),
                                    llm_endpoint()], prompts_source={"file": path}, start=False))
    assert job.dataset.fields.get(name="prompt").kind == "chat"
    assert Record.objects.get(dataset=job.dataset).fields["prompt"] == chat
    assert llm_server.requests[0]["messages"] == chat


@pytest.mark.parametrize("content,message", [
    (b'{"prompt": "ok"}\n{"prompt": \n', "line 2: not valid JSON"),
    (b'{"prompt": "ok"}\n{"text": "x"}\n', "line 2: no column 'prompt'"),
    (b'{"prompt": "ok"}\n{"prompt": "  "}\n', "line 2: the prompt is empty"),
    (b'{"prompt": "ok"}\n[1]\n', "line 2: each line must be a JSON object"),
    (b'', "no prompts"),
])
def test_bad_prompt_files_name_the_line_and_write_nothing(workspace, llm_endpoint, tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValidationError, match=message):
        generation_job_create(workspace=workspace, dataset_name="never", endpoints=[llm_endpoint(), llm_endpoint()],
                              prompts_source={"file": str(path)}, start=False)
    assert not Job.objects.exists() and not workspace.datasets.filter(name="never").exists()


def test_bad_job_settings_are_rejected(workspace, llm_endpoint, prompt_file):
    a, b = llm_endpoint(), llm_endpoint()
    two = DatasetFactory(workspace=workspace)
    src = {"file": prompt_file}
    cases = [
        (dict(dataset=two, endpoints=[a], strategy="samples", n=3), "needs the fields response-1, response-2, response-3"),
        (dict(dataset=two, endpoints=[a, b], n=3, strategy="sample"), "cannot draw 3"),
        (dict(dataset=two, endpoints=[a], strategy="each"), "an integer from 2 to 16"),
        (dict(dataset=two, endpoints=[a, b], strategy="samples"), "exactly one endpoint"),
        (dict(dataset=two, endpoints=[a], strategy="samples", temperatures=[0.1]), "a list of 2 numbers"),
        (dict(dataset=two, endpoints=[a, b], strategy="bogus"), "strategy"),
        (dict(dataset=two, endpoints=[a, b], overrides={"nope": {}}), "not one of the job's endpoints"),
        (dict(dataset=two, endpoints=[a, b], overrides={a.name: {"temperature": "hot"}}), "must be a number"),
        (dict(dataset=two, endpoints=["missing"]), "no endpoint 'missing'"),
        (dict(endpoints=[a, b]), "choose a target dataset"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValidationError, match=message):
            generation_job_create(workspace=workspace, prompts_source=src, start=False, **kwargs)
    assert not Job.objects.exists()


def test_missing_api_key_variable_fails_the_job_clearly_and_resume_runs_it(workspace, llm_endpoint, prompt_file,
                                                                          llm_server, monkeypatch):
    monkeypatch.delenv("PREFLAB_GEN_TEST_KEY", raising=False)
    ep = llm_endpoint(api_key_env="PREFLAB_GEN_TEST_KEY")
    job = run(generation_job_create(workspace=workspace, dataset_name="nokey", endpoints=[ep], strategy="samples",
                                    prompts_source={"file": prompt_file}, start=False))
    assert job.status == Job.Status.FAILED
    assert "PREFLAB_GEN_TEST_KEY" in job.error and "is not set" in job.error
    assert llm_server.count == 0
    assert job.chunks.get().status == JobChunk.Status.FAILED  # not done: a resume runs it again
    monkeypatch.setenv("PREFLAB_GEN_TEST_KEY", "sk-test")
    job = run(generation_job_resume(job=job))
    assert job.status == Job.Status.SUCCEEDED and job.done == 24


def test_the_prompts_are_read_once_and_handed_to_the_plan(workspace, llm_endpoint, prompt_file, monkeypatch):
    import generation.services.handler as gs
    import generation.services.jobs as jobs_module

    reads = []
    real = gs.prompts_read
    for module in (gs, jobs_module):  # every place that may read the prompt file
        monkeypatch.setattr(module, "prompts_read", lambda **kw: reads.append(kw) or real(**kw))
    job = generation_job_create(workspace=workspace, dataset_name="once", endpoints=[llm_endpoint()],
                                strategy="samples", prompts_source={"file": prompt_file}, start=False)
    assert len(reads) == 1 and job.total == 24
    assert sum(len(c.spec["prompts"]) for c in job.chunks.all()) == 12
    assert not hasattr(gs, "_PLAN_PROMPTS")
    # planned from the job alone (no plan_input), the handler reads the stored source again
    from annotation.jobs import job_handler_for

    assert job_handler_for("generation").plan(job) == [{"prompts": c.spec["prompts"]} for c in job.chunks.all()]
    assert len(reads) == 2


def test_a_duplicate_run_of_a_chunk_still_going_when_the_job_finished_counts_nothing_again(
        workspace, llm_endpoint, prompt_file, llm_server):
    """A redelivered copy of a chunk that passed the "not done yet" check while the first copy ran
    goes on after the first finished the job: it counts nothing again (the job's counts came from
    the outputs)."""
    target = DatasetFactory(workspace=workspace)
    job = generation_job_create(workspace=workspace, dataset=target, endpoints=[llm_endpoint(), llm_endpoint()], n=2, chunk_size=6,
                                prompts_source={"file": prompt_file}, start=False)
    run(job)
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == (Job.Status.SUCCEEDED, 24, 0)
    chunk_run_again(job, 1)  # the straggling copy
    job.refresh_from_db()
    assert (job.done, job.failed) == (24, 0)
    assert GenerationOutput.objects.filter(job=job).count() == 24
    assert llm_server.count == 24


def test_storing_outputs_counts_only_the_slots_it_inserted(workspace):
    """Two copies of a chunk may store the same slot; only the copy that inserted it counts it."""
    from generation.services.handler import _outputs_insert
    from tests.factories import JobFactory

    job = JobFactory(kind="generation", workspace=workspace)
    row = {"prompt_key": "k", "slot": 0, "endpoint": "e", "model": "m", "params": {}, "text": "t",
           "finish_reason": "stop", "prompt_tokens": 1, "completion_tokens": 1, "latency_s": 0.1}
    rows = [(dict(row, slot=slot), 1) for slot in range(3)]
    assert _outputs_insert(job_id=job.pk, rows=rows) == 3
    assert _outputs_insert(job_id=job.pk, rows=[*rows, (dict(row, slot=3), 1)]) == 1
    assert GenerationOutput.objects.filter(job=job).count() == 4
