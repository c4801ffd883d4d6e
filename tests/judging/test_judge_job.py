"""A full judge job against the OpenAI-compatible test server."""
import pytest

from annotation.jobs import job_run_inline
from annotation.models import JobError, Suggestion
from judging.models import JudgeOutput, JudgeVerdict
from judging.services import judge_job_create
from tests.helpers import chunk_run_again
from tests.judging.helpers import add_records, content_rater, make_judge, ratings_as_json, shown_texts

pytestmark = pytest.mark.django_db


def _run(workspace, dataset, judge, **kw):
    job = judge_job_create(workspace=workspace, dataset=dataset, judge=judge, start=False, **kw)
    return job_run_inline(job=job)


def test_ultrafeedback_job_writes_ranking_suggestions_mapped_back_to_fields(workspace, dataset, llm_server, llm_endpoint):
    llm_server.responder = content_rater("markdown")
    endpoint = llm_endpoint(supports_json_schema=False)
    judge = make_judge(workspace, endpoint, aspect="helpfulness")
    records = add_records(dataset, [
        {"prompt": "Q1", "response-1": "a GOOD answer", "response-2": "a BAD answer"},
        {"prompt": "Q2", "response-1": "a BAD answer", "response-2": "a GOOD answer"},
        {"prompt": "Q3", "response-1": "an OK answer", "response-2": "another OK answer"},
        {"prompt": "Q4", "response-1": "plain", "response-2": "a GOOD one"},
    ])
    job = _run(workspace, dataset, judge)
    assert job.status == "succeeded", job.error
    assert (job.total, job.done, job.failed) == (4, 4, 0)
    sugg = {s.record_id: s for s in Suggestion.objects.filter(record__dataset=dataset)}
    assert len(sugg) == 4
    s0 = sugg[records[0].pk]
    assert s0.value == [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]
    assert s0.score == 4.0
    assert s0.agent == f"uf:{endpoint.model}"
    assert s0.raw["ratings"] == {"response-1": 5, "response-2": 1}
    assert s0.raw["aspect"] == "helpfulness"
    assert "response-1 (5/5)" in s0.rationale
    assert sugg[records[1].pk].value[0] == {"value": "response-2", "rank": 1}
    # equal ratings -> a tie, margin 0
    assert sugg[records[2].pk].value == [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 1}]
    assert sugg[records[2].pk].score == 0.0
    # priority: the tie is the most uncertain record
    for r in records:
        r.refresh_from_db()
    assert records[2].priority == 1.0
    assert records[0].priority == 0.0
    assert records[3].priority == pytest.approx(0.25)


def test_shuffle_is_seeded_per_record_and_mapped_back(workspace, dataset, llm_server, llm_endpoint):
    llm_server.responder = content_rater("json")
    judge = make_judge(workspace, llm_endpoint())
    rows = [{"prompt": f"Q{i}", "response-1": f"GOOD {i}" if i % 2 else f"meh {i}",
             "response-2": f"meh {i}" if i % 2 else f"GOOD {i}"} for i in range(12)]
    records = add_records(dataset, rows)
    _run(workspace, dataset, judge)
    first_shown = [shown_texts(b)[0] for b in llm_server.requests]
    # the judge saw the GOOD response first in some records and second in others
    assert any("GOOD" in t for t in first_shown) and any("meh" in t for t in first_shown)
    for i, r in enumerate(records):
        s = Suggestion.objects.get(record=r)
        good_field = "response-1" if i % 2 else "response-2"
        assert s.value[0] == {"value": good_field, "rank": 1}
        assert s.raw["ratings"][good_field] == 5


