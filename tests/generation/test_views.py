"""Browser pages of generation: endpoint form, job launch, live progress that stops polling."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annotation.jobs import job_run_inline
from annotation.models import Job, Record
from generation.models import Endpoint
from generation.services import generation_job_create
from tests.factories import JobErrorFactory, JobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(admin_user):
    c = Client()
    c.force_login(admin_user)
    return c


def test_endpoint_form_creates_and_rejects_keys(web, workspace):
    r = web.get("/generation/endpoints/new/")
    assert r.status_code == 200 and b"Keys are never stored" in r.content
    r = web.post("/generation/endpoints/new/", {
        "workspace": workspace.pk, "name": "oai", "backend": "openai_compatible", "base_url": "https://api.openai.com/v1",
        "model": "gpt-4o-mini", "api_key_env": "sk-proj-0123456789abcdefghijklmnopqrstuvwxyz", "max_concurrency": 8,
        "params": "{}", "timeout": 60, "max_retries": 3})
    assert r.status_code == 422 and b"never the key" in r.content
    assert not Endpoint.objects.exists()
    r = web.post("/generation/endpoints/new/", {
        "workspace": workspace.pk, "name": "oai", "backend": "openai_compatible", "base_url": "https://api.openai.com/v1",
        "model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY", "max_concurrency": 8,
        "params": '{"temperature": 0.5}', "timeout": 60, "max_retries": 3})
    assert r.status_code == 302
    page = web.get("/generation/").content.decode()
    assert "gpt-4o-mini" in page and "OPENAI_API_KEY" in page


def test_launch_form_and_live_progress(web, workspace, llm_endpoint):
    a, b = llm_endpoint(), llm_endpoint()
    r = web.get("/generation/jobs/new/")
    assert r.status_code == 200 and a.name.encode() in r.content
    upload = SimpleUploadedFile("p.jsonl", b'{"prompt": "<b>hi</b>"}\n{"prompt": "two"}\n')
    r = web.post("/generation/jobs/new/", {"workspace": workspace.pk, "endpoints": [a.pk, b.pk], "strategy": "sample",
                                            "n": 2, "seed": 1, "column": "prompt", "prompts_file": upload,
                                            "dataset_name": "ui-gen"})
    assert r.status_code == 302, r.content.decode()[:2000]
    job = Job.objects.get(kind="generation")
    assert r["Location"] == f"/jobs/{job.pk}/"  # the one job page
    page = web.get(r["Location"]).content.decode()
    assert f'hx-get="/jobs/{job.pk}/progress/?detail=1"' in page and 'id="generation-counters"' in page
    r = web.get(f"/jobs/{job.pk}/progress/?detail=1")
    assert r.status_code == 200 and b'hx-trigger="every 1s"' in r.content  # queued: keeps polling
    job_run_inline(job=job)
    r = web.get(f"/jobs/{job.pk}/progress/?detail=1")
    assert r.status_code == 286  # finished: htmx stops polling
    html = r.content.decode()
    assert "succeeded" in html and "hx-trigger" not in html and ">4</strong> / 4" in html
    page = web.get(f"/jobs/{job.pk}/").content.decode()
    assert "2 records written" in page
    # the old generation job URLs still lead there
    assert web.get(f"/generation/jobs/{job.pk}/")["Location"] == f"/jobs/{job.pk}/"
    old = web.get(f"/generation/jobs/{job.pk}/progress/")
    assert old.status_code == 286 and ">4</strong> / 4" in old.content.decode()
    assert Record.objects.filter(dataset=job.dataset).count() == 2


def test_launch_form_errors(web, workspace, llm_endpoint):
    a = llm_endpoint()
    upload = SimpleUploadedFile("p.jsonl", b'{"prompt": "x"}\n{"oops": 1}\n')
    r = web.post("/generation/jobs/new/", {"workspace": workspace.pk, "endpoints": [a.pk], "strategy": "samples",
                                            "n": 2, "seed": 0, "column": "prompt", "prompts_file": upload,
                                            "dataset_name": "bad"})
    assert r.status_code == 422 and b"line 2: no column" in r.content
    r = web.post("/generation/jobs/new/", {"workspace": workspace.pk, "endpoints": [a.pk], "strategy": "samples",
                                            "n": 2, "seed": 0, "column": "prompt"})
    assert r.status_code == 422 and b"upload a prompt file" in r.content
    assert not Job.objects.exists()


def test_errors_are_shown_escaped(web, workspace, llm_endpoint, llm_server):
    ep = llm_endpoint(max_retries=0)
    job = generation_job_create(workspace=workspace, dataset_name="esc", endpoints=[ep], strategy="samples",
                                prompts_source={"file": _file(b'{"prompt": "a"}\n')}, start=False)
    JobErrorFactory(job=job, item="1#0", error="<script>alert(1)</script>")
    page = web.get(f"/jobs/{job.pk}/").content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_annotator_and_other_workspace_cannot_see(annotator, workspace):
    from tests.factories import WorkspaceFactory

    c = Client()
    c.force_login(annotator)
    assert c.get("/generation/").status_code == 403
    other = JobFactory(kind="generation", workspace=WorkspaceFactory(), params={})
    assert c.get(f"/generation/jobs/{other.pk}/").status_code == 404
    assert c.get(f"/jobs/{other.pk}/").status_code == 404


def _file(content: bytes) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as f:
        f.write(content)
    return f.name


def test_admin_endpoint_form_rejects_a_key(workspace):
    from generation.admin import EndpointAdminForm

    data = {"workspace": workspace.pk, "name": "adm", "backend": "openai_compatible", "base_url": "http://x/v1",
            "model": "m", "api_key_env": "sk-0123456789abcdefghijklmnopqrstuvwxyz", "max_concurrency": 4,
            "params": "{}", "system_prompt": "", "queue": "", "timeout": 60, "max_retries": 3}
    form = EndpointAdminForm(data=data)
    assert not form.is_valid() and "never the key" in str(form.errors["api_key_env"])
    form = EndpointAdminForm(data={**data, "api_key_env": "OPENAI_API_KEY"})
    assert form.is_valid(), form.errors
    assert form.save().api_key_env == "OPENAI_API_KEY"


def test_the_job_page_retries_the_failed_responses(web, workspace, llm_endpoint, llm_server,
                                                   django_capture_on_commit_callbacks, monkeypatch):
    enqueued = []
    monkeypatch.setattr("annotation.jobs.job_enqueue", lambda *, job: enqueued.append(job.pk))
    ep = llm_endpoint(max_retries=0)
    llm_server.fail("500", times=1)
    job = job_run_inline(job=generation_job_create(
        workspace=workspace, dataset_name="retry", endpoints=[ep], strategy="samples",
        prompts_source={"file": _file(b'{"prompt": "a"}\n')}, start=False))
    assert (job.status, job.done, job.failed) == ("partly_failed", 1, 1)
    page = web.get(f"/jobs/{job.pk}/").content.decode()
    assert '<span class="badge badge-warn">partly failed</span>' in page
    assert f'action="/jobs/{job.pk}/retry/"' in page and "Retry the 1 failed responses" in page
    with django_capture_on_commit_callbacks(execute=True):
        r = web.post(f"/jobs/{job.pk}/retry/")
    assert r.status_code == 302 and enqueued == [job.pk]
    job = job_run_inline(job=Job.objects.get(pk=job.pk))
    assert (job.status, job.done, job.failed) == ("succeeded", 2, 0)
    assert "Retry" not in web.get(f"/jobs/{job.pk}/").content.decode()
    assert Record.objects.filter(dataset=job.dataset).count() == 1
