"""REST API: endpoints and generation jobs; permissions (admin only, other workspaces 404)."""
import io

import pytest

from annotation.jobs import job_run_inline
from annotation.models import Job, JobError, Membership, Record
from generation.models import Endpoint
from tests.conftest import client_for
from tests.factories import (
    DatasetFactory,
    EndpointFactory,
    JobFactory,
    JudgeFactory,
    MembershipFactory,
    UserFactory,
    WorkspaceFactory,
)

pytestmark = pytest.mark.django_db


def endpoint_body(workspace, **kw):
    body = {"workspace": workspace.pk, "name": "local-vllm", "base_url": "http://vllm:8000/v1",
            "model": "Qwen/Qwen2.5-7B-Instruct", "api_key_env": "VLLM_API_KEY", "max_concurrency": 64,
            "params": {"temperature": 0.7, "max_tokens": 512}}
    body.update(kw)
    return body


def test_endpoint_crud(admin_client_api, workspace):
    r = admin_client_api.post("/api/v1/endpoints/", endpoint_body(workspace), format="json")
    assert r.status_code == 201, r.json()
    ep = r.json()
    assert ep["api_key_env"] == "VLLM_API_KEY" and ep["params"]["temperature"] == 0.7
    r = admin_client_api.get(f"/api/v1/endpoints/?workspace={workspace.pk}")
    assert [e["name"] for e in r.json()] == ["local-vllm"]
    r = admin_client_api.patch(f"/api/v1/endpoints/{ep['id']}/", {"max_concurrency": 8, "queue": "llm"}, format="json")
    assert r.status_code == 200 and r.json()["max_concurrency"] == 8 and r.json()["queue"] == "llm"
    r = admin_client_api.post("/api/v1/endpoints/", endpoint_body(workspace), format="json")
    assert r.status_code == 400 and "exists" in r.json()["name"][0]
    assert admin_client_api.delete(f"/api/v1/endpoints/{ep['id']}/").status_code == 204
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize("change,field,reason", [
    ({"api_key": "sk-abc"}, "api_key", "never stored"),
    ({"api_key_env": "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"}, "api_key_env", "never the key"),
    ({"api_key_env": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"}, "api_key_env", "never the key"),
    ({"api_key_env": "AKIAIOSFODNN7EXAMPLE"}, "api_key_env", "never the key"),
    ({"base_url": "ftp://x"}, "base_url", "http(s) URL"),
    ({"base_url": "http://user:pw@host/v1"}, "base_url", "credentials"),
    ({"max_concurrency": 0}, "max_concurrency", "1 to 4096"),
    ({"params": {"temperature": "warm"}}, "params.temperature", "number"),
    ({"backend": "magic"}, "backend", "valid choice"),
    ({"name": "has space"}, "name", "letters"),
])
def test_endpoint_bad_input_is_400_naming_the_field(admin_client_api, workspace, change, field, reason):
    r = admin_client_api.post("/api/v1/endpoints/", endpoint_body(workspace, **change), format="json")
    assert r.status_code == 400
    assert reason in str(r.json()[field])
    assert not Endpoint.objects.exists()


def test_endpoint_permissions(workspace, admin_user, annotator, admin_client_api):
    other_ws = WorkspaceFactory()
    other_admin = UserFactory(username="other-admin")
    MembershipFactory(user=other_admin, workspace=other_ws, role=Membership.Role.ADMIN)
    mine = EndpointFactory(workspace=workspace, name="mine", model="m", base_url="http://x/v1")
    theirs = EndpointFactory(workspace=other_ws, name="theirs", model="m", base_url="http://x/v1")
    assert admin_client_api.get(f"/api/v1/endpoints/{theirs.pk}/").status_code == 404
    assert admin_client_api.patch(f"/api/v1/endpoints/{theirs.pk}/", {"model": "x"}, format="json").status_code == 404
    assert [e["name"] for e in admin_client_api.get("/api/v1/endpoints/").json()] == ["mine"]
    r = admin_client_api.post("/api/v1/endpoints/", endpoint_body(other_ws), format="json")
    assert r.status_code == 404
    ann = client_for(annotator)
    assert ann.get(f"/api/v1/endpoints/{mine.pk}/").status_code == 403
    assert ann.post("/api/v1/endpoints/", endpoint_body(workspace), format="json").status_code == 403
    assert ann.get("/api/v1/endpoints/").json() == []
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/endpoints/").status_code == 401


def test_generation_job_create_inline_status_cancel_resume(admin_client_api, workspace, llm_endpoint, llm_server):
    a, b = llm_endpoint(), llm_endpoint()
    body = {"workspace": workspace.pk, "dataset_name": "api-gen", "endpoints": [a.name, b.name], "n": 2,
            "strategy": "sample", "seed": 3, "prompts": ["Why is the sky blue?", "Name a prime."],
            "overrides": {a.name: {"temperature": 0.1}}}
    r = admin_client_api.post("/api/v1/generation-jobs/", body, format="json")
    assert r.status_code == 201, r.json()
    data = r.json()
    assert data["status"] == "queued" and data["total"] == 4 and data["endpoints"] == [a.name, b.name]
    job = Job.objects.get(pk=data["id"])
    assert job.kind == "generation" and job.dataset.name == "api-gen"
    job_run_inline(job=job)
    r = admin_client_api.get(f"/api/v1/generation-jobs/{job.pk}/")
    data = r.json()
    assert data["status"] == "succeeded" and data["done"] == 4 and data["tokens"] > 0
    assert data["result"]["records"] == 2 and data["progress"] == 1.0
    assert Record.objects.filter(dataset=job.dataset).count() == 2
    assert [j["id"] for j in admin_client_api.get("/api/v1/generation-jobs/").json()] == [job.pk]
    r = admin_client_api.post(f"/api/v1/generation-jobs/{job.pk}/cancel/")
    assert r.status_code == 400 and "cannot be cancelled" in r.json()["status"][0]
    r = admin_client_api.post(f"/api/v1/generation-jobs/{job.pk}/resume/")
    assert r.status_code == 400 and "nothing to resume" in r.json()["status"][0]


def test_generation_job_from_uploaded_csv(admin_client_api, workspace, llm_endpoint):
    ep = llm_endpoint()
    target = DatasetFactory(workspace=workspace)
    upload = io.BytesIO(b"id,question\nq1,What is 2+2?\nq2,Define entropy.\n")
    upload.name = "prompts.csv"
    r = admin_client_api.post("/api/v1/generation-jobs/", {
        "workspace": workspace.pk, "dataset": target.pk, "endpoints": ep.name, "strategy": "samples",
        "temperatures": "[0.3, 0.9]", "column": "question", "id_column": "id", "prompts_file": upload},
        format="multipart")
    assert r.status_code == 201, r.json()
    job = Job.objects.get(pk=r.json()["id"])
    assert job.input_file.endswith("prompts.csv") and "/generation/" in job.input_file
    job_run_inline(job=job)
    assert set(Record.objects.filter(dataset=target).values_list("external_id", flat=True)) == {"q1", "q2"}


def test_generation_job_bad_input(admin_client_api, workspace, llm_endpoint, annotator):
    ep = llm_endpoint()
    two = DatasetFactory(workspace=workspace)
    base = {"workspace": workspace.pk, "dataset": two.pk, "endpoints": [ep.name], "strategy": "samples",
            "prompts": ["a"]}
    cases = [
        ({"n": 3}, "dataset", "response-3"),
        ({"prompts": []}, "prompts", "exactly one of"),
        ({"endpoints": ["ghost"]}, "endpoints", "no endpoint 'ghost'"),
        ({"strategy": "sample"}, "n", "cannot draw 2"),
        ({"prompts": ["ok", ""]}, "prompts", "line 2: the prompt is empty"),
        ({"surprise": 1}, "surprise", "unknown field"),
    ]
    for change, field, reason in cases:
        r = admin_client_api.post("/api/v1/generation-jobs/", {**base, **change}, format="json")
        assert r.status_code == 400, (change, r.json())
        assert reason in str(r.json()[field]), (change, r.json())
    assert not Job.objects.exists()
    other_ws = WorkspaceFactory()
    r = admin_client_api.post("/api/v1/generation-jobs/", {**base, "workspace": other_ws.pk}, format="json")
    assert r.status_code == 404
    assert client_for(annotator).post("/api/v1/generation-jobs/", base, format="json").status_code == 403


def test_generation_job_detail_of_other_workspace_is_404(admin_client_api, workspace):
    other = JobFactory(kind="generation", workspace=WorkspaceFactory(), params={})
    assert admin_client_api.get(f"/api/v1/generation-jobs/{other.pk}/").status_code == 404
    assert admin_client_api.post(f"/api/v1/generation-jobs/{other.pk}/cancel/").status_code == 404


def test_job_errors_visible_in_status(admin_client_api, workspace, llm_endpoint, llm_server):
    ep = llm_endpoint(max_retries=0)
    llm_server.fail("500", times=1)
    r = admin_client_api.post("/api/v1/generation-jobs/", {
        "workspace": workspace.pk, "dataset_name": "err", "endpoints": [ep.name], "strategy": "samples",
        "prompts": ["a"]}, format="json")
    job = job_run_inline(job=Job.objects.get(pk=r.json()["id"]))
    data = admin_client_api.get(f"/api/v1/generation-jobs/{job.pk}/").json()
    assert data["failed"] == 1 and data["done"] == 1
    assert data["last_errors"][0]["item"] in ("1#0", "1#1") and "HTTP 500" in data["last_errors"][0]["error"]
    assert JobError.objects.filter(job=job).count() == 1


def test_endpoint_in_use_is_not_deleted(admin_client_api, workspace, llm_endpoint, tmp_path):
    from generation.services import generation_job_create

    ep = llm_endpoint()
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "x"}\n')
    job = generation_job_create(workspace=workspace, dataset_name="busy", endpoints=[ep], strategy="samples",
                                prompts_source={"file": str(path)}, start=False)
    r = admin_client_api.delete(f"/api/v1/endpoints/{ep.pk}/")
    assert r.status_code == 400 and f"running generation job(s) {job.pk}" in r.json()["endpoint"][0]
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)

    JudgeFactory(workspace=workspace, name="j1", endpoint=ep)
    r = admin_client_api.delete(f"/api/v1/endpoints/{ep.pk}/")
    assert r.status_code == 400 and "still used by" in r.json()["endpoint"][0]
    assert Endpoint.objects.filter(pk=ep.pk).exists()