def test_malformed_then_good_is_retried_and_unreadable_fails_without_suggestion(workspace, dataset, llm_server,
                                                                                llm_endpoint):
    calls = {}

    def respond(body):
        texts = shown_texts(body)
        key = texts[0] + texts[1]
        calls[key] = calls.get(key, 0) + 1
        if "NEVER" in key:
            return "I'm sorry, but I can't help with rating these texts."
        if "FLAKY" in key and calls[key] == 1:
            return '{"ratings": [{"text": 1, "rating": 4, "rationale": "cut'  # truncated
        return ratings_as_json([3 if "FLAKY" in t else 2 for t in texts])

    llm_server.responder = respond
    judge = make_judge(workspace, llm_endpoint(), max_parse_retries=2)
    flaky, never = add_records(dataset, [{"prompt": "Q", "response-1": "FLAKY x", "response-2": "y"},
                                         {"prompt": "Q", "response-1": "NEVER x", "response-2": "y"}])
    job = _run(workspace, dataset, judge)
    assert (job.status, job.done, job.failed) == ("partly_failed", 1, 1)
    out = JudgeOutput.objects.get(record=flaky)
    assert out.attempts == 2 and out.error == "" and out.parsed["ratings"]["response-1"] == 3
    assert "truncated" in out.failed_attempts[0]["error"]
    # the retry carried a reminder of the format
    assert "could not be read" in llm_server.requests[-1]["messages"][-1]["content"] or any(
        "could not be read" in b["messages"][-1]["content"] for b in llm_server.requests)
    bad = JudgeOutput.objects.get(record=never)
    assert bad.attempts == 3 and "refused" in bad.error and bad.parsed is None
    assert "can't help" in bad.raw_text
    assert not Suggestion.objects.filter(record=never).exists()
    assert Suggestion.objects.filter(record=flaky).count() == 1
    verdict = JudgeVerdict.objects.get(record=never)
    assert verdict.status == "failed" and "refused" in verdict.error
    err = JobError.objects.get(job=job)
    assert err.item == f"record {never.external_id}" and "refused" in err.error and "can't help" in err.raw


def test_structured_output_request_carries_json_schema(workspace, dataset, llm_server, llm_endpoint):
    llm_server.responder = content_rater("json")
    judge = make_judge(workspace, llm_endpoint(supports_json_schema=True), use_structured_output=True,
                       params={"temperature": 0.0, "max_tokens": 512})
    add_records(dataset, [{"prompt": "Q", "response-1": "GOOD", "response-2": "BAD"}])
    _run(workspace, dataset, judge)
    body = llm_server.requests[0]
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["properties"]["ratings"]["maxItems"] == 2
    assert body["temperature"] == 0.0 and body["max_tokens"] == 512


def test_no_response_format_without_endpoint_support(workspace, dataset, llm_server, llm_endpoint):
    llm_server.responder = content_rater("markdown")
    judge = make_judge(workspace, llm_endpoint(supports_json_schema=False), use_structured_output=True)
    add_records(dataset, [{"prompt": "Q", "response-1": "GOOD", "response-2": "BAD"}])
    job = _run(workspace, dataset, judge)
    assert "response_format" not in llm_server.requests[0]
    assert "#### Output for Text 1" in llm_server.requests[0]["messages"][-1]["content"]
    assert job.done == 1


def test_rerun_of_a_chunk_calls_nothing_and_duplicates_nothing(workspace, dataset, llm_server, llm_endpoint):
    from annotation.jobs import job_chunk_execute
    from annotation.models import JobChunk

    llm_server.responder = content_rater("json")
    judge = make_judge(workspace, llm_endpoint())
    add_records(dataset, [{"prompt": f"Q{i}", "response-1": "GOOD", "response-2": "BAD"} for i in range(5)])
    job = _run(workspace, dataset, judge)
    sent = llm_server.count
    assert sent == 5
    # a worker killed after writing: the chunk runs again
    JobChunk.objects.filter(job=job).update(status="running")
    job.status = "running"
    job.save()
    assert job_chunk_execute(job_id=job.pk, index=0) == "ok"
    job.refresh_from_db()
    assert llm_server.count == sent
    assert (job.done, job.failed) == (5, 0)
    assert JudgeOutput.objects.filter(job=job).count() == 5
    assert JudgeVerdict.objects.filter(job=job).count() == 5
    assert Suggestion.objects.filter(record__dataset=dataset).count() == 5


def test_overall_mean_of_aspects_makes_four_calls(workspace, dataset, llm_server, llm_endpoint):
    def respond(body):
        prompt = body["messages"][-1]["content"]
        texts = shown_texts(body)
        bonus = 1 if "Aspect: HONESTY" in prompt else 0
        return ratings_as_json([min(5, (4 if "GOOD" in t else 2) + bonus) for t in texts])

    llm_server.responder = respond
    judge = make_judge(workspace, llm_endpoint(), aspect="overall", overall_mode="mean_of_aspects")
    (rec,) = add_records(dataset, [{"prompt": "Q", "response-1": "GOOD", "response-2": "weak"}])
    _run(workspace, dataset, judge)
    assert llm_server.count == 4
    s = Suggestion.objects.get(record=rec)
    assert s.raw["ratings"] == {"response-1": 4.25, "response-2": 2.25}
    assert s.score == 2.0
    assert set(s.raw["aspect_ratings"]) == {"helpfulness", "honesty", "instruction_following", "truthfulness"}


