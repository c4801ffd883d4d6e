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
