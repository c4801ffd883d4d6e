"""Import over REST and as jobs and commands: streamed bodies, permissions, reports."""
import io
import json

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from annotation.imports import import_file_save
from annotation.jobs import job_chunk_execute, job_create
from annotation.models import Job, JobError, Membership, Record
from tests.conftest import client_for
from tests.factories import DatasetFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def rec(eid, **fields):
    return {"external_id": eid, "fields": {"prompt": "p", "response-1": "a", "response-2": "b", **fields}}


def url(ds, tail="records"):
    return f"/api/v1/datasets/{ds.pk}/{tail}/"


def post_ndjson(client, path, lines):
    body = b"\n".join(line if isinstance(line, bytes) else orjson.dumps(line) for line in lines)
    return client.generic("POST", path, body, content_type="application/x-ndjson")


def test_ndjson_post_reports_every_rejected_line(dataset, admin_client_api):
    resp = post_ndjson(admin_client_api, url(dataset), [rec("a"), b"{oops", rec("b", extra="x"), rec("c")])
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert (body["created"], body["updated"], body["rejected_count"]) == (2, 0, 2)
    assert [r["line"] for r in body["rejected"]] == [2, 3]
    assert "unknown fields: extra" in body["rejected"][1]["reason"]
    resp = post_ndjson(admin_client_api, url(dataset), [rec("a", prompt="again")])
    assert (resp.json()["created"], resp.json()["updated"]) == (0, 1)
    assert Record.objects.filter(dataset=dataset).count() == 2


def test_json_array_post(dataset, admin_client_api):
    resp = admin_client_api.post(url(dataset), json.dumps([rec("a"), rec("b", **{"response-1": 3})]),
                                 content_type="application/json")
    assert resp.status_code == 200
    assert resp.json()["created"] == 1 and resp.json()["rejected"][0]["line"] == 2


def test_json_body_that_is_not_an_array_is_400(dataset, admin_client_api):
    resp = admin_client_api.post(url(dataset), json.dumps(rec("a")), content_type="application/json")
    assert resp.status_code == 400 and "JSON array" in resp.json()["detail"]
    assert not Record.objects.filter(dataset=dataset).exists()


def test_unsupported_content_type_is_400(dataset, admin_client_api):
    resp = admin_client_api.generic("POST", url(dataset), b"<x/>", content_type="application/xml")
    assert resp.status_code == 400 and "Content-Type" in resp.json()