def test_records_missing_a_response_fail_clearly_without_a_call(workspace, dataset, llm_server, llm_endpoint):
    from annotation.models import Field
    Field.objects.filter(dataset=dataset, name="response-2").update(required=False)
    llm_server.responder = content_rater("json")
    judge = make_judge(workspace, llm_endpoint())
    ok, half = add_records(dataset, [{"prompt": "Q", "response-1": "GOOD", "response-2": "BAD"},
                                     {"prompt": "Q", "response-1": "GOOD"}])
    job = _run(workspace, dataset, judge)
    assert (job.done, job.failed, llm_server.count) == (1, 1, 1)
    assert "no response-2" in JobError.objects.get(job=job).error
    assert not Suggestion.objects.filter(record=half).exists()


def test_template_override_and_pairwise_schema(workspace, dataset, llm_server, llm_endpoint):
    llm_server.responder = content_rater("json")
    template = "CUSTOM RUBRIC for: $instruction\n$texts\n$format_instructions"
    judge = make_judge(workspace, llm_endpoint(), name="custom", template=template)
    add_records(dataset, [{"prompt": "What is 2+2?", "response-1": "GOOD 4", "response-2": "BAD 5"}])
    job = _run(workspace, dataset, judge)
    assert job.done == 1
    prompt = llm_server.requests[0]["messages"][-1]["content"]
    assert prompt.startswith("CUSTOM RUBRIC for: What is 2+2?") and "<Text 1>" in prompt
    assert '{"ratings"' in prompt  # the JSON format instructions (structured output is on)
    llm_server.responder = lambda body: '{"reasoning": "A is right.", "preferred": "A"}'
    pw = make_judge(workspace, llm_endpoint(), name="pw-json", method="pairwise")
    job = _run(workspace, dataset, pw)
    fmt = llm_server.requests[-1]["response_format"]
    assert fmt["json_schema"]["schema"]["properties"]["preferred"]["enum"] == ["A", "B", "tie"]
    # "A" in both orders: inconsistent -> a tie with score 0
    s = Suggestion.objects.get(agent=pw.agent)
    assert s.score == 0.0 and s.raw["consistent"] is False


def test_retry_judges_the_failed_records_again_and_keeps_the_failed_output(workspace, dataset, llm_server,
                                                                            llm_endpoint):
    from annotation.jobs import job_retry_failed

    refuse = {"on": True}

    def respond(body):
        texts = shown_texts(body)
        if refuse["on"] and any("NEVER" in t for t in texts):
            return "I'm sorry, but I can't help with rating these texts."
        return ratings_as_json([5 if "GOOD" in t else 1 for t in texts])

    llm_server.responder = respond
    judge = make_judge(workspace, llm_endpoint(), max_parse_retries=1)
    ok, never = add_records(dataset, [{"prompt": "Q", "response-1": "GOOD", "response-2": "y"},
                                      {"prompt": "Q", "response-1": "NEVER GOOD", "response-2": "y"}])
    job = _run(workspace, dataset, judge, chunk_size=1)
    assert (job.status, job.done, job.failed) == ("partly_failed", 1, 1)
    assert JobError.objects.filter(job=job).count() == 1
    sent = llm_server.count
    refuse["on"] = False
    job = job_retry_failed(job=job)
    assert job.status == "queued"
    assert list(job.chunks.filter(status="pending").values_list("index", flat=True)) == [1]  # only never's chunk
    job = job_run_inline(job=job)
    assert (job.status, job.done, job.failed) == ("succeeded", 2, 0)
    assert llm_server.count == sent + 1  # the failed record alone was asked again, once
    assert JudgeVerdict.objects.get(job=job, record=never).status == "ok"
    assert Suggestion.objects.filter(record=never).count() == 1 and not JobError.objects.filter(job=job).exists()
    out = JudgeOutput.objects.get(record=never)
    assert out.error == "" and len(out.failed_attempts) == 2  # the refusals are kept
    assert "can't help" in out.failed_attempts[0]["text"]
    with pytest.raises(Exception, match="no failed records; nothing to resume"):
        job_retry_failed(job=job)


