"""Security of the browser pages: workspace isolation (404), roles (403), CSRF on every POST,
untrusted record text escaped or sanitized. (The "never runs in a browser" check is in
tests/browser/test_annotate_browser.py.)"""
import re

import pytest
from django.test import Client
from django.urls import reverse

from annotation.models import Dataset, Field, Job, Membership, Question, Response
from tests.factories import (
    DatasetFactory,
    FieldFactory,
    JobFactory,
    MembershipFactory,
    RecordFactory,
    SuggestionFactory,
    UserFactory,
    WorkspaceFactory,
)

HX = {"HTTP_HX_REQUEST": "true"}
XSS_SCRIPT = "<script>window.__pwned = 1</script>"
XSS_IMG = '<img src=x onerror="window.__pwned = 2">'


def login(user, **kwargs) -> Client:
    c = Client(**kwargs)
    c.force_login(user)
    return c


@pytest.fixture
def foreign():
    """A dataset, record and job in a workspace the test users are not members of."""
    ws = WorkspaceFactory(name="foreign-ws")
    ds = DatasetFactory(workspace=ws)
    rec = RecordFactory(dataset=ds)
    job = JobFactory(kind="import", workspace=ws, dataset=ds, status=Job.Status.SUCCEEDED,
                     output_file="/etc/hostname")
    owner = UserFactory(username="foreign-admin")
    MembershipFactory(user=owner, workspace=ws, role=Membership.Role.ADMIN)
    return {"ws": ws, "ds": ds, "rec": rec, "job": job, "owner": owner}


def foreign_gets(f):
    ds, rec, job, ws = f["ds"].pk, f["rec"].pk, f["job"].pk, f["ws"].pk
    return [reverse("annotate", args=[ds]), reverse("history", args=[ds]), reverse("history-record", args=[ds, rec]),
            reverse("dashboard", args=[ds]), reverse("dashboard-stats", args=[ds]),
            reverse("record-detail", args=[ds, rec]), reverse("dataset-import", args=[ds]),
            reverse("job-detail", args=[job]), reverse("job-progress", args=[job]), reverse("job-download", args=[job]),
            reverse("members", args=[ws])]


def foreign_posts(f):
    ds, rec, ws = f["ds"].pk, f["rec"].pk, f["ws"].pk
    return [reverse("record-respond", args=[ds, rec]), reverse("record-draft", args=[ds, rec]),
            reverse("dataset-publish", args=[ds]), reverse("dataset-export", args=[ds]),
            reverse("dataset-import", args=[ds]), reverse("members", args=[ws]),
            reverse("member-remove", args=[ws, f["owner"].pk])]


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Membership.Role.ANNOTATOR, Membership.Role.ADMIN])
def test_other_workspaces_are_404_in_pages_and_htmx_endpoints(foreign, workspace, role):
    user = UserFactory(username=f"outsider-{role}")
    MembershipFactory(user=user, workspace=workspace, role=role)  # admin of *another* workspace
    c = login(user)
    for url in foreign_gets(foreign):
        assert c.get(url).status_code == 404, url
        assert c.get(url, **HX).status_code == 404, url
    for url in foreign_posts(foreign):
        r = c.post(url, {"action": "submit", "rank__ranking__response-1": "1", "rank__ranking__response-2": "2",
                         "username": "x", "role": "annotator", "format": "jsonl"}, **HX)
        assert r.status_code == 404, url
    assert not Response.objects.exists()
    foreign["ds"].refresh_from_db()
    assert foreign["ds"].status == Dataset.Status.PUBLISHED
    assert Membership.objects.filter(workspace=foreign["ws"]).count() == 1
    html = c.get("/").content.decode()
    assert foreign["ds"].name not in html


