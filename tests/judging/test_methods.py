"""Pairwise (both orders, position bias), CLAIR revisions, cleaning an imported preference set,
cancel/resume."""
import io
import json
import re

import pytest

from annotation.imports import pairs_dataset_create, pairs_import
from annotation.jobs import ChunkContext, job_resume, job_run_inline
from annotation.models import Dataset, Record, Suggestion
from judging.models import JudgeVerdict
from judging.selectors import cleaning_flips
from judging.services import judge_job_create
from tests.factories import QuestionFactory, RecordFactory
from tests.judging.helpers import content_rater, make_judge, rate_by_content, shown_texts, user_prompt

pytestmark = pytest.mark.django_db

ANS_RE = re.compile(r"=== Answer A ===\n(.*?)\n\n=== Answer B ===\n(.*?)\n\n", re.DOTALL)


def pairwise_responder(body):
    a, b = ANS_RE.search(user_prompt(body)).groups()
    if "BIAS" in a or "BIAS" in b:
        return "Reasoning: The first one reads better.\nPreferred: A"  # always the first slot
    if "TIE" in a:
        return '{"reasoning": "Both are the same.", "preferred": "tie"}'
    ra, rb = rate_by_content(a), rate_by_content(b)
    pick = "A" if ra > rb else ("B" if rb > ra else "tie")
    return f"**Reasoning:** compared both.\n**Preferred:** {pick}"


def test_pairwise_both_orders_consistent_inconsistent_and_position_bias(workspace, dataset, llm_server, llm_endpoint):
    QuestionFactory(dataset=dataset, name="which", kind="rating", position=1,
                    options={"values": [0, 1, 2], "compares": ["response-1", "response-2"]})
    llm_server.responder = pairwise_responder
    endpoint = llm_endpoint(supports_json_schema=False)
    judge = make_judge(workspace, endpoint, name="pw", method="pairwise")
    rows = [("GOOD one", "BAD one"), ("BAD one", "GOOD one"), ("BIAS x", "BIAS y"), ("TIE", "TIE")]
    recs = [RecordFactory(dataset=dataset, external_id=f"p{i}",
                          fields={"prompt": "Q", "response-1": a, "response-2": b})
            for i, (a, b) in enumerate(rows)]
    job = job_run_inline(job=judge_job_create(workspace=workspace, dataset=dataset, judge=judge, start=False))
    assert job.status == "succeeded" and job.done == 4
    assert llm_server.count == 8  # two orders per record
    orders = {(m.groups()) for m in (ANS_RE.search(user_prompt(b)) for b in llm_server.requests)}
    assert ("GOOD one", "BAD one") in orders and ("BAD one", "GOOD one") in orders

    def sugg(rec, q="ranking"):
        return Suggestion.objects.get(record=rec, question__name=q)

    assert sugg(recs[0]).value == [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]
    assert sugg(recs[0]).score == 1.0 and sugg(recs[0]).agent == f"pw:{endpoint.model}"
    assert sugg(recs[0], "which").value == 1
    assert sugg(recs[1]).value[0] == {"value": "response-2", "rank": 1}
    assert sugg(recs[1], "which").value == 2
    # inconsistent (the judge picked slot A both times) -> a tie with confidence 0
    biased = sugg(recs[2])
    assert biased.value == [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 1}]
    assert biased.score == 0.0 and biased.raw["consistent"] is False
    assert sugg(recs[2], "which").value == 0
    # a consistent tie is a tie too, but not position bias
    assert sugg(recs[3]).score == 0.0 and sugg(recs[3]).raw["consistent"] is True
    for r in recs:
        r.refresh_from_db()
    assert recs[2].priority == 1.0 and recs[0].priority == 0.0
    bias = job.result["position_bias"]
    assert bias["pairs"] == 4 and bias["inconsistent"] == 1 and bias["rate"] == 0.25
    assert bias["favoured"] == "first" and bias["favoured_first"] == 1
    judge.refresh_from_db()
    assert judge.position_bias["rate"] == 0.25