@pytest.mark.parametrize("tail", ["records", "import-pairs"])
def test_a_chunked_upload_the_server_did_not_decode_is_411_not_an_empty_import(dataset, admin_client_api, tail):
    """As under Django's development server (wsgiref): no Content-Length, no wsgi.input_terminated."""
    body = orjson.dumps(rec("a")) + b"\n"
    resp = admin_client_api.generic("POST", url(dataset, tail), body, content_type="application/x-ndjson",
                                    CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")
    assert resp.status_code == 411 and "Content-Length" in resp.json()["detail"]
    assert not Record.objects.filter(dataset=dataset).exists()


@override_settings(PREFLAB_MAX_UPLOAD_BYTES=100)
def test_body_over_the_upload_limit_is_413(dataset, admin_client_api):
    resp = post_ndjson(admin_client_api, url(dataset), [rec(f"r{i}") for i in range(10)])
    assert resp.status_code == 413 and "limit" in resp.json()["detail"]
    assert not Record.objects.filter(dataset=dataset).exists()


def test_import_permissions(dataset, annotator_client_api):
    assert post_ndjson(annotator_client_api, url(dataset), [rec("a")]).status_code == 403
    outsider = UserFactory()
    MembershipFactory(user=outsider, role=Membership.Role.ADMIN)  # admin of another workspace
    assert post_ndjson(client_for(outsider), url(dataset), [rec("a")]).status_code == 404
    assert post_ndjson(client_for(outsider), url(dataset, "import-pairs"),
                       [{"prompt": "q", "chosen": "c", "rejected": "r"}]).status_code == 404
    assert not Record.objects.filter(dataset=dataset).exists()


def test_import_pairs_endpoint(dataset, admin_client_api, annotator_client_api):
    lines = [{"id": "x1", "prompt": "q", "chosen": "good", "rejected": "bad"}, {"prompt": "q"}]
    resp = post_ndjson(admin_client_api, url(dataset, "import-pairs") + "?seed=3", lines)
    assert resp.status_code == 200 and resp.json()["created"] == 1
    assert resp.json()["rejected"] == [{"line": 2, "reason": "chosen: required"}]
    record = Record.objects.get(dataset=dataset, external_id="x1")
    assert record.fields[record.metadata["original_chosen"]] == "good"
    assert post_ndjson(annotator_client_api, url(dataset, "import-pairs"), lines).status_code == 403
    wrong = DatasetFactory(workspace=dataset.workspace, responses=3)
    wrong.fields.filter(name="response-1").update(name="first")
    resp = post_ndjson(admin_client_api, url(wrong, "import-pairs"), lines)
    assert resp.status_code == 400 and "response-1" in json.dumps(resp.json())


# --- jobs --------------------------------------------------------------------------------------

def test_import_job_from_uploaded_file(dataset, admin_user):
    body = b"\n".join([orjson.dumps(rec("a")), b"{broken", orjson.dumps(rec("b", nope="x")), orjson.dumps(rec("c"))])
    path = import_file_save(dataset=dataset, uploaded_file=SimpleUploadedFile("recs.jsonl", body))
    assert "/imports/" in path
    job = job_create(kind="import", workspace=dataset.workspace, dataset=dataset, created_by=admin_user,
                     input_file=path, start=False)
    assert job.total == 4
    assert job_chunk_execute(job_id=job.pk, index=0) == "ok"
    job.refresh_from_db()
    assert job.status == Job.Status.PARTLY_FAILED and (job.done, job.failed) == (2, 2)
    errors = {e.item: e for e in JobError.objects.filter(job=job)}
    assert set(errors) == {"2", "3"} and "malformed JSON" in errors["2"].error and errors["2"].raw == "{broken"
    assert job.result["created"] == 2
    # a re-run (worker killed after the work) gives the same records and errors
    job.chunks.update(status="pending")
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
    assert job_chunk_execute(job_id=job.pk, index=0) == "ok"
    job.refresh_from_db()
    assert (job.done, job.failed) == (2, 2) and job.result["updated"] == 2
    assert Record.objects.filter(dataset=dataset).count() == 2 and JobError.objects.filter(job=job).count() == 2


def test_import_job_rejects_unknown_format(dataset, tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"x")
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as err:
        job_create(kind="import", workspace=dataset.workspace, dataset=dataset, input_file=str(path), start=False)
    assert "format" in err.value.message_dict


def test_import_job_of_pairs(dataset, tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(orjson.dumps({"prompt": "q", "chosen": "c", "rejected": "r"}) + b"\n")
    job = job_create(kind="import", workspace=dataset.workspace, dataset=dataset, input_file=str(path),
                     params={"format": "pairs", "seed": 1}, start=False)
    job_chunk_execute(job_id=job.pk, index=0)
    assert Record.objects.get(dataset=dataset).metadata["source"] == "import_pairs"


# --- commands ----------------------------------------------------------------------------------

def test_import_records_command(dataset, tmp_path):
    path = tmp_path / "recs.ndjson"
    path.write_bytes(orjson.dumps(rec("a")) + b"\n" + orjson.dumps(rec("b", extra="1")) + b"\n")
    out = io.StringIO()
    call_command("import_records", str(dataset.pk), str(path), "--quiet", stdout=out)
    text = out.getvalue()
    assert "line 2: rejected: fields: unknown fields: extra" in text
    assert "1 created, 0 updated, 1 rejected of 2 lines" in text
    csv_path = tmp_path / "recs.csv"
    csv_path.write_text("external_id,prompt,response-1,response-2\na,p2,a,b\n")
    call_command("import_records", str(dataset.pk), str(csv_path), "--quiet", stdout=io.StringIO())
    assert Record.objects.get(dataset=dataset, external_id="a").fields["prompt"] == "p2"
    with pytest.raises(CommandError, match="JSON array"):
        bad = tmp_path / "bad.json"
        bad.write_text('{"a": 1}')
        call_command("import_records", str(dataset.pk), str(bad), "--quiet", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no dataset"):
        call_command("import_records", "999999", str(path), stdout=io.StringIO())


def test_import_pairs_command_creates_dataset(workspace, tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps({"id": i, "prompt": f"q{i}", "chosen": "c", "rejected": "r"})
                                for i in range(5)) + b"\n")
    out = io.StringIO()
    call_command("import_pairs", "--workspace", workspace.name, "--create", "cleanup", str(path), "--quiet",
                 stdout=out)
    assert "5 created" in out.getvalue()
    ds = workspace.datasets.get(name="cleanup")
    assert ds.records.count() == 5
    out = io.StringIO()
    call_command("import_pairs", str(ds.pk), str(path), "--quiet", stdout=out)
    assert "0 created, 5 updated" in out.getvalue()


def test_csv_body_post(dataset, admin_client_api):
    body = b"external_id,prompt,response-1,response-2,metadata.model\nc1,p,a,b,m1\nc2,p,,b,m2\n"
    resp = admin_client_api.generic("POST", url(dataset), body, content_type="text/csv")
    assert resp.status_code == 200
    assert resp.json()["created"] == 1
    assert resp.json()["rejected"] == [{"line": 3, "reason": "fields.response-1: required"}]
    assert Record.objects.get(dataset=dataset, external_id="c1").metadata == {"model": "m1"}


def test_import_job_of_an_unreadable_file_records_why(dataset, tmp_path):
    path = tmp_path / "body.json"
    path.write_text('{"not": "an array"}')
    job = job_create(kind="import", workspace=dataset.workspace, dataset=dataset, input_file=str(path), start=False)
    job_chunk_execute(job_id=job.pk, index=0)
    job.refresh_from_db()
    assert "JSON array" in job.error and "JSON array" in JobError.objects.get(job=job, item="file").error
    assert not Record.objects.filter(dataset=dataset).exists()


def test_parquet_body_post(dataset, admin_client_api, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"external_id": ["a", "b"], "prompt": ["p", None], "response-1": ["x", "x"],
                             "response-2": ["y", "y"]}), path)
    resp = admin_client_api.generic("POST", url(dataset), path.read_bytes(),
                                    content_type="application/vnd.apache.parquet")
    assert resp.status_code == 200, resp.content
    assert resp.json()["created"] == 1 and resp.json()["rejected"] == [{"line": 2, "reason": "fields.prompt: required"}]
    resp = admin_client_api.generic("POST", url(dataset), b"not parquet", content_type="application/vnd.apache.parquet")
    assert resp.status_code == 400 and "Parquet" in resp.json()["detail"]