@pytest.mark.django_db
def test_a_record_of_another_workspace_cannot_be_reached_through_my_dataset(foreign, annotator, dataset):
    c = login(annotator)
    rec = foreign["rec"]
    r = c.post(reverse("record-respond", args=[dataset.pk, rec.pk]),
               {"action": "submit", "rank__ranking__response-1": "1", "rank__ranking__response-2": "2"}, **HX)
    assert r.status_code == 404
    assert c.post(reverse("record-draft", args=[dataset.pk, rec.pk]), {}, **HX).status_code == 404
    assert c.get(reverse("history-record", args=[dataset.pk, rec.pk])).status_code == 404
    assert not Response.objects.exists()


@pytest.mark.django_db
def test_annotators_get_403_on_admin_pages_of_their_own_workspace(annotator, dataset, workspace):
    c = login(annotator)
    rec = RecordFactory(dataset=dataset)
    job = JobFactory(kind="export", workspace=workspace, dataset=dataset, status=Job.Status.SUCCEEDED)
    for url in [reverse("dashboard", args=[dataset.pk]), reverse("dashboard-stats", args=[dataset.pk]),
                reverse("record-detail", args=[dataset.pk, rec.pk]), reverse("dataset-import", args=[dataset.pk]),
                reverse("members", args=[workspace.pk]), reverse("dataset-list"), reverse("dataset-create"),
                reverse("workspace-list"), reverse("job-download", args=[job.pk])]:
        assert c.get(url).status_code == 403, url
    for url in [reverse("dataset-publish", args=[dataset.pk]), reverse("dataset-export", args=[dataset.pk]),
                reverse("members", args=[workspace.pk])]:
        assert c.post(url, {"format": "jsonl", "username": "mallory", "role": "admin"}).status_code == 403, url
    assert not Membership.objects.filter(user__username="mallory").exists()
    assert not Job.objects.filter(kind="export").exclude(pk=job.pk).exists()
    # jobs are admin work: their pages and progress partials too
    assert c.get(reverse("job-progress", args=[job.pk])).status_code == 403
    assert c.get(reverse("job-detail", args=[job.pk])).status_code == 403


@pytest.mark.django_db
def test_every_post_needs_the_csrf_token(annotator, admin_user, dataset, workspace):
    rec = RecordFactory(dataset=dataset)
    values = {"action": "submit", "rank__ranking__response-1": "1", "rank__ranking__response-2": "2"}
    anno = login(annotator, enforce_csrf_checks=True)
    for url in [reverse("record-respond", args=[dataset.pk, rec.pk]), reverse("record-draft", args=[dataset.pk, rec.pk])]:
        assert anno.post(url, values, **HX).status_code == 403, url
    admin = login(admin_user, enforce_csrf_checks=True)
    for url in [reverse("dataset-publish", args=[dataset.pk]), reverse("dataset-export", args=[dataset.pk]),
                reverse("dataset-import", args=[dataset.pk]), reverse("dataset-create"),
                reverse("members", args=[workspace.pk]), reverse("member-remove", args=[workspace.pk, annotator.pk]),
                reverse("logout")]:
        assert admin.post(url, {"username": "eve", "role": "admin", "name": "x", "format": "jsonl"}).status_code == 403, url
    assert not Response.objects.exists()
    assert Membership.objects.filter(user=annotator).exists()
    assert not Membership.objects.filter(user__username="eve").exists()
    # with the token in the header (what htmx sends from <body hx-headers>) the same POST works
    page = anno.get(reverse("annotate", args=[dataset.pk])).content.decode()
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    r = anno.post(reverse("record-respond", args=[dataset.pk, rec.pk]), values, HTTP_X_CSRFTOKEN=token, **HX)
    assert r.status_code == 200
    assert Response.objects.get(record=rec).status == "submitted"


@pytest.mark.django_db
def test_login_form_needs_the_csrf_token(annotator):
    c = Client(enforce_csrf_checks=True)
    assert c.post("/login/", {"username": "annotator-1", "password": "pw-12345678"}).status_code == 403


