"""Unpublish, archive and delete a dataset from its pages (workspace admins), and a deletion whose
number of SQL statements does not grow with the number of records."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import Dataset, Job, JobChunk, Lease, Record, Response, Suggestion
from annotation.services import dataset_delete
from tests.factories import DatasetFactory, JobFactory, RecordFactory, ResponseFactory, SuggestionFactory
from tests.helpers import login

pytestmark = pytest.mark.django_db



def _filled(dataset, n: int, user) -> None:
    for i in range(n):
        rec = RecordFactory(dataset=dataset)
        ResponseFactory(record=rec, user=user)
        SuggestionFactory(record=rec)
        if i % 2 == 0:
            Lease.objects.create(record=rec, dataset=dataset, user=user,
                                 expires_at="2099-01-01T00:00:00Z")
    job = JobFactory(workspace=dataset.workspace, dataset=dataset, kind="import")
    JobChunk.objects.create(job=job, index=0)


def test_unpublish_and_archive_from_the_dashboard(admin_user, dataset, annotator):
    dataset.status = Dataset.Status.PUBLISHED
    dataset.save()
    c = login(admin_user)
    page = c.get(reverse("dashboard", args=[dataset.pk])).content.decode()
    assert 'value="unpublish"' in page and 'value="archive"' in page and "Delete…" in page
    r = c.post(reverse("dataset-status", args=[dataset.pk]), {"action": "unpublish"}, follow=True)
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.DRAFT and "is unpublished" in r.content.decode()
    r = c.post(reverse("dataset-status", args=[dataset.pk]), {"action": "archive"}, follow=True)
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.ARCHIVED and "is archived" in r.content.decode()
    # an archived dataset is closed to annotators
    assert login(annotator).get(reverse("annotate", args=[dataset.pk])).status_code == 403
    assert c.post(reverse("dataset-status", args=[dataset.pk]), {"action": "drop"}).status_code == 400


def test_annotators_and_other_workspaces_cannot_change_or_delete(dataset, annotator):
    c = login(annotator)
    assert c.post(reverse("dataset-status", args=[dataset.pk]), {"action": "archive"}).status_code == 403
    assert c.post(reverse("dataset-delete", args=[dataset.pk]), {"confirm_name": dataset.name}).status_code == 403
    other = DatasetFactory()
    from tests.factories import MembershipFactory, UserFactory
    stranger = UserFactory()
    MembershipFactory(user=stranger, role="admin")
    assert login(stranger).post(reverse("dataset-delete", args=[dataset.pk]),
                                {"confirm_name": dataset.name}).status_code == 404
    assert Dataset.objects.filter(pk__in=[dataset.pk, other.pk]).count() == 2


def test_delete_asks_for_the_name_then_deletes_everything(admin_user, dataset):
    _filled(dataset, 3, admin_user)
    keep = DatasetFactory(workspace=dataset.workspace)
    _filled(keep, 2, admin_user)
    c = login(admin_user)
    page = c.get(reverse("dataset-delete", args=[dataset.pk])).content.decode()
    assert 'data-count="records">3<' in page and 'data-count="responses">3<' in page
    r = c.post(reverse("dataset-delete", args=[dataset.pk]), {"confirm_name": "wrong"})
    assert r.status_code == 422 and "nothing was deleted" in r.content.decode()
    assert Record.objects.filter(dataset=dataset).count() == 3
    r = c.post(reverse("dataset-delete", args=[dataset.pk]), {"confirm_name": dataset.name}, follow=True)
    assert r.redirect_chain[-1][0] == reverse("dataset-list")
    assert "deleted with its 3 records and 3 answers" in r.content.decode()
    assert not Dataset.objects.filter(pk=dataset.pk).exists()
    for model in (Record, Response, Lease, Job):
        assert not model.objects.filter(dataset_id=dataset.pk).exists(), model
    assert not Suggestion.objects.filter(record__dataset_id=dataset.pk).exists()
    # the other dataset is untouched
    assert Record.objects.filter(dataset=keep).count() == 2 and Response.objects.filter(dataset=keep).count() == 2
    assert Suggestion.objects.filter(record__dataset=keep).count() == 2 and Job.objects.filter(dataset=keep).count() == 1


def test_delete_runs_a_fixed_number_of_statements_whatever_the_size(admin_user, workspace):
    """No per-row work: deleting 40 records takes as many SQL statements as deleting 4."""
    small, big = DatasetFactory(workspace=workspace), DatasetFactory(workspace=workspace)
    _filled(small, 4, admin_user)
    _filled(big, 40, admin_user)
    with CaptureQueriesContext(connection) as q_small:
        dataset_delete(dataset=small)
    with CaptureQueriesContext(connection) as q_big:
        counts = dataset_delete(dataset=big)
    assert counts == {"records": 40, "responses": 40}
    assert len(q_small.captured_queries) == len(q_big.captured_queries)
    assert not Record.objects.exists() and not Response.objects.exists() and not Suggestion.objects.exists()


def test_settings_page_changes_the_overlap_and_refuses_bad_input(admin_user, workspace, annotator):
    ds = DatasetFactory(workspace=workspace, min_submitted=1, name="Mine")
    DatasetFactory(workspace=workspace, name="Taken")
    rec = RecordFactory(dataset=ds)
    ResponseFactory(record=rec, user=annotator)
    Record.objects.filter(pk=rec.pk).update(submitted_count=1, completed=True)
    c = login(admin_user)
    dash = c.get(reverse("dashboard", args=[ds.pk])).content.decode()
    assert reverse("dataset-settings", args=[ds.pk]) + "#id_min_submitted" in dash  # from the agreement hint
    url = reverse("dataset-settings", args=[ds.pk])
    assert 'value="1"' in c.get(url).content.decode()
    form = {"name": "Mine", "guidelines": "Be kind", "min_submitted": "2", "shuffle_responses": "on"}
    r = c.post(url, {**form, "name": "Taken"})
    assert r.status_code == 422 and "a dataset with this name exists" in r.content.decode()
    r = c.post(url, {**form, "min_submitted": "0"})
    assert r.status_code == 422
    ds.refresh_from_db()
    assert (ds.name, ds.min_submitted) == ("Mine", 1)
    r = c.post(url, form, follow=True)
    assert "Settings of “Mine” saved." in r.content.decode()
    ds.refresh_from_db()
    assert (ds.min_submitted, ds.guidelines, ds.shuffle_responses, ds.allow_ties) == (2, "Be kind", True, False)
    assert not Record.objects.get(pk=rec.pk).completed  # reopened for a second answer
    assert login(annotator).post(url, form).status_code == 403


def test_a_large_dataset_is_archived_then_deleted_by_a_job(admin_user, workspace, settings,
                                                           django_capture_on_commit_callbacks):
    from preflab.celery import app as celery_app

    settings.PREFLAB_DELETE_IN_REQUEST_MAX = 3
    ds = DatasetFactory(workspace=workspace, name="Huge")
    _filled(ds, 5, admin_user)
    c = login(admin_user)
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            r = c.post(reverse("dataset-delete", args=[ds.pk]), {"confirm_name": "Huge"})
    finally:
        celery_app.conf.task_always_eager = False
    job = Job.objects.get(kind="dataset_delete")
    assert r.status_code == 302 and r["Location"] == reverse("job-detail", args=[job.pk])
    job.refresh_from_db()
    assert (job.status, job.total, job.done) == ("succeeded", 5, 5)
    assert not Dataset.objects.filter(pk=ds.pk).exists() and not Record.objects.filter(dataset_id=ds.pk).exists()
    page = c.get(reverse("job-detail", args=[job.pk]))
    assert page.status_code == 200 and "is archived and being deleted by a background job" in page.content.decode()
    assert '<span class="badge badge-ok">deleted</span>' in page.content.decode()


def test_records_go_in_batches(admin_user, dataset):
    from annotation.services import dataset_records_delete

    _filled(dataset, 5, admin_user)
    assert [dataset_records_delete(dataset_id=dataset.pk, limit=2) for _ in range(4)] == [2, 2, 1, 0]
    assert not Response.objects.filter(dataset=dataset).exists() and not Lease.objects.filter(dataset=dataset).exists()
    assert Dataset.objects.filter(pk=dataset.pk).exists()
