"""Triplet export over REST, as a job and as a command."""
import csv
import io

import orjson
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.jobs import job_chunk_execute, job_create
from annotation.models import Job, Membership
from tests.conftest import client_for
from tests.factories import MembershipFactory, RecordFactory, ResponseFactory, UserFactory

pytestmark = pytest.mark.django_db


BETTER_2 = {"ranking": [{"value": "response-2", "rank": 1}, {"value": "response-1", "rank": 2}]}


@pytest.fixture
def annotated(dataset):
    records = [RecordFactory(dataset=dataset) for _ in range(4)]
    for rec in records[:3]:
        ResponseFactory(record=rec, values=BETTER_2)
    return dataset, records


def body_of(resp) -> bytes:
    return b"".join(resp.streaming_content)


def test_jsonl_stream(annotated, admin_client_api):
    ds, records = annotated
    resp = admin_client_api.get(f"/api/v1/datasets/{ds.pk}/triplets/?format=jsonl")
    assert resp.status_code == 200 and resp["Content-Type"] == "application/x-ndjson"
    assert resp["Content-Disposition"].startswith("attachment; filename=") and ".jsonl" in resp["Content-Disposition"]
    rows = [orjson.loads(line) for line in body_of(resp).splitlines()]
    assert [r["record_id"] for r in rows] == [r.pk for r in records[:3]]
    assert rows[0]["chosen"] == records[0].fields["response-2"]
    assert set(rows[0]) == {"prompt", "chosen", "rejected", "record_id", "external_id", "chosen_field",
                            "rejected_field", "annotators", "agreement", "vote_margin", "rank_margin",
                            "strength_margin", "judge_margin", "tie", "source", "reviewed", "reviewed_by"}