@pytest.mark.django_db
def test_untrusted_text_is_escaped_or_sanitized_everywhere(annotator, admin_user, workspace):
    ds = DatasetFactory(workspace=workspace, guidelines=f"Read this {XSS_SCRIPT} {XSS_IMG} [x](javascript:alert(1))")
    FieldFactory(dataset=ds, name="context", kind="chat", required=False, position=9)
    Field.objects.filter(dataset=ds, name="prompt").update(kind="text")
    rec = RecordFactory(dataset=ds, external_id='ext"><script>1</script>', fields={
        "prompt": f"plain {XSS_SCRIPT} {XSS_IMG}",
        "response-1": f"markdown {XSS_SCRIPT}\n\n{XSS_IMG}\n\n[link](javascript:alert(1))",
        "response-2": f"```html\n{XSS_SCRIPT}\n```",
        "context": [{"role": "user", "content": f"chat {XSS_IMG}"}],
    })
    q = Question.objects.get(dataset=ds, name="ranking")
    SuggestionFactory(record=rec, question=q, agent=f"agent {XSS_SCRIPT}", rationale=f"because {XSS_IMG}",
                      value=["response-1", "response-2"])
    pages = [login(annotator).get(reverse("annotate", args=[ds.pk])).content.decode(),
             login(admin_user).get(reverse("record-detail", args=[ds.pk, rec.pk])).content.decode()]
    for html in pages:
        assert "<script>window.__pwned" not in html
        assert "<img" not in html
        assert not re.search(r"<[^>]+\sonerror\s*=", html)
        assert 'href="javascript:' not in html
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert "<script>1</script>" not in pages[0]


@pytest.mark.django_db
def test_a_workspace_admin_cannot_reset_the_password_of_an_existing_account(admin_user, workspace):
    victim = UserFactory(username="other-admin")  # e.g. an admin of another workspace
    MembershipFactory(user=victim, workspace=WorkspaceFactory(name="theirs"), role=Membership.Role.ADMIN)
    r = login(admin_user).post(reverse("members", args=[workspace.pk]),
                               {"username": "other-admin", "role": "annotator", "password": "hijacked-pw-1"})
    assert r.status_code == 422 and "already exists" in r.content.decode()
    victim.refresh_from_db()
    assert victim.check_password("pw-12345678") and not victim.check_password("hijacked-pw-1")
    assert not Membership.objects.filter(workspace=workspace, user=victim).exists()
    # without a password the existing account is invited: it is no member until it accepts
    r = login(admin_user).post(reverse("members", args=[workspace.pk]), {"username": "other-admin", "role": "annotator"})
    assert r.status_code == 302 and not Membership.objects.filter(workspace=workspace, user=victim).exists()
    assert workspace.invitations.filter(invitee="other-admin").exists()


@pytest.mark.django_db
def test_job_pages_are_for_workspace_admins_only(client):
    """Jobs (imports, exports, generation, judging) are admin work: an annotator of the same
    workspace gets 403, a user of another workspace 404, on the page, the htmx partial and the download."""
    from django.urls import reverse

    from annotation.jobs import job_create
    from annotation.models import Membership
    from tests.factories import DatasetFactory, MembershipFactory, UserFactory

    dataset = DatasetFactory()
    annotator = UserFactory(username="job-annotator")
    MembershipFactory(user=annotator, workspace=dataset.workspace, role=Membership.Role.ANNOTATOR)
    outsider = UserFactory(username="job-outsider")
    MembershipFactory(user=outsider, role=Membership.Role.ADMIN)
    job = job_create(kind="export", workspace=dataset.workspace, dataset=dataset, params={"format": "jsonl"},
                     start=False)
    for name in ("job-detail", "job-progress", "job-download"):
        url = reverse(name, args=[job.pk])
        client.force_login(annotator)
        assert client.get(url, HTTP_HX_REQUEST="true").status_code == 403, name
        client.force_login(outsider)
        assert client.get(url, HTTP_HX_REQUEST="true").status_code == 404, name
