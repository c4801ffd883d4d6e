"""How a judge job ends, said the same everywhere: a job where every record failed is "failed" (not
"succeeded" with a full green bar) on its page, in the job lists, in the API and in the CLI (exit 1)."""
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from annotation.jobs import job_resume, job_resume_or_retry, job_run_inline
from annotation.models import Job
from tests.conftest import client_for
from tests.judging.helpers import add_records, make_judge, ratings_as_json, shown_texts

pytestmark = pytest.mark.django_db

REFUSAL = "I'm sorry, but I can't help with rating these texts."


def test_a_judge_job_where_every_record_failed_is_failed_everywhere(workspace, dataset, admin_user, llm_server,
                                                                     llm_endpoint):
    refuse = {"on": True}
    llm_server.responder = lambda body: REFUSAL if refuse["on"] else ratings_as_json(
        [5 if "GOOD" in t else 1 for t in shown_texts(body)])
    judge = make_judge(workspace, llm_endpoint(), max_parse_retries=0)
    add_records(dataset, [{"prompt": f"Q{i}", "response-1": "GOOD", "response-2": "y"} for i in range(10)])

    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as ended:  # manage.py exits 1 with this line
        call_command("judge", "--dataset", str(dataset.pk), "--judge", judge.name, "--no-progress",
                     stdout=out, stderr=err)
    job = Job.objects.get(kind="judge")
    assert str(ended.value) == f"judge job {job.pk} failed: 0 records judged, 10 failed (of 10)"
    assert (job.status, job.done, job.failed) == (Job.Status.FAILED, 0, 10)

    web = Client()
    web.force_login(admin_user)
    page = web.get(f"/jobs/{job.pk}/").content.decode()
    assert '<span class="badge badge-danger">failed</span>' in page
    assert "progress-danger" in page and "progress-ok" not in page and "succeeded" not in page
    assert "rejected" not in page.replace("originally rejected", "")
    assert "Retry the 10 failed records" in page and ">Resume<" not in page
    listed = web.get("/judging/").content.decode()
    assert '<span class="badge badge-danger">failed</span>' in listed

    body = client_for(admin_user).get(f"/api/v1/judge-jobs/{job.pk}/").json()
    assert body["status"] == "failed"
    assert body["summary"] == f"judge job {job.pk} failed: 0 records judged, 10 failed (of 10)"

    # every chunk ran: nothing to resume, only the failed records to judge again
    with pytest.raises(Exception, match="the job has finished; nothing to resume"):
        job_resume(job=job)
    refuse["on"] = False
    job = job_run_inline(job=job_resume_or_retry(job=job))
    assert (job.status, job.done, job.failed) == (Job.Status.SUCCEEDED, 10, 0)


def test_a_judge_job_where_some_records_failed_is_partly_failed(workspace, dataset, admin_user, llm_server,
                                                                 llm_endpoint):
    llm_server.responder = lambda body: REFUSAL if any("NEVER" in t for t in shown_texts(body)) else ratings_as_json(
        [5 if "GOOD" in t else 1 for t in shown_texts(body)])
    judge = make_judge(workspace, llm_endpoint(), max_parse_retries=0)
    add_records(dataset, [{"prompt": "Q", "response-1": "GOOD", "response-2": "y"},
                          {"prompt": "Q", "response-1": "NEVER", "response-2": "y"},
                          {"prompt": "Q", "response-1": "GOOD", "response-2": "y"}])
    with pytest.raises(CommandError) as ended:
        call_command("judge", "--dataset", str(dataset.pk), "--judge", judge.name, "--no-progress",
                     stdout=io.StringIO(), stderr=io.StringIO())
    job = Job.objects.get(kind="judge")
    assert str(ended.value) == f"judge job {job.pk} partly failed: 2 records judged, 1 failed (of 3)"
    web = Client()
    web.force_login(admin_user)
    page = web.get(f"/jobs/{job.pk}/").content.decode()
    assert '<span class="badge badge-warn">partly failed</span>' in page and "progress-warn" in page
    assert client_for(admin_user).get(f"/api/v1/judge-jobs/{job.pk}/").json()["status"] == "partly_failed"
