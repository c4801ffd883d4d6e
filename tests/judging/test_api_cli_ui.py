"""The REST API (permissions, CRUD, jobs, cleaning), the CLI and the pages of the judging app."""
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from annotation.imports import pairs_dataset_create, pairs_import
from annotation.jobs import job_run_inline
from annotation.models import Job, Membership, Record, Suggestion
from judging.models import Judge
from judging.services import judge_job_create
from tests.conftest import client_for
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, UserFactory, WorkspaceFactory
from tests.judging.helpers import content_rater, make_judge

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_admin():
    ws = WorkspaceFactory(name="elsewhere")
    user = UserFactory(username="other-admin")
    MembershipFactory(user=user, workspace=ws, role=Membership.Role.ADMIN)
    return user


def test_judge_crud_and_validation(workspace, admin_client_api, llm_endpoint):
    endpoint = llm_endpoint()
    r = admin_client_api.post("/api/v1/judges/", {"workspace": workspace.pk, "name": "uf-help", "endpoint": endpoint.name,
                                                  "aspect": "helpfulness", "params": {"temperature": 0}}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["agent"] == f"uf-help:{endpoint.model}" and body["max_parse_retries"] == 2
    judge_id = body["id"]
    r = admin_client_api.post("/api/v1/judges/", {"workspace": workspace.pk, "name": "uf-help", "endpoint": endpoint.pk},
                              format="json")
    assert r.status_code == 400 and "name" in r.json()
    r = admin_client_api.post("/api/v1/judges/", {"workspace": workspace.pk, "name": "x", "endpoint": endpoint.pk,
                                                  "params": {"temprature": 1}}, format="json")
    assert r.status_code == 400 and "temprature" in r.json()["params"][0]
    r = admin_client_api.post("/api/v1/judges/", {"workspace": workspace.pk, "name": "y", "endpoint": endpoint.pk,
                                                  "aspect": "vibes"}, format="json")
    assert r.status_code == 400 and "aspect" in r.json()
    r = admin_client_api.patch(f"/api/v1/judges/{judge_id}/", {"max_parse_retries": 4}, format="json")
    assert r.status_code == 200 and r.json()["max_parse_retries"] == 4
    assert [j["name"] for j in admin_client_api.get("/api/v1/judges/").json()] == ["uf-help"]
    assert admin_client_api.delete(f"/api/v1/judges/{judge_id}/").status_code == 204
    assert not Judge.objects.exists()


def test_permissions_other_workspace_404_annotator_403(workspace, dataset, admin_user, annotator, other_admin,
                                                       llm_endpoint):
    judge = make_judge(workspace, llm_endpoint())
    job = judge_job_create(workspace=workspace, dataset=dataset, judge=judge, start=False)
    outsider, member = client_for(other_admin), client_for(annotator)
    for url in (f"/api/v1/judges/{judge.pk}/", f"/api/v1/judge-jobs/{job.pk}/",
                f"/api/v1/datasets/{dataset.pk}/cleaning/"):
        assert outsider.get(url).status_code == 404, url
        assert member.get(url).status_code == 403, url
    assert outsider.get("/api/v1/judges/").json() == []
    assert outsider.get("/api/v1/judge-jobs/").json() == []
    assert outsider.post(f"/api/v1/judge-jobs/{job.pk}/cancel/").status_code == 404
    r = outsider.post("/api/v1/judge-jobs/", {"dataset": dataset.pk, "judge": judge.name}, format="json")
    assert r.status_code == 404
    r = member.post("/api/v1/judge-jobs/", {"dataset": dataset.pk, "judge": judge.name}, format="json")
    assert r.status_code == 403
    assert outsider.post("/api/v1/judges/", {"workspace": workspace.pk, "name": "z", "endpoint": "x"},
                         format="json").status_code == 404
    assert Client().get("/api/v1/judges/").status_code in (401, 403)


def test_job_api_create_detail_cancel_resume(workspace, dataset, admin_client_api, llm_endpoint,
                                             django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr("annotation.tasks.job_chunk_run.apply_async", lambda args, queue: sent.append((args, queue)))
    judge = make_judge(workspace, llm_endpoint())
    recs = [RecordFactory(dataset=dataset, external_id=f"a{i}",
                          fields={"prompt": "Q", "response-1": "x", "response-2": "y"}) for i in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client_api.post("/api/v1/judge-jobs/", {"dataset": dataset.pk, "judge": judge.name,
                                                          "records": [recs[0].pk, recs[2].pk]}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["total"] == 2 and body["status"] == "queued" and body["agent"] == judge.agent
    assert len(sent) == 1 and sent[0][0] == [body["id"], 0]
    r = admin_client_api.post("/api/v1/judge-jobs/", {"dataset": dataset.pk, "judge": judge.name, "records": [999999]},
                              format="json")
    assert r.status_code == 400 and "999999" in json.dumps(r.json())
    r = admin_client_api.post("/api/v1/judge-jobs/", {"dataset": dataset.pk, "judge": "nope"}, format="json")
    assert r.status_code == 400 and "judge" in r.json()
    r = admin_client_api.post("/api/v1/judge-jobs/", {"dataset": dataset.pk, "judge": judge.name, "extra": 1},
                              format="json")
    assert r.status_code == 400 and "extra" in r.json()
    job_id = body["id"]
    assert admin_client_api.get(f"/api/v1/judge-jobs/{job_id}/").json()["total"] == 2
    assert admin_client_api.post(f"/api/v1/judge-jobs/{job_id}/cancel/").json()["status"] == "cancelled"
    assert admin_client_api.post(f"/api/v1/judge-jobs/{job_id}/cancel/").status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client_api.post(f"/api/v1/judge-jobs/{job_id}/resume/").json()["status"] == "queued"
    assert len(sent) == 2
    assert [j["id"] for j in admin_client_api.get(f"/api/v1/judge-jobs/?dataset={dataset.pk}").json()] == [job_id]


def test_job_api_runs_through_celery_eager(workspace, dataset, admin_client_api, llm_server, llm_endpoint, settings,
                                           django_capture_on_commit_callbacks):
    from preflab.celery import app

    llm_server.responder = content_rater("json")
    judge = make_judge(workspace, llm_endpoint())
    RecordFactory(dataset=dataset, external_id="e", fields={"prompt": "Q", "response-1": "BAD", "response-2": "GOOD"})
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            r = admin_client_api.post("/api/v1/judge-jobs/", {"dataset": dataset.pk, "judge": judge.pk}, format="json")
    finally:
        app.conf.task_always_eager = False
    job = Job.objects.get(pk=r.json()["id"])
    assert job.status == "succeeded" and job.done == 1
    assert Suggestion.objects.get(record__external_id="e").value[0]["value"] == "response-2"


def _imported(workspace):
    ds = pairs_dataset_create(workspace=workspace, name="to-clean")
    pairs = [{"id": f"k{i}", "prompt": f"<b>Q{i}</b>", "chosen": "BAD" if i < 2 else "GOOD",
              "rejected": "GOOD" if i < 2 else "BAD"} for i in range(5)]
    pairs_import(dataset=ds, stream=io.BytesIO("\n".join(json.dumps(p) for p in pairs).encode()), seed=1)
    return ds


def test_cleaning_api_and_page(workspace, admin_user, admin_client_api, llm_server, llm_endpoint):
    ds = _imported(workspace)
    llm_server.responder = content_rater("markdown")
    judge = make_judge(workspace, llm_endpoint(supports_json_schema=False), name="cleaner")
    job_run_inline(job=judge_job_create(workspace=workspace, dataset=ds, judge=judge, start=False))
    r = admin_client_api.get(f"/api/v1/datasets/{ds.pk}/cleaning/")
    assert r.status_code == 200
    body = r.json()
    assert body["judged"] == 5 and body["flips"] == 2
    assert sorted(f["external_id"] for f in body["results"]) == ["k0", "k1"]
    assert body["export_url"] == f"/api/v1/datasets/{ds.pk}/triplets/?source=suggestions&format=jsonl"
    one = admin_client_api.get(f"/api/v1/datasets/{ds.pk}/cleaning/?limit=1&offset=1").json()
    assert len(one["results"]) == 1 and one["results"][0]["external_id"] == body["results"][1]["external_id"]
    assert body["results"][0]["prompt"] == "<b>Q0</b>" or body["results"][0]["prompt"] == "<b>Q1</b>"
    none = admin_client_api.get(f"/api/v1/datasets/{ds.pk}/cleaning/?min_margin=4.5").json()
    assert (none["flips"], none["matching"], none["results"]) == (2, 0, [])
    assert admin_client_api.get(f"/api/v1/datasets/{ds.pk}/cleaning/?min_margin=x").status_code == 400
    # the export link answers, with the judge's choices as "chosen"
    export = admin_client_api.get(body["export_url"])
    assert export.status_code == 200
    rows = [json.loads(line) for line in b"".join(export.streaming_content).decode().splitlines() if line.strip()]
    assert len(rows) == 5 and all(row["chosen"] == "GOOD" for row in rows)
    web = Client()
    web.force_login(admin_user)
    page = web.get(f"/judging/datasets/{ds.pk}/cleaning/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="flips"' in html and "k0" in html and "k1" in html and "k2" not in html
    assert "&lt;b&gt;Q0&lt;/b&gt;" in html and "<b>Q0</b>" not in html  # record text escaped
    assert body["export_url"].replace("&", "&amp;") in html


def test_pages_judge_create_launch_and_progress(workspace, dataset, admin_user, annotator, llm_server, llm_endpoint):
    endpoint = llm_endpoint()
    web = Client()
    web.force_login(admin_user)
    assert web.get("/judging/").status_code == 200
    r = web.post("/judging/", {"workspace": workspace.pk, "name": "ui-judge", "endpoint": endpoint.pk,
                               "method": "ultrafeedback", "aspect": "honesty", "overall_mode": "rubric",
                               "params": "{not json", "max_parse_retries": 2})
    assert r.status_code == 422 and "not valid JSON" in r.content.decode()
    r = web.post("/judging/", {"workspace": workspace.pk, "name": "ui-judge", "endpoint": endpoint.pk,
                               "method": "ultrafeedback", "aspect": "honesty", "overall_mode": "rubric",
                               "params": '{"temperature": 0}', "max_parse_retries": 2, "use_structured_output": "on"})
    assert r.status_code == 302
    judge = Judge.objects.get(name="ui-judge")
    assert judge.aspect == "honesty" and judge.params == {"temperature": 0}
    RecordFactory(dataset=dataset, external_id="u", fields={
        "prompt": "Q", "response-1": "<script>alert(1)</script> GOOD", "response-2": "BAD"})
    r = web.post("/judging/jobs/new/", {"dataset": dataset.pk, "judge": judge.pk})
    assert r.status_code == 302
    job = Job.objects.get(kind="judge")
    assert r["Location"] == f"/jobs/{job.pk}/"  # the one job page
    page = web.get(r["Location"])
    assert page.status_code == 200
    assert f'hx-get="/jobs/{job.pk}/progress/?detail=1"' in page.content.decode()
    assert 'hx-trigger="every 1s"' in page.content.decode()
    assert web.get(f"/jobs/{job.pk}/progress/?detail=1").status_code == 200  # still queued: keep polling
    assert web.get(f"/judging/jobs/{job.pk}/progress/").status_code == 200  # the old URL too
    llm_server.responder = lambda body: ("#### Output for Text 1\nRating: N/A\n#### Output for Text 2\nRating: 2\n"
                                         "<script>alert(2)</script>")
    job_run_inline(job=job)
    done = web.get(f"/jobs/{job.pk}/progress/?detail=1")
    assert done.status_code == 286  # HttpResponseStopPolling
    html = done.content.decode()
    assert "N/A" in html and "<script>" not in html
    member = Client()
    member.force_login(annotator)
    assert member.get("/judging/").status_code == 403
    assert member.get(f"/judging/jobs/{job.pk}/").status_code == 403
    assert member.get(f"/jobs/{job.pk}/").status_code == 403


def test_cli_judge_with_inline_judge_and_progress(workspace, dataset, llm_server, llm_endpoint):
    llm_server.responder = content_rater("json")
    endpoint = llm_endpoint()
    for i in range(3):
        RecordFactory(dataset=dataset, external_id=f"cli{i}",
                      fields={"prompt": "Q", "response-1": "GOOD", "response-2": "OK"})
    out, err = io.StringIO(), io.StringIO()
    call_command("judge", "--dataset", str(dataset.pk), "--endpoint", endpoint.name, "--aspect", "truthfulness",
                 stdout=out, stderr=err)
    assert out.getvalue().splitlines()[-1].endswith("succeeded: 3 records judged, 0 failed (of 3)")
    assert "3/3" in err.getvalue()  # the tqdm bar
    judge = Judge.objects.get(name=f"ultrafeedback-truthfulness-{endpoint.name}")
    assert Suggestion.objects.filter(record__dataset=dataset, agent=judge.agent).count() == 3
    call_command("judge", "--dataset", str(dataset.pk), "--judge", judge.name, stdout=io.StringIO(),
                 stderr=io.StringIO())
    assert Job.objects.filter(kind="judge").count() == 2
    with pytest.raises(CommandError, match="no judge 'missing'"):
        call_command("judge", "--dataset", str(dataset.pk), "--judge", "missing")
    with pytest.raises(CommandError, match="no dataset"):
        call_command("judge", "--dataset", "99999", "--judge", judge.name)
    with pytest.raises(CommandError, match="--params is not valid JSON"):
        call_command("judge", "--dataset", str(dataset.pk), "--endpoint", endpoint.name, "--name", "new",
                     "--params", "{x")
    other = DatasetFactory(workspace=workspace, responses=2)
    with pytest.raises(CommandError, match="only CLAIR"):
        call_command("judge", "--dataset", str(other.pk), "--judge", judge.name, "--answer-field", "response-1")


def test_cli_clair_into_a_named_target_dataset(workspace, llm_server, llm_endpoint):
    from annotation.models import Dataset

    ds = _imported(workspace)
    llm_server.responder = lambda body: '{"reasoning": "Tightened it.", "revision": "A better GOOD answer."}'
    endpoint = llm_endpoint(supports_json_schema=True)
    out = io.StringIO()
    call_command("judge", "--dataset", "to-clean", "--workspace", workspace.name, "--endpoint", endpoint.name,
                 "--method", "clair", "--target-dataset", "revised", "--no-progress", stdout=out, stderr=io.StringIO())
    assert "succeeded: 5 records judged, 0 failed (of 5)" in out.getvalue()
    target = Dataset.objects.get(workspace=workspace, name="revised")
    assert target.records.count() == 5
    assert llm_server.requests[0]["response_format"]["json_schema"]["name"] == "revision"
    rec = target.records.get(metadata__source_external_id="k0")
    source = Record.objects.get(dataset=ds, external_id="k0")
    assert rec.fields["response-2"] == source.fields[source.metadata["original_chosen"]]  # the chosen answer revised
    assert Suggestion.objects.get(record=rec).agent == f"clair:{endpoint.model}"


def test_outputs_api_shows_raw_text_and_parse_errors(workspace, dataset, admin_client_api, other_admin, llm_server,
                                                     llm_endpoint, admin_user):
    llm_server.responder = lambda body: "Text 1: 4\nText 2: N/A"
    judge = make_judge(workspace, llm_endpoint(), max_parse_retries=1)
    rec = RecordFactory(dataset=dataset, external_id="o", fields={"prompt": "Q", "response-1": "a",
                                                                  "response-2": "b"})
    job = job_run_inline(job=judge_job_create(workspace=workspace, dataset=dataset, judge=judge, start=False))
    r = admin_client_api.get(f"/api/v1/judge-jobs/{job.pk}/outputs/?errors=1&record={rec.pk}")
    assert r.status_code == 200
    (out,) = r.json()["results"]
    assert out["raw_text"] == "Text 1: 4\nText 2: N/A" and "N/A" in out["error"] and out["parsed"] is None
    assert out["attempts"] == 2 and len(out["failed_attempts"]) == 2
    assert client_for(other_admin).get(f"/api/v1/judge-jobs/{job.pk}/outputs/").status_code == 404
    assert admin_client_api.get(f"/api/v1/judge-jobs/{job.pk}/outputs/?record=x").status_code == 400
    web = Client()
    web.force_login(admin_user)
    assert web.get(f"/judging/jobs/{job.pk}/")["Location"] == f"/jobs/{job.pk}/"
    html = web.get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="judge-latest"' in html and "failed" in html
