"""Exports safe for TRL's trainers: no `margin` column unless asked (RewardTrainer reads it into its
loss), one schema across JSONL and Parquet (datasets concatenates them), tied rows marked, the
unpaired (KTO) export and the raw export of every response, over the API, the CLI and the job."""
import io
import re

import orjson
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.exports import triplets_export, unpaired_export
from annotation.job_selectors import job_download_name
from annotation.jobs import job_chunk_execute, job_create
from annotation.models import Job, Membership, Response
from tests.factories import (
    DatasetFactory,
    MembershipFactory,
    RecordFactory,
    ResponseFactory,
    SuggestionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def ranking(*order):
    out = []
    for rank, item in enumerate(order, start=1):
        out.extend({"value": f, "rank": rank} for f in (item if isinstance(item, tuple) else (item,)))
    return out


def answer(record, values, status=Response.Status.SUBMITTED, user=None, **kw):
    kw.setdefault("display_order", ["response-1", "response-2"])
    return ResponseFactory(record=record, user=user or UserFactory(), values={"ranking": values}, status=status, **kw)


def jsonl(resp) -> list[dict]:
    return [orjson.loads(line) for line in b"".join(resp.streaming_content).splitlines()]


@pytest.fixture
def mixed(dataset):
    """A clear winner by 2 to 1, a tie, one judged only (scored), one judged without a score."""
    clear = RecordFactory(dataset=dataset, external_id="clear", metadata={"system": "Be brief."})
    answer(clear, ranking("response-2", "response-1"))
    answer(clear, ranking("response-2", "response-1"))
    answer(clear, ranking("response-1", "response-2"))
    tie = RecordFactory(dataset=dataset, external_id="tie")
    answer(tie, ranking("response-1", "response-2"))
    answer(tie, ranking("response-2", "response-1"))
    judged = RecordFactory(dataset=dataset, external_id="judged")
    SuggestionFactory(record=judged, question=dataset.questions.get(name="ranking"), agent="j",
                      value=ranking("response-1", "response-2"), score=2.5,
                      raw={"ratings": {"response-1": 5, "response-2": 2.5}})
    unscored = RecordFactory(dataset=dataset, external_id="unscored")
    SuggestionFactory(record=unscored, question=dataset.questions.get(name="ranking"), agent="j",
                      value=ranking("response-2", "response-1"), score=None)
    return dataset


def test_no_margin_column_unless_asked_then_a_copy_of_the_named_one(mixed):
    rows = list(triplets_export(dataset=mixed, source="both", include_ties=True))
    assert all("margin" not in r for r in rows)
    by_id = {r["external_id"]: r for r in rows}
    assert by_id["clear"]["vote_margin"] == pytest.approx(1 / 3) and by_id["clear"]["rank_margin"] == pytest.approx(1 / 3)
    assert by_id["judged"]["judge_margin"] == 2.5 and by_id["judged"]["strength_margin"] is None
    assert by_id["unscored"]["judge_margin"] is None

    rows = list(triplets_export(dataset=mixed, trl_margin="vote_margin"))
    assert [(r["external_id"], r["margin"]) for r in rows] == [("clear", pytest.approx(1 / 3))]
    rows = list(triplets_export(dataset=mixed, resolve="mean_rank", trl_margin="rank_margin"))
    assert [r["margin"] for r in rows] == [r["rank_margin"] for r in rows]
    # judge_margin: rows whose judge gave no score have none and cannot be trained on: left out
    rows = list(triplets_export(dataset=mixed, source="suggestions", trl_margin="judge_margin"))
    assert [(r["external_id"], r["margin"]) for r in rows] == [("judged", 2.5)]


def test_trl_margin_errors_name_the_option(mixed, admin_client_api):
    for kwargs, reason in [({"trl_margin": "loudness"}, "must be one of vote_margin"),
                           ({"trl_margin": "strength_margin"}, "needs a preference question"),
                           ({"trl_margin": "judge_margin"}, "needs source=suggestions or both")]:
        with pytest.raises(ValidationError) as err:
            triplets_export(dataset=mixed, **kwargs)
        assert reason in " ".join(err.value.message_dict["trl_margin"])
    resp = admin_client_api.get(f"/api/v1/datasets/{mixed.pk}/triplets/?trl_margin=margin")
    assert resp.status_code == 400 and "trl_margin" in resp.json()
    with pytest.raises(ValidationError) as err:
        unpaired_export(dataset=mixed, trl_margin="vote_margin")
    assert "trl_margin" in err.value.message_dict


def test_ties_say_so(mixed, admin_client_api):
    rows = jsonl(admin_client_api.get(f"/api/v1/datasets/{mixed.pk}/triplets/?include_ties=true"))
    assert [(r["external_id"], r["tie"]) for r in rows] == [("clear", False), ("tie", True)]
    assert rows[1]["vote_margin"] == 0.0 and rows[1]["agreement"] == 0.0


@pytest.mark.parametrize("style", ["standard", "conversational"])
@pytest.mark.parametrize("path,query", [("triplets", "source=both&include_ties=true&trl_margin=vote_margin"),
                                        ("unpaired", "source=both"), ("responses-export", "")])
def test_jsonl_and_parquet_load_with_the_same_types_and_concatenate(mixed, admin_client_api, tmp_path, style,
                                                                   path, query):
    datasets = pytest.importorskip("datasets")
    files = {}
    for fmt in ("jsonl", "parquet"):
        resp = admin_client_api.get(f"/api/v1/datasets/{mixed.pk}/{path}/?format={fmt}&style={style}&{query}"
                                    if path != "responses-export" else f"/api/v1/datasets/{mixed.pk}/{path}/?format={fmt}")
        assert resp.status_code == 200
        files[fmt] = tmp_path / f"export.{fmt}"
        files[fmt].write_bytes(b"".join(resp.streaming_content))
    from_json = datasets.load_dataset("json", data_files=str(files["jsonl"]), split="train",
                                      cache_dir=str(tmp_path / "c1"))
    from_parquet = datasets.load_dataset("parquet", data_files=str(files["parquet"]), split="train",
                                         cache_dir=str(tmp_path / "c2"))
    assert from_json.num_rows == from_parquet.num_rows > 0
    assert from_json.column_names == from_parquet.column_names
    # every column JSON gives a type for has the Parquet type (a column empty in every row loads as null)
    for name, feature in from_json.features.items():
        if feature != datasets.Value("null"):
            assert feature == from_parquet.features[name], name
    both = datasets.concatenate_datasets([from_json, from_parquet])
    assert both.num_rows == 2 * from_parquet.num_rows
    assert both.to_list()[:from_json.num_rows] == from_parquet.to_list()


def test_unpaired_rows_for_kto(dataset, admin_client_api):
    three = DatasetFactory(workspace=dataset.workspace, responses=3)
    rec = RecordFactory(dataset=three, fields={"prompt": "p", "response-1": "a", "response-2": "b", "response-3": "c"},
                        metadata={"system": "S"})
    answer(rec, ranking("response-1", "response-2", "response-3"))
    rows = list(unpaired_export(dataset=three))
    assert [(r["completion"], r["label"], r["field"]) for r in rows] == [("a", True, "response-1"),
                                                                          ("c", False, "response-3")]
    assert rows[0]["prompt"] == "p" and rows[0]["record_id"] == rec.pk and rows[0]["annotators"] == 1
    # all pairs: the middle answer both wins and loses, so it says neither and is left out
    rows = list(unpaired_export(dataset=three, pairs="all"))
    assert sorted((r["field"], r["label"]) for r in rows) == [("response-1", True), ("response-3", False)]
    rows = list(unpaired_export(dataset=three, style="conversational"))
    assert rows[0]["prompt"] == [{"role": "system", "content": "S"}, {"role": "user", "content": "p"}]
    assert rows[0]["completion"] == [{"role": "assistant", "content": "a"}]
    # a tie gives no label
    tied = RecordFactory(dataset=dataset)
    answer(tied, ranking("response-1", "response-2"))
    answer(tied, ranking("response-2", "response-1"))
    assert list(unpaired_export(dataset=dataset, include_ties=True)) == []
    resp = admin_client_api.get(f"/api/v1/datasets/{three.pk}/unpaired/?format=csv")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("text/csv")
    assert "-unpaired-standard-human-" in resp["Content-Disposition"]
    lines = b"".join(resp.streaming_content).decode().splitlines()
    assert lines[0] == "prompt,completion,label,record_id,external_id,field,annotators,source,reviewed,reviewed_by"
    assert len(lines) == 3


def test_raw_responses_export_every_response(dataset, admin_client_api, workspace):
    rec = RecordFactory(dataset=dataset, external_id="r1")
    sim = UserFactory(username="sim-1")
    MembershipFactory(user=sim, workspace=workspace, is_simulated=True)
    a = answer(rec, ranking("response-2", "response-1"), user=UserFactory(username="ann"),
               display_order=["response-2", "response-1"], duration=12.5)
    answer(rec, ranking("response-1", "response-2"), user=sim, status=Response.Status.DISCARDED)
    answer(RecordFactory(dataset=dataset, external_id="r2"), [], status=Response.Status.DRAFT)
    answer(RecordFactory(), ranking("response-1", "response-2"))  # another dataset's
    rows = jsonl(admin_client_api.get(f"/api/v1/datasets/{dataset.pk}/responses-export/"))
    assert [(r["external_id"], r["user"], r["status"], r["simulated"]) for r in rows[:2]] == [
        ("r1", "ann", "submitted", False), ("r1", "sim-1", "discarded", True)]
    assert len(rows) == 3 and rows[2]["status"] == "draft"
    first = rows[0]
    assert first["response_id"] == a.pk and first["record_id"] == rec.pk
    assert orjson.loads(first["values"]) == {"ranking": ranking("response-2", "response-1")}
    assert first["display_order"] == ["response-2", "response-1"] and first["duration"] == 12.5
    assert first["created_at"].endswith("Z") and first["updated_at"].endswith("Z")
    only = jsonl(admin_client_api.get(f"/api/v1/datasets/{dataset.pk}/responses-export/?status=discarded"))
    assert [r["user"] for r in only] == ["sim-1"]
    resp = admin_client_api.get(f"/api/v1/datasets/{dataset.pk}/responses-export/?status=maybe")
    assert resp.status_code == 400 and "status" in resp.json()
    resp = admin_client_api.get(f"/api/v1/datasets/{dataset.pk}/responses-export/?pairs=all")
    assert resp.status_code == 400 and "pairs" in resp.json()


def test_annotators_may_not_export_responses(dataset, annotator_client_api):
    assert annotator_client_api.get(f"/api/v1/datasets/{dataset.pk}/responses-export/").status_code == 403
    assert annotator_client_api.get(f"/api/v1/datasets/{dataset.pk}/unpaired/").status_code == 403


def test_cli_kinds_and_trl_margin(mixed, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "u.parquet"
    text = io.StringIO()
    call_command("export_triplets", str(mixed.pk), "--kind", "unpaired", "--out", str(out), "--quiet", stdout=text)
    assert "2 rows written" in text.getvalue()
    assert pq.read_table(out).column("label").to_pylist() == [True, False]
    out = tmp_path / "r.csv"
    call_command("export_triplets", str(mixed.pk), "--kind", "responses", "--out", str(out), "--quiet",
                 stdout=io.StringIO())
    assert out.read_text().splitlines()[0].startswith("response_id,record_id,external_id,user,simulated,status")
    out = tmp_path / "t.parquet"
    call_command("export_triplets", str(mixed.pk), "--trl-margin", "vote_margin", "--out", str(out), "--quiet",
                 stdout=io.StringIO())
    table = pq.read_table(out)
    assert table.column("margin").to_pylist() == table.column("vote_margin").to_pylist()
    assert str(table.schema.field("annotators").type) == "int64"
    with pytest.raises(CommandError, match="trl_margin"):
        call_command("export_triplets", str(mixed.pk), "--kind", "unpaired", "--trl-margin", "vote_margin",
                     "--out", str(tmp_path / "x.jsonl"), "--quiet")


def test_export_job_and_page_for_each_kind(mixed, admin_user, settings, tmp_path, client):
    import pyarrow.parquet as pq

    settings.MEDIA_ROOT = str(tmp_path)
    job = job_create(kind="export", workspace=mixed.workspace, dataset=mixed, created_by=admin_user,
                     params={"export": "responses", "format": "parquet"}, start=False)
    assert job.total == 5  # responses, the raw export's unit
    assert job_chunk_execute(job_id=job.pk, index=0) == "ok"
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.result["export"] == "responses" and job.result["rows"] == 5
    assert pq.read_table(job.output_file).num_rows == 5
    assert re.fullmatch(rf"{mixed.name}-responses-\d{{4}}-\d\d-\d\d\.parquet", job_download_name(job))
    with pytest.raises(ValidationError) as err:
        job_create(kind="export", workspace=mixed.workspace, dataset=mixed, params={"export": "everything"},
                   start=False)
    assert "export" in err.value.message_dict

    client.force_login(admin_user)
    html = client.get(f"/datasets/{mixed.pk}/").content.decode()
    assert 'name="export"' in html and 'name="trl_margin"' in html
    assert f"/api/v1/datasets/{mixed.pk}/unpaired/?format=jsonl" in html
    assert f"/api/v1/datasets/{mixed.pk}/responses-export/?format=parquet" in html
    links = re.findall(r'data-export-file="([a-z]+)-([a-z]+)" href="([^"]+)"', html)
    assert sorted({kind for kind, _, _ in links}) == ["responses", "unpaired"] and len(links) == 6
    for kind, fmt, href in links:
        resp = client.get(href.replace("&amp;", "&"))
        body = b"".join(resp.streaming_content)
        assert resp.status_code == 200 and (body[:4] == b"PAR1" if fmt == "parquet" else body), (kind, fmt)
    resp = client.post(f"/datasets/{mixed.pk}/export/", {"export": "unpaired", "format": "jsonl", "style": "standard"})
    job = Job.objects.filter(kind="export").latest("pk")
    assert resp.status_code == 302 and job.params["export"] == "unpaired"
    resp = client.post(f"/datasets/{mixed.pk}/export/", {"format": "jsonl", "trl_margin": "rank_margin"})
    job = Job.objects.filter(kind="export").latest("pk")
    assert job.params["export"] == "triplets" and job.params["trl_margin"] == "rank_margin"
    assert Membership.objects.filter(user=admin_user, role="admin").exists()