def test_a_duplicate_run_of_a_chunk_still_going_when_the_job_finished_counts_nothing_again(
        workspace, dataset, llm_server, llm_endpoint):
    """The flake of the real-worker test (done 50 != 40): a redelivered copy of a chunk (acks_late after
    a SIGKILL, or sent twice) passed the "not done yet" check while the first copy was running; the
    first copy finished the job (counts from the verdicts), then the second went on and counted the
    chunk's verdicts on top."""
    from annotation.models import Job

    llm_server.responder = content_rater("json")
    judge = make_judge(workspace, llm_endpoint())
    add_records(dataset, [{"prompt": f"Q{i}", "response-1": "GOOD", "response-2": "BAD"} for i in range(5)])
    job = _run(workspace, dataset, judge)
    assert (job.status, job.done, job.failed) == (Job.Status.SUCCEEDED, 5, 0)
    chunk_run_again(job, 0)  # the straggling copy
    job.refresh_from_db()
    assert (job.done, job.failed) == (5, 0)
    assert JudgeVerdict.objects.filter(job=job).count() == 5
    assert llm_server.count == 5


def test_a_chunk_redelivered_while_its_first_copy_finishes_the_job_is_a_no_op(
        workspace, dataset, llm_server, llm_endpoint, monkeypatch):
    """The second copy passed the unlocked "not done" check; the first copy then finished the chunk
    and the job. The second copy must not reset the finished job's counters nor run the chunk."""
    from annotation import jobs
    from annotation.models import Job

    llm_server.responder = content_rater("json")
    judge = make_judge(workspace, llm_endpoint())
    add_records(dataset, [{"prompt": f"Q{i}", "response-1": "GOOD", "response-2": "BAD"} for i in range(5)])
    job = judge_job_create(workspace=workspace, dataset=dataset, judge=judge, start=False)
    real_handler_for, raced = jobs.job_handler_for, []

    def first_copy_finishes_meanwhile(kind):
        if not raced:
            raced.append("racing")
            raced[0] = jobs.job_chunk_execute(job_id=job.pk, index=0)
        return real_handler_for(kind)

    monkeypatch.setattr(jobs, "job_handler_for", first_copy_finishes_meanwhile)
    assert jobs.job_chunk_execute(job_id=job.pk, index=0) == "done-already"
    assert raced == ["ok"]
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == (Job.Status.SUCCEEDED, 5, 0)
    assert job.chunks.get(index=0).attempts == 1
    assert llm_server.count == 5


def test_a_copy_of_a_chunk_flushing_between_the_other_copys_reset_and_plan_is_counted_once(
        workspace, dataset, llm_server, llm_endpoint, monkeypatch):
    """Two copies of one chunk at once: the first writes its verdicts after the second reset the
    chunk's counters but before the second looked for verdicts already written. The job's counters
    never exceed the verdicts."""
    from annotation.jobs import ChunkContext, job_chunk_execute
    from generation.llm import chat_many
    from judging.services import handler as services

    monkeypatch.setattr(services, "FLUSH_SECONDS", 3600.0)  # the first copy writes when the test says so
    llm_server.responder = content_rater("json")
    judge = make_judge(workspace, llm_endpoint())
    add_records(dataset, [{"prompt": f"Q{i}", "response-1": "GOOD", "response-2": "BAD"} for i in range(4)])
    job = judge_job_create(workspace=workspace, dataset=dataset, judge=judge, start=False)
    chunk = job.chunks.get(index=0)
    first = services._ChunkRun(job, chunk, ChunkContext(job, chunk))
    todo = first.plan()
    chat_many(first.judge.endpoint, [first.request_for(p, key) for p, key in todo], on_result=first.on_result)
    real_plan, seen = services._ChunkRun.plan, {}

    def plan_after_the_first_copy_wrote(run):
        first.flush()
        todo = real_plan(run)
        job.refresh_from_db()
        seen["done"], seen["verdicts"] = job.done, JudgeVerdict.objects.filter(job=job).count()
        return todo

    monkeypatch.setattr(services._ChunkRun, "plan", plan_after_the_first_copy_wrote)
    assert job_chunk_execute(job_id=job.pk, index=0) == "ok"
    assert seen == {"done": 4, "verdicts": 4}
    job.refresh_from_db()
    assert (job.done, job.failed) == (4, 0)
    assert llm_server.count == 4


