"""The one job surface: one page, one progress partial and one stop / resume / retry for every kind;
a kind adds its panel and hooks through its handler; status words come from one place."""
import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from annotation import jobs
from annotation.job_selectors import STATUS_WORDS, job_status_word
from annotation.jobs import job_create, job_handler_for, job_retry_failed
from annotation.models import Job, JobChunk
from tests.factories import JobFactory, RecordFactory

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


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
    assert STATUS_WORDS == {s: s for s in Job.Status.values}  # today: the status itself, for every kind
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