def test_csv_and_parquet_over_http(annotated, admin_client_api, tmp_path):
    import pyarrow.parquet as pq

    ds, records = annotated
    resp = admin_client_api.get(f"/api/v1/datasets/{ds.pk}/triplets/", {"format": "csv", "style": "conversational"})
    assert resp.status_code == 200 and resp["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body_of(resp).decode())))
    assert len(rows) == 3 and orjson.loads(rows[0]["rejected"])[0]["content"] == records[0].fields["response-1"]
    resp = admin_client_api.get(f"/api/v1/datasets/{ds.pk}/triplets/", {"format": "parquet", "source": "both"})
    assert resp.status_code == 200
    path = tmp_path / "t.parquet"
    path.write_bytes(body_of(resp))
    table = pq.read_table(path)
    assert table.num_rows == 3 and "ratings" in table.column_names


@pytest.mark.parametrize("query, name", [("format=xml", "format"), ("pairs=best", "pairs"),
                                         ("resolve=median", "resolve"), ("source=llm", "source"),
                                         ("include_ties=maybe", "include_ties"), ("style=chatml", "style"),
                                         ("min_margin=lots", "min_margin"), ("question=nope", "question"),
                                         ("colour=red", "colour")])
def test_bad_parameter_is_400_naming_it(annotated, admin_client_api, query, name):
    ds, _ = annotated
    resp = admin_client_api.get(f"/api/v1/datasets/{ds.pk}/triplets/?{query}")
    assert resp.status_code == 400 and name in resp.json(), resp.content


def test_export_permissions(annotated, annotator_client_api, api_client):
    ds, _ = annotated
    assert annotator_client_api.get(f"/api/v1/datasets/{ds.pk}/triplets/").status_code == 403
    outsider = UserFactory()
    MembershipFactory(user=outsider, role=Membership.Role.ADMIN)
    assert client_for(outsider).get(f"/api/v1/datasets/{ds.pk}/triplets/").status_code == 404
    assert api_client.get(f"/api/v1/datasets/{ds.pk}/triplets/").status_code in (401, 403)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_job_writes_the_file(annotated, admin_user, settings, tmp_path, fmt):
    settings.MEDIA_ROOT = str(tmp_path)
    ds, _ = annotated
    job = job_create(kind="export", workspace=ds.workspace, dataset=ds, created_by=admin_user,
                     params={"format": fmt, "pairs": "all"}, start=False)
    assert job.total == 4
    assert job_chunk_execute(job_id=job.pk, index=0) == "ok"
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.done == 4
    assert job.output_file == str(tmp_path / "exports" / f"{job.pk}.{fmt}")
    assert job.result["rows"] == 3
    if fmt == "jsonl":
        with open(job.output_file, "rb") as f:
            assert len(f.read().splitlines()) == 3


def test_export_job_checks_params_when_created(annotated):
    ds, _ = annotated
    with pytest.raises(ValidationError) as err:
        job_create(kind="export", workspace=ds.workspace, dataset=ds, params={"resolve": "x"}, start=False)
    assert "resolve" in err.value.message_dict
    with pytest.raises(ValidationError) as err:
        job_create(kind="export", workspace=ds.workspace, dataset=ds, params={"question": "nope"}, start=False)
    assert "question" in err.value.message_dict


def test_export_triplets_command(annotated, tmp_path):
    import pyarrow.parquet as pq

    ds, records = annotated
    out = tmp_path / "t.jsonl"
    text = io.StringIO()
    call_command("export_triplets", str(ds.pk), "--out", str(out), "--quiet", stdout=text)
    assert "3 triplets written" in text.getvalue()
    assert [orjson.loads(x)["record_id"] for x in out.read_bytes().splitlines()] == [r.pk for r in records[:3]]
    pq_out = tmp_path / "t.parquet"
    call_command("export_triplets", str(ds.pk), "--format", "parquet", "--out", str(pq_out), "--style",
                 "conversational", "--quiet", stdout=io.StringIO())
    assert pq.read_table(pq_out).num_rows == 3
    with pytest.raises(CommandError, match="question"):
        call_command("export_triplets", str(ds.pk), "--out", str(out), "--question", "nope", stdout=io.StringIO())


def _attachment_name(resp) -> str:
    disposition = resp["Content-Disposition"]
    assert disposition.startswith("attachment; filename="), disposition
    return disposition.split("filename=", 1)[1].strip('"')


def test_downloads_are_named_by_dataset_style_source_and_date(annotated, admin_client_api):
    """Standard and conversational exports, human and suggestion ones, no longer land on one file name; the
    dataset's name (user text) comes in safe characters only."""
    from django.utils import timezone

    ds, _ = annotated
    ds.name = 'Helpfulness "v2"/../Ünïcode\r\nX-Evil: 1'
    ds.save()
    today = timezone.localdate().isoformat()
    names = set()
    for style in ("standard", "conversational"):
        for source in ("human", "suggestions"):
            resp = admin_client_api.get(f"/api/v1/datasets/{ds.pk}/triplets/",
                                        {"format": "jsonl", "style": style, "source": source})
            assert resp.status_code == 200
            names.add(_attachment_name(resp))
    assert names == {f"helpfulness-v2-unicode-x-evil-1-triplets-{style}-{source}-{today}.jsonl"
                     for style in ("standard", "conversational") for source in ("human", "suggestions")}
    resp = admin_client_api.get(f"/api/v1/datasets/{ds.pk}/triplets/", {"format": "parquet", "source": "both"})
    assert _attachment_name(resp) == f"helpfulness-v2-unicode-x-evil-1-triplets-standard-both-{today}.parquet"
    ds.name = "偏好数据"  # nothing left in safe characters: the dataset's id names it
    ds.save()
    resp = admin_client_api.get(f"/api/v1/datasets/{ds.pk}/triplets/", {"style": "conversational"})
    assert _attachment_name(resp) == f"dataset-{ds.pk}-triplets-conversational-human-{today}.jsonl"


def test_export_job_download_is_named_like_the_direct_download(annotated, admin_user, settings, tmp_path):
    import datetime

    from django.test import Client

    settings.MEDIA_ROOT = str(tmp_path)
    ds, _ = annotated
    ds.name = "helpfulness"
    ds.save()
    job = job_create(kind="export", workspace=ds.workspace, dataset=ds, created_by=admin_user,
                     params={"format": "csv", "style": "conversational", "source": "both"}, start=False)
    assert job_chunk_execute(job_id=job.pk, index=0) == "ok"
    Job.objects.filter(pk=job.pk).update(finished_at=datetime.datetime(2026, 12, 3, 10, tzinfo=datetime.UTC))
    client = Client()
    client.force_login(admin_user)
    resp = client.get(f"/jobs/{job.pk}/download/")
    assert resp.status_code == 200
    assert _attachment_name(resp) == "helpfulness-triplets-conversational-both-2026-12-03.csv"
    assert b"".join(resp.streaming_content).startswith(b"prompt,chosen,rejected")