def test_a_graded_preference_question_gets_a_suggestion_it_can_take(workspace, dataset, llm_server, llm_endpoint,
                                                                    admin_user):
    """A dataset that asks a graded preference (no ranking) is judged too: the suggestion names the better
    response and a strength read from how sure the judge is, and a tie is the scale's "about the same";
    a scale that cannot say a tie gets no suggestion rather than one the question would refuse. The
    annotate page pre-fills the suggestion as the annotator's choice."""
    import re

    from django.test import Client

    from annotation.models import Question
    from annotation.validation import question_specs_validate

    dataset.questions.all().delete()
    fields = {"prompt", "response-1", "response-2"}
    [graded] = question_specs_validate([{"name": "graded", "kind": "preference",
                                         "options": {"compares": ["response-1", "response-2"]}}], fields)
    [strict] = question_specs_validate([{"name": "strict", "kind": "preference",
                                         "options": {"compares": ["response-1", "response-2"],
                                                     "scale": [{"label": "much better", "value": 2},
                                                               {"label": "better", "value": 1}]}}], fields)
    for i, spec in enumerate((graded, strict)):
        Question.objects.create(dataset=dataset, **{**spec, "position": i})
    llm_server.responder = content_rater("json")
    judge = make_judge(workspace, llm_endpoint(), aspect="helpfulness")
    records = add_records(dataset, [
        {"prompt": "Q1", "response-1": "a GOOD answer", "response-2": "a BAD answer"},   # 5 vs 1: sure
        {"prompt": "Q2", "response-1": "an OK answer", "response-2": "a GOOD answer"},   # 3 vs 5: less sure
        {"prompt": "Q3", "response-1": "an OK answer", "response-2": "another OK one"},  # a tie
    ])
    job = _run(workspace, dataset, judge)
    assert job.status == "succeeded", job.error
    got = {(s.record_id, s.question.name): s.value for s in Suggestion.objects.filter(record__dataset=dataset)}
    assert got[(records[0].pk, "graded")] == {"preferred": "response-1", "strength": 3}   # much better
    assert got[(records[1].pk, "graded")] == {"preferred": "response-2", "strength": 2}   # better
    assert got[(records[2].pk, "graded")] == {"preferred": "response-1", "strength": 0}   # about the same
    assert got[(records[0].pk, "strict")] == {"preferred": "response-1", "strength": 2}
    assert (records[2].pk, "strict") not in got  # no tie level: the annotator chooses
    client = Client()
    client.force_login(admin_user)
    html = client.get(f"/datasets/{dataset.pk}/annotate/").content.decode()  # the tie first: the least sure
    assert f'data-record="{records[2].pk}"' in html or f"/records/{records[2].pk}/" in html
    assert re.search(r'name="q__graded" value="response-1:0"\s+checked', html), "the suggestion is pre-filled"


@pytest.mark.django_db(transaction=True)
def test_an_inline_run_on_postgresql_overlaps_two_chunks_and_keeps_the_endpoint_limit(
        require_postgres, workspace, dataset, llm_server, llm_endpoint, monkeypatch):
    """Outside a transaction on PostgreSQL, job_run_inline runs two chunks at once (the next one plans
    and fills the endpoint's slots while the last calls of the other finish): still one verdict and
    one suggestion per record, no record called twice, never more in flight than the endpoint allows."""
    import threading

    import annotation.jobs as jobs

    active, most, lock = [0], [0], threading.Lock()
    execute = jobs.job_chunk_execute

    def spy(**kw):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            return execute(**kw)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(jobs, "job_chunk_execute", spy)
    llm_server.responder = content_rater("json")
    llm_server.latency = 0.05
    endpoint = llm_endpoint(supports_json_schema=False, max_concurrency=4)
    judge = make_judge(workspace, endpoint, aspect="helpfulness")
    records = add_records(dataset, [{"prompt": f"Q{i}", "response-1": f"a GOOD answer {i}", "response-2": "a BAD one"}
                                    for i in range(40)])
    job = judge_job_create(workspace=workspace, dataset=dataset, judge=judge, start=False, chunk_size=5)
    ended = []
    job = job_run_inline(job=job, on_chunk=lambda index, outcome: ended.append((index, outcome)))
    assert job.status == "succeeded", job.error
    assert (job.total, job.done, job.failed) == (40, 40, 0)
    assert sorted(ended) == [(i, "ok") for i in range(8)]
    assert most[0] == 2
    assert llm_server.count == 40
    assert llm_server.max_in_flight == 4
    assert JudgeVerdict.objects.filter(job=job).count() == 40
    values = {s.record_id: s.value for s in Suggestion.objects.filter(record__dataset=dataset)}
    assert values == {r.pk: [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}] for r in records}
