"""A judge's output holding text PostgreSQL cannot store (NUL, a lone surrogate) is stored cleaned, with a
note saying what was removed, and never fails the judge job (annotation.text)."""
import pytest
from django.urls import reverse

from annotation.jobs import job_run_inline
from annotation.models import JobError, Suggestion
from judging.models import JudgeOutput
from judging.services import judge_job_create
from tests.judging.helpers import add_records, make_judge, ratings_as_markdown

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("bad,replacement,note", [
    ("\x00", "", {"nul_removed": 1, "surrogates_replaced": 0}),
    ("\ud800", "\ufffd", {"nul_removed": 0, "surrogates_replaced": 1}),
], ids=["NUL", "lone surrogate"])
def test_judge_job_stores_cleaned_output_and_rationale_with_a_note(workspace, dataset, admin_user, client, llm_server,
                                                                   llm_endpoint, bad, replacement, note):
    llm_server.responder = lambda body: ratings_as_markdown([4, 2]).replace("deserves", f"de{bad}serves", 1)
    judge = make_judge(workspace, llm_endpoint(supports_json_schema=False))
    records = add_records(dataset, [{"prompt": "Q", "response-1": "one", "response-2": "two"}])
    job = job_run_inline(job=judge_job_create(workspace=workspace, dataset=dataset, judge=judge, start=False))
    assert job.status == "succeeded", job.error
    assert (job.done, job.failed) == (1, 0) and not JobError.objects.filter(job=job).exists()
    out = JudgeOutput.objects.get(job=job, record=records[0])
    assert f"de{replacement}serves" in out.raw_text and out.text_cleaned == note and out.error == ""
    suggestion = Suggestion.objects.get(record=records[0])
    assert sorted(item["rank"] for item in suggestion.value) == [1, 2]  # a ranking was parsed from the cleaned text
    assert f"de{replacement}serves" in suggestion.rationale
    assert suggestion.raw["text_cleaned"] == {out.call_key: note}
    client.force_login(admin_user)
    page = client.get(reverse("record-detail", args=[dataset.pk, records[0].pk])).content.decode()
    said = "1 NUL character removed" if note["nul_removed"] else "1 lone surrogate replaced by U+FFFD"
    assert f"{judge.agent} ({out.call_key}): {said}" in page
    # the judge-outputs API says it too
    outputs = client.get(f"/api/v1/judge-jobs/{job.pk}/outputs/").json()["results"]
    assert [o["text_cleaned"] for o in outputs] == [note]


def test_clair_revision_with_nul_is_written_cleaned_and_the_pair_says_so(workspace, llm_server, llm_endpoint):
    import io
    import json

    from annotation.imports import pairs_dataset_create, pairs_import
    from annotation.models import Dataset

    ds = pairs_dataset_create(workspace=workspace, name="src")
    pairs_import(dataset=ds, stream=io.BytesIO(json.dumps({"id": "c1", "prompt": "What is 2+2?", "chosen": "It is 5.",
                                                           "rejected": "No idea"}).encode()), seed=7)
    llm_server.responder = lambda body: "<reasoning>Off by one.</reasoning>\n<revision>\nIt is\x00 4.\n</revision>"
    judge = make_judge(workspace, llm_endpoint(supports_json_schema=False), name="clair", method="clair")
    job = job_run_inline(job=judge_job_create(workspace=workspace, dataset=ds, judge=judge, start=False))
    assert job.status == "succeeded" and (job.done, job.failed) == (1, 0), job.error
    pair = Dataset.objects.get(pk=job.params["target_dataset_id"]).records.get()
    assert pair.fields["response-1"] == "It is 4."
    assert pair.metadata["text_cleaned"] == {"clair": {"nul_removed": 1, "surrogates_replaced": 0}}
    assert Suggestion.objects.get(record=pair).raw["text_cleaned"] == pair.metadata["text_cleaned"]


def test_simulated_annotator_answer_with_nul_is_kept_cleaned_with_the_note(workspace, llm_server, llm_endpoint):
    from annotation.models import Response
    from judging.evaluation.models import SimulatedAnswer
    from judging.evaluation.simulation import simulated_annotator_create, simulation_run
    from tests.factories import DatasetFactory
    from tests.judging.evaluation.helpers import judge_responder, pair_records
    from tests.judging.evaluation.helpers import make_judge as make_eval_judge

    llm_server.responder = lambda body: judge_responder(body) + "\x00"
    dataset = DatasetFactory(workspace=workspace)
    pair_records(dataset, 2, seed=3)
    sim = simulated_annotator_create(workspace=workspace, name="sim", judge=make_eval_judge(workspace, llm_endpoint()))
    result = simulation_run(dataset=dataset, annotators=[sim])
    assert result.submitted == 2 and Response.objects.filter(record__dataset=dataset, status="submitted").count() == 2
    for answer in SimulatedAnswer.objects.filter(record__dataset=dataset):
        assert answer.error == "" and all("\x00" not in r["text"] for r in answer.raw)
        assert all(r["text_cleaned"] == {"nul_removed": 1, "surrogates_replaced": 0} for r in answer.raw)