def test_several_judges_disagreeing_raise_priority(workspace, dataset, llm_server, llm_endpoint):
    (rec,) = [RecordFactory(dataset=dataset, external_id="d", fields={
        "prompt": "Q", "response-1": "GOOD a", "response-2": "OK b"})]
    llm_server.responder = content_rater("json")
    j1 = make_judge(workspace, llm_endpoint(), name="j1")
    job_run_inline(job=judge_job_create(workspace=workspace, dataset=dataset, judge=j1, start=False))
    rec.refresh_from_db()
    alone = rec.priority
    assert alone == pytest.approx(0.5)  # margin 2 of 4
    llm_server.responder = lambda body: json.dumps({"ratings": [
        {"text": i + 1, "rating": 1 if "GOOD" in t else 5, "rationale": ""} for i, t in enumerate(shown_texts(body))]})
    j2 = make_judge(workspace, llm_endpoint(), name="j2")
    job_run_inline(job=judge_job_create(workspace=workspace, dataset=dataset, judge=j2, start=False))
    rec.refresh_from_db()
    assert Suggestion.objects.filter(record=rec).count() == 2
    # mean uncertainty (0.5 + 0.0) / 2 + disagreement 1.0
    assert rec.priority == pytest.approx(1.25)


def _import_pairs(workspace, pairs, name="imported"):
    ds = pairs_dataset_create(workspace=workspace, name=name)
    body = "\n".join(json.dumps(p) for p in pairs).encode()
    report = pairs_import(dataset=ds, stream=io.BytesIO(body), seed=7)
    assert report.created == len(pairs) if hasattr(report, "created") else True
    return ds


def test_cleaning_flips_lists_records_where_the_judge_prefers_the_rejected(workspace, llm_server, llm_endpoint):
    pairs = [{"id": f"x{i}", "prompt": f"Question {i}",
              "chosen": f"BAD answer A{i}" if i % 3 == 0 else f"GOOD answer A{i}",
              "rejected": f"GOOD answer B{i}" if i % 3 == 0 else f"BAD answer B{i}"} for i in range(9)]
    ds = _import_pairs(workspace, pairs)
    llm_server.responder = content_rater("json")
    judge = make_judge(workspace, llm_endpoint(), name="cleaner")
    job = job_run_inline(job=judge_job_create(workspace=workspace, dataset=ds, judge=judge, start=False))
    assert job.done == 9
    # blind: the judge never saw which answer was chosen
    for body in llm_server.requests:
        text = json.dumps(body["messages"])
        for leak in ("original_chosen", "import_pairs", "response-1", "response-2", "chosen", "rejected"):
            assert leak not in text
    flips = list(cleaning_flips(ds))
    assert sorted(f.external_id for f in flips) == ["x0", "x3", "x6"]
    for f in flips:
        rec = Record.objects.get(pk=f.record_id)
        assert f.original_chosen == rec.metadata["original_chosen"]
        assert rec.fields[f.judge_prefers] == f"GOOD answer B{f.external_id[1:]}"  # the original rejected one
        assert f.margin == 4.0
    assert list(cleaning_flips(ds, agent="someone-else")) == []
    assert job.result["cleaning_flips"] == 3


def test_clair_writes_contrastive_pairs_into_a_target_dataset(workspace, llm_server, llm_endpoint):
    ds = _import_pairs(workspace, [{"id": f"c{i}", "prompt": f"What is {i}+{i}?", "chosen": f"It is {i * 2 + 1}.",
                                    "rejected": "No idea"} for i in range(3)], name="src")

    def respond(body):
        answer = re.search(r"=== Student answer ===\n(.*?)\n\n", user_prompt(body), re.DOTALL).group(1)
        if "It is 1." in answer:
            return "<reasoning>Nothing to fix.</reasoning>\n<revision>\nIt is 1.\n</revision>"
        fixed = re.sub(r"\d+", lambda m: str(int(m.group()) - 1), answer)
        return f"<reasoning>\nThe sum is off by one.\n</reasoning>\n<revision>\n{fixed}\n</revision>"

    llm_server.responder = respond
    endpoint = llm_endpoint(supports_json_schema=False)
    judge = make_judge(workspace, endpoint, name="clair", method="clair")
    job = judge_job_create(workspace=workspace, dataset=ds, judge=judge, start=False)
    job = job_run_inline(job=job)
    assert job.status == "succeeded" and job.done == 3
    target = Dataset.objects.get(pk=job.params["target_dataset_id"])
    assert target.name == "src-clair"
    records = {r.metadata["source_external_id"]: r for r in target.records.all()}
    assert set(records) == {"c1", "c2"}  # c0 was left unchanged: no pair
    r = records["c2"]
    assert r.fields == {"prompt": "What is 2+2?", "response-1": "It is 4.", "response-2": "It is 5."}
    assert r.metadata["method"] == "clair" and r.metadata["revision_field"] == "response-1"
    assert r.metadata["source_record"] == Record.objects.get(dataset=ds, external_id="c2").pk
    assert r.external_id == f"clair-{job.pk}-{r.metadata['source_record']}"
    s = Suggestion.objects.get(record=r)
    assert s.agent == f"clair:{endpoint.model}"
    assert s.value == [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]
    assert "off by one" in s.rationale
    skipped = JudgeVerdict.objects.get(job=job, record__external_id="c0")
    assert skipped.status == "skipped"
    # the source dataset got no suggestions
    assert not Suggestion.objects.filter(record__dataset=ds).exists()


