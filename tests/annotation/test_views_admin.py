"""Admin pages: create a dataset, import a file with live progress and rejected lines, export,
members and roles, publish."""
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from annotation.models import Dataset, Job, JobError, Membership, Record
from preflab.celery import app as celery_app
from tests.factories import DatasetFactory, JobFactory, RecordFactory
from tests.helpers import login


@pytest.fixture
def eager():
    """Run job chunks in-process (the Celery task runs when the job's transaction commits)."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


BASE = {"min_submitted": "2", "show_suggestions": "on", "shuffle_responses": "on", "guidelines": "Be *fair*",
        "responses": "2", "response_kind": "markdown"}


@pytest.mark.django_db
def test_create_a_pairwise_dataset_from_the_form(admin_user, workspace):
    c = login(admin_user)
    assert c.get(reverse("dataset-create")).status_code == 200
    r = c.post(reverse("dataset-create"), {**BASE, "workspace": workspace.pk, "name": "Helpfulness v1",
                                            "preset": "pairwise", "responses": "3",
                                            "extra_questions": ["flags", "comment"], "allow_ties": "on"})
    ds = Dataset.objects.get(name="Helpfulness v1")
    assert r.status_code == 302 and r["Location"] == reverse("dashboard", args=[ds.pk])
    assert ds.workspace == workspace and ds.min_submitted == 2 and ds.allow_ties and ds.shuffle_responses
    assert ds.guidelines == "Be *fair*" and ds.status == Dataset.Status.DRAFT and ds.created_by == admin_user
    assert list(ds.fields.values_list("name", flat=True)) == ["prompt", "response-1", "response-2", "response-3"]
    ranking = ds.questions.get(name="ranking")
    assert ranking.options == {"values": ["response-1", "response-2", "response-3"]}
    assert set(ds.questions.values_list("name", flat=True)) == {"ranking", "flags", "comment"}


@pytest.mark.django_db
def test_advanced_json_errors_are_shown_and_nothing_is_created(admin_user, workspace):
    c = login(admin_user)
    r = c.post(reverse("dataset-create"), {**BASE, "workspace": workspace.pk, "name": "adv", "preset": "advanced",
                                            "fields_json": "[{\"name\": \"prompt\"", "questions_json": "[]"})
    assert r.status_code == 422 and "not valid JSON" in r.content.decode()
    fields = json.dumps([{"name": "prompt"}, {"name": "a"}, {"name": "b"}])
    questions = json.dumps([{"name": "rank", "kind": "ranking", "options": {"values": ["a", "zzz"]}}])
    r = c.post(reverse("dataset-create"), {**BASE, "workspace": workspace.pk, "name": "adv", "preset": "advanced",
                                            "fields_json": fields, "questions_json": questions})
    html = r.content.decode()
    assert r.status_code == 422
    assert "questions[0].options.values" in html and "not fields of this dataset: zzz" in html
    assert "zzz" in html  # what was typed is still in the editor
    assert not Dataset.objects.filter(name="adv").exists()
    questions = json.dumps([{"name": "rank", "kind": "ranking", "options": {"values": ["a", "b"]}}])
    r = c.post(reverse("dataset-create"), {**BASE, "workspace": workspace.pk, "name": "adv", "preset": "advanced",
                                            "fields_json": fields, "questions_json": questions})
    assert r.status_code == 302 and Dataset.objects.get(name="adv").questions.get().name == "rank"


@pytest.mark.django_db
def test_cannot_create_a_dataset_in_a_workspace_i_do_not_administer(admin_user, workspace):
    other = DatasetFactory().workspace  # admin_user is not a member there
    r = login(admin_user).post(reverse("dataset-create"), {**BASE, "workspace": other.pk, "name": "sneaky",
                                                           "preset": "pairwise"})
    assert r.status_code == 422 and not Dataset.objects.filter(name="sneaky").exists()


@pytest.mark.django_db
def test_import_file_runs_a_job_with_progress_and_rejected_lines(admin_user, dataset, eager,
                                                                 django_capture_on_commit_callbacks):
    lines = [json.dumps({"external_id": f"r{i}", "fields": {"prompt": f"p{i}", "response-1": "a", "response-2": "b"}})
             for i in range(5)]
    lines.insert(2, "{not json")
    lines.append(json.dumps({"external_id": "bad", "fields": {"prompt": "p", "nope": "x"}}))
    upload = SimpleUploadedFile("batch.jsonl", ("\n".join(lines) + "\n").encode(), content_type="application/x-ndjson")
    c = login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        r = c.post(reverse("dataset-import", args=[dataset.pk]), {"file": upload})
    job = Job.objects.get(kind="import", dataset=dataset)
    assert r.status_code == 302 and r["Location"] == reverse("job-detail", args=[job.pk])
    job.refresh_from_db()
    assert job.status == Job.Status.PARTLY_FAILED and job.done == 5 and job.failed == 2
    assert Record.objects.filter(dataset=dataset).count() == 5
    html = c.get(r["Location"]).content.decode()
    assert "Rejected lines" in html and ">3</td>" in html and ">7</td>" in html  # line numbers
    progress = c.get(reverse("job-progress", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert progress.status_code == 286  # htmx stops polling: the job has ended
    assert b"partly failed" in progress.content and b"hx-trigger" not in progress.content
    assert JobError.objects.filter(job=job).count() == 2


@pytest.mark.django_db
def test_progress_partial_polls_while_the_job_runs(admin_user, dataset):
    job = JobFactory(kind="import", workspace=dataset.workspace, dataset=dataset, status=Job.Status.RUNNING,
                     total=200, done=50, failed=10)
    r = login(admin_user).get(reverse("job-progress", args=[job.pk]), HTTP_HX_REQUEST="true")
    html = r.content.decode()
    assert r.status_code == 200
    assert 'hx-trigger="every 1s"' in html and reverse("job-progress", args=[job.pk]) in html
    assert 'aria-valuenow="30"' in html and "10 rejected" in html


@pytest.mark.django_db
def test_import_without_a_known_format_asks_for_one(admin_user, dataset):
    upload = SimpleUploadedFile("batch.txt", b"{}\n")
    r = login(admin_user).post(reverse("dataset-import", args=[dataset.pk]), {"file": upload})
    assert r.status_code == 422 and "choose one" in r.content.decode()
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_export_job_writes_a_file_to_download(admin_user, dataset, eager, django_capture_on_commit_callbacks):
    from annotation.services import response_upsert

    rec = RecordFactory(dataset=dataset)
    response_upsert(user=admin_user, record=rec, values={"ranking": ["response-2", "response-1"]}, status="submitted")
    c = login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        r = c.post(reverse("dataset-export", args=[dataset.pk]), {"format": "jsonl", "style": "standard",
                                                                  "pairs": "best_worst", "resolve": "majority",
                                                                  "source": "human", "question": "ranking"})
    job = Job.objects.get(kind="export")
    assert r.status_code == 302 and r["Location"] == reverse("job-detail", args=[job.pk])
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.params["format"] == "jsonl"
    assert job.params["question"] == "ranking"
    html = c.get(r["Location"]).content.decode()
    assert reverse("job-download", args=[job.pk]) in html
    download = c.get(reverse("job-download", args=[job.pk]))
    rows = [json.loads(line) for line in b"".join(download.streaming_content).decode().splitlines()]
    assert rows[0]["prompt"] == rec.fields["prompt"]
    assert rows[0]["chosen"] == rec.fields["response-2"] and rows[0]["rejected"] == rec.fields["response-1"]


@pytest.mark.django_db
def test_members_add_change_role_and_remove(admin_user, workspace):
    c = login(admin_user)
    r = c.post(reverse("members", args=[workspace.pk]), {"username": "newbie", "role": "annotator",
                                                          "password": "newbie-pass-1"})
    assert r.status_code == 302
    m = Membership.objects.get(workspace=workspace, user__username="newbie")
    assert m.role == "annotator"
    assert Client().login(username="newbie", password="newbie-pass-1")
    c.post(reverse("members", args=[workspace.pk]), {"username": "newbie", "role": "admin"})
    m.refresh_from_db()
    assert m.role == "admin"
    html = c.get(reverse("members", args=[workspace.pk])).content.decode()
    assert 'data-member="newbie"' in html
    r = c.post(reverse("members", args=[workspace.pk]), {"username": "x", "role": "annotator", "password": "short"})
    assert r.status_code == 422 and "at least 8" in r.content.decode()
    c.post(reverse("member-remove", args=[workspace.pk, m.user_id]))
    assert not Membership.objects.filter(pk=m.pk).exists()
    c.post(reverse("member-remove", args=[workspace.pk, admin_user.pk]))  # not yourself
    assert Membership.objects.filter(workspace=workspace, user=admin_user).exists()


@pytest.mark.django_db
def test_publish_opens_a_draft_dataset_to_annotators(admin_user, annotator, workspace):
    ds = DatasetFactory(workspace=workspace, status=Dataset.Status.DRAFT)
    RecordFactory(dataset=ds)
    assert login(annotator).get(reverse("annotate", args=[ds.pk])).status_code == 403
    r = login(admin_user).post(reverse("dataset-publish", args=[ds.pk]))
    assert r.status_code == 302
    ds.refresh_from_db()
    assert ds.status == Dataset.Status.PUBLISHED
    assert login(annotator).get(reverse("annotate", args=[ds.pk])).status_code == 200


@pytest.mark.django_db
def test_admin_navigation_only_for_workspace_admins(admin_user, annotator):
    admin_html = login(admin_user).get("/").content.decode()
    anno_html = login(annotator).get("/").content.decode()
    for link in ('href="/datasets/"', 'href="/generation/"', 'href="/judging/"', 'href="/workspaces/"'):
        assert link in admin_html and link not in anno_html
    assert "hx-boost=\"true\"" in anno_html and "X-CSRFToken" in anno_html
    assert "/static/vendor/htmx-2.0.8.min.js" in anno_html


@pytest.mark.django_db
def test_dashboard_export_links_stream_triplets_with_the_session(admin_user, dataset):
    from annotation.services import response_upsert

    rec = RecordFactory(dataset=dataset)
    response_upsert(user=admin_user, record=rec, values={"ranking": ["response-1", "response-2"]}, status="submitted")
    c = login(admin_user)
    html = c.get(reverse("dashboard", args=[dataset.pk])).content.decode()
    links = re.findall(r'data-export="([a-z]+)-([a-z]+)" href="([^"]+)"', html)
    assert len(links) == 6
    for fmt, style, href in links:
        r = c.get(href.replace("&amp;", "&"))
        assert r.status_code == 200, (fmt, style, r.status_code)
        body = b"".join(r.streaming_content) if r.streaming else r.content
        if fmt == "jsonl":
            row = json.loads(body.decode().splitlines()[0])
            assert row["chosen"] == (rec.fields["response-1"] if style == "standard"
                                     else [{"role": "assistant", "content": rec.fields["response-1"]}])
        elif fmt == "csv":
            assert body.decode().splitlines()[0].startswith("prompt,chosen,rejected")
        else:
            assert body[:4] == b"PAR1"


@pytest.mark.django_db
def test_import_preference_pairs_to_clean_them(admin_user, dataset, eager, django_capture_on_commit_callbacks):
    lines = [json.dumps({"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}) for i in range(4)]
    upload = SimpleUploadedFile("pairs.jsonl", ("\n".join(lines) + "\n").encode())
    with django_capture_on_commit_callbacks(execute=True):
        r = login(admin_user).post(reverse("dataset-import", args=[dataset.pk]), {"file": upload, "format": "pairs"})
    assert r.status_code == 302
    job = Job.objects.get(kind="import")
    assert job.status == Job.Status.SUCCEEDED and job.done == 4
    rec = Record.objects.get(dataset=dataset, fields__prompt="q0")
    assert {rec.fields["response-1"], rec.fields["response-2"]} == {"good 0", "bad 0"}
