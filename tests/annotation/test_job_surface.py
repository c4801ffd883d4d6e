"""The one job surface: one page, one progress partial and one stop / resume / retry for every kind;
a kind adds its panel and hooks through its handler; status words come from one place."""
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from annotation import jobs
from annotation.job_selectors import STATUS_WORDS, job_status_word
from annotation.jobs import job_create, job_handler_for, job_retry_failed
from annotation.models import Job, JobChunk
from tests.factories import JobFactory, RecordFactory
from tests.helpers import login

pytestmark = pytest.mark.django_db



@pytest.fixture
def enqueued(monkeypatch):
    sent = []
    monkeypatch.setattr("annotation.jobs.job_enqueue", lambda *, job: sent.append(job.pk))
    return sent


def test_an_export_job_can_be_stopped_and_resumed_from_its_page(admin_user, dataset, enqueued,
                                                                 django_capture_on_commit_callbacks):
    RecordFactory(dataset=dataset)
    job = job_create(kind="export", workspace=dataset.workspace, dataset=dataset, params={"format": "jsonl"},
                     start=False)
    c = login(admin_user)
    page = c.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert reverse("job-cancel", args=[job.pk]) in page and ">Stop<" in page
    assert f'hx-get="{reverse("job-progress", args=[job.pk])}?detail=1"' in page
    r = c.post(reverse("job-cancel", args=[job.pk]))
    assert r.status_code == 302 and r["Location"] == reverse("job-detail", args=[job.pk])
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    page = c.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert reverse("job-resume", args=[job.pk]) in page and ">Resume<" in page and "cancelled" in page
    with django_capture_on_commit_callbacks(execute=True):
        c.post(reverse("job-resume", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and enqueued == [job.pk]
    # cancelling twice says why, and changes nothing
    c.post(reverse("job-cancel", args=[job.pk]))
    r = c.post(reverse("job-cancel", args=[job.pk]), follow=True)
    assert "a cancelled job cannot be cancelled" in r.content.decode()


def test_the_compact_progress_has_no_buttons_and_the_page_has_no_retry_for_kinds_without_it(admin_user, dataset):
    job = JobFactory(kind="import", workspace=dataset.workspace, dataset=dataset, name="import x",
                     status=Job.Status.SUCCEEDED, total=3, done=2, failed=1)
    c = login(admin_user)
    compact = c.get(reverse("job-progress", args=[job.pk])).content.decode()
    assert "import x" in compact and "1 rejected" in compact and "<form" not in compact
    page = c.get(reverse("job-detail", args=[job.pk])).content.decode()
    assert "Retry" not in page and reverse("job-retry", args=[job.pk]) not in page
    r = c.post(reverse("job-retry", args=[job.pk]), follow=True)
    assert "import jobs cannot retry their failed items" in r.content.decode()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    with pytest.raises(ValidationError, match="cannot retry"):
        job_retry_failed(job=job)


def test_status_words_come_from_one_place(admin_user, dataset, monkeypatch):
    job = JobFactory(kind="export", workspace=dataset.workspace, dataset=dataset, status=Job.Status.RUNNING)
    assert STATUS_WORDS == {"queued": "queued", "running": "running", "succeeded": "succeeded",
                            "partly_failed": "partly failed", "failed": "failed", "cancelled": "cancelled"}
    assert job_status_word(job) == "running"
    c = login(admin_user)
    assert '<span class="badge badge-accent">running</span>' in c.get(reverse("job-detail", args=[job.pk])).content.decode()
    monkeypatch.setattr(job_handler_for("export"), "status_words", {"running": "writing the file"}, raising=False)
    assert job_status_word(job) == "writing the file"
    assert ">writing the file</span>" in c.get(reverse("job-progress", args=[job.pk])).content.decode()
    assert ">writing the file</span>" in c.get(reverse("dashboard", args=[dataset.pk])).content.decode()


def test_old_app_job_urls_serve_only_their_own_kind(admin_user, dataset):
    job = JobFactory(kind="export", workspace=dataset.workspace, dataset=dataset, status=Job.Status.RUNNING)
    c = login(admin_user)
    for url in (f"/generation/jobs/{job.pk}/", f"/judging/jobs/{job.pk}/", f"/judging/jobs/{job.pk}/progress/"):
        assert c.get(url).status_code == 404, url
    for url in (f"/generation/jobs/{job.pk}/cancel/", f"/judging/jobs/{job.pk}/resume/"):
        assert c.post(url).status_code == 404, url
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING


def test_job_create_hands_plan_input_to_the_plan(dataset, monkeypatch):
    seen = []

    class Handler:
        kind = "plan-input-test"

        def plan(self, job, plan_input=None):
            seen.append(plan_input)
            job.total = len(plan_input or [])
            return [{"n": x} for x in plan_input or []]

    monkeypatch.setitem(jobs._HANDLERS, Handler.kind, Handler())
    job = job_create(kind=Handler.kind, workspace=dataset.workspace, dataset=dataset, plan_input=[1, 2], start=False)
    assert seen == [[1, 2]] and job.total == 2
    assert list(JobChunk.objects.filter(job=job).values_list("spec", flat=True)) == [{"n": 1}, {"n": 2}]


@pytest.mark.parametrize("done, failed, status", [(0, 0, "succeeded"), (7, 0, "succeeded"),
                                                  (7, 3, "partly_failed"), (0, 10, "failed")])
def test_a_finished_job_ends_succeeded_partly_failed_or_failed_by_its_items(dataset, done, failed, status):
    """The engine decides once, when the last chunk is done, from the counts the kind's finish left."""
    job = JobFactory(kind="export", workspace=dataset.workspace, dataset=dataset, status=Job.Status.RUNNING,
                     total=done + failed)
    JobChunk.objects.create(job=job, index=0, status=JobChunk.Status.DONE, done=done, failed=failed)
    assert jobs.job_finish_if_complete(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == (status, done, failed)
    assert jobs.job_final_status(done=done, failed=failed) == status


@pytest.mark.parametrize("kind, heading, column, counts", [
    ("import", "Rejected lines", "Line", "97 lines imported, 3 rejected (of 100)"),
    ("simulation", "Failed answers", "Annotator:record", "97 answers simulated, 3 failed (of 100)"),
])
def test_the_generic_job_page_speaks_of_the_kinds_own_items(admin_user, dataset, kind, heading, column, counts):
    from tests.factories import JobErrorFactory

    job = JobFactory(kind=kind, workspace=dataset.workspace, dataset=dataset, status=Job.Status.PARTLY_FAILED,
                     total=100, done=97, failed=3)
    JobChunk.objects.create(job=job, index=0, status=JobChunk.Status.DONE, done=97, failed=3)
    JobErrorFactory(job=job, item="7", error="bad <b>thing</b>")
    page = login(admin_user).get(reverse("job-detail", args=[job.pk])).content.decode()
    assert f"<h3>{heading}</h3>" in page and f">{column}</th>" in page and counts in page
    assert '<span class="badge badge-warn">partly failed</span>' in page and "progress-warn" in page
    assert "bad &lt;b&gt;thing&lt;/b&gt;" in page
    if kind != "import":
        assert "rejected" not in page.lower()
    compact = login(admin_user).get(reverse("dashboard", args=[dataset.pk])).content.decode()
    assert counts in compact


def test_the_api_schema_documents_every_job_status(admin_user):
    schema = login(admin_user).get("/api/schema/", {"format": "json"}).json()
    enum = schema["components"]["schemas"]["JobStatusEnum"]
    assert enum["enum"] == ["queued", "running", "succeeded", "partly_failed", "failed", "cancelled"]
    status = schema["components"]["schemas"]["GenerationJobStatus"]["properties"]["status"]
    assert "partly_failed (some items failed" in str(status)
    assert "summary" in schema["components"]["schemas"]["GenerationJobStatus"]["properties"]