def test_clair_target_records_keep_the_source_system_prompt_and_export_it(workspace, llm_server, llm_endpoint):
    from annotation.exports import triplets_export

    ds = _import_pairs(workspace, [{"id": "s1", "prompt": "What is 1+1?", "chosen": "It is 3.", "rejected": "No",
                                    "system": "You are a terse math tutor."},
                                   {"id": "s2", "prompt": "What is 2+2?", "chosen": "It is 5.", "rejected": "No"}],
                       name="sys")

    def respond(body):
        answer = re.search(r"=== Student answer ===\n(.*?)\n\n", user_prompt(body), re.DOTALL).group(1)
        fixed = re.sub(r"\d+", lambda m: str(int(m.group()) - 1), answer)
        return f"<reasoning>\nOff by one.\n</reasoning>\n<revision>\n{fixed}\n</revision>"

    llm_server.responder = respond
    judge = make_judge(workspace, llm_endpoint(supports_json_schema=False), name="clair", method="clair")
    job = job_run_inline(job=judge_job_create(workspace=workspace, dataset=ds, judge=judge, start=False))
    assert job.status == "succeeded"
    target = Dataset.objects.get(pk=job.params["target_dataset_id"])
    records = {r.metadata["source_external_id"]: r for r in target.records.all()}
    assert records["s1"].metadata["system"] == "You are a terse math tutor."
    assert "system" not in records["s2"].metadata  # none in the source: none made up
    rows = {r["external_id"]: r for r in triplets_export(dataset=target, source="suggestions", style="conversational")}
    assert rows[records["s1"].external_id]["prompt"] == [{"role": "system", "content": "You are a terse math tutor."},
                                                         {"role": "user", "content": "What is 1+1?"}]
    assert rows[records["s2"].external_id]["prompt"] == [{"role": "user", "content": "What is 2+2?"}]


def test_cancel_then_resume_finishes_exactly_once(workspace, dataset, llm_server, llm_endpoint, monkeypatch):
    from annotation.jobs import job_cancel
    from annotation.models import Job

    llm_server.responder = content_rater("json")
    llm_server.latency = 0.1
    judge = make_judge(workspace, llm_endpoint(max_concurrency=2))
    for i in range(20):
        RecordFactory(dataset=dataset, external_id=f"c{i}",
                      fields={"prompt": "Q", "response-1": "GOOD", "response-2": f"BAD {i}"})
    job = judge_job_create(workspace=workspace, dataset=dataset, judge=judge, chunk_size=10, start=False)
    original = ChunkContext.check_cancelled

    def cancel_midway(self):
        if llm_server.count >= 3 and Job.objects.get(pk=self.job.pk).status != "cancelled" and not cancelled:
            job_cancel(job=Job.objects.get(pk=self.job.pk))
            cancelled.append(True)
        return original(self)

    cancelled: list = []
    monkeypatch.setattr(ChunkContext, "check_cancelled", cancel_midway)
    job = job_run_inline(job=job)
    assert job.status == "cancelled"
    assert 0 < job.done < 10  # stopped in the middle of the first chunk's calls
    monkeypatch.setattr(ChunkContext, "check_cancelled", original)
    job = job_resume(job=job)
    job = job_run_inline(job=job)
    assert job.status == "succeeded"
    assert (job.done, job.failed) == (20, 0)
    assert Suggestion.objects.filter(record__dataset=dataset).count() == 20
    assert JudgeVerdict.objects.filter(job=job).count() == 20
    assert llm_server.count <= 20 + 2  # at most the calls in flight at the cancel were sent twice


@pytest.mark.parametrize("template", [
    "", "plain", "$a and ${b}", "$$a costs $$5 and $a", "$unknown stays, ${also} stays", "trailing $", "$ 1 and $!",
    "${a}${a}$a_b $b.c", "\n$instruction\n\n$texts\n", "{\"json\": \"$a\"} ${b}x",
])
def test_prompt_rendering_is_string_templates_safe_substitute(template):
    from string import Template

    from judging.judges import _render

    values = {"a": "A$b {x}", "b": "${a} B", "instruction": "Say $$", "texts": "<Text 1>\n$a\n</Text 1>", "a_b": "ab"}
    assert _render(template, values) == Template(template).safe_substitute(values)
