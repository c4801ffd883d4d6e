"""Text PostgreSQL cannot store (NUL, lone surrogates) sent by people: a 400 naming the field, nothing stored.

Bodies are sent as raw JSON (json.dumps escapes "\\ud800" as JSON allows); SQLite would store NUL, so
these tests check the answer and the stored rows on both databases."""
import io
import json

import pytest

from annotation.imports import records_import
from annotation.models import Dataset, Question, Record, Response, Suggestion
from tests.conftest import client_for
from tests.factories import RecordFactory

pytestmark = pytest.mark.django_db

BAD = {"NUL": "bad \u0000 text", "lone surrogate": "bad \ud800 text"}


def _post_raw(client, url, body):
    return client.generic("POST", url, json.dumps(body), content_type="application/json")


def _says(resp, field):
    assert resp.status_code == 400, resp.content
    body = resp.json()
    assert field in body, body
    text = " ".join(body[field])
    assert "NUL" in text or "surrogate" in text, body
    return text


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_text_answer_with_unstorable_text_is_400(dataset, annotator, bad):
    Question.objects.create(dataset=dataset, name="notes", title="Notes", kind="text", required=False, position=1)
    rec = RecordFactory(dataset=dataset)
    body = {"values": {"ranking": ["response-1", "response-2"], "notes": bad}, "status": "submitted"}
    resp = _post_raw(client_for(annotator), f"/api/v1/records/{rec.pk}/responses/", body)
    _says(resp, "values.notes")
    assert not Response.objects.filter(record=rec).exists()


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_question_options_with_unstorable_text_are_400(workspace, admin_user, bad):
    body = {"workspace": workspace.pk, "name": "labels",
            "fields": [{"name": "prompt"}],
            "questions": [{"name": "tone", "kind": "label", "options": {"values": ["fine", bad]}}]}
    resp = _post_raw(client_for(admin_user), "/api/v1/datasets/", body)
    _says(resp, "questions[0].options.values[1]")
    assert not Dataset.objects.filter(name="labels").exists()


@pytest.mark.parametrize("key", ["rationale", "value"])
@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_suggestion_rationale_and_value_with_unstorable_text_are_400(dataset, admin_user, workspace, bad, key):
    Question.objects.create(dataset=dataset, name="notes", title="Notes", kind="text", required=False, position=1)
    rec = RecordFactory(dataset=dataset)
    good = {"record": rec.pk, "question": "notes", "value": "fine", "agent": "judge", "rationale": "why"}
    resp = _post_raw(client_for(admin_user), f"/api/v1/datasets/{dataset.pk}/suggestions/",
                     [good, {**good, "agent": "judge-2", key: bad}])
    _says(resp, f"[1].{key}")
    assert not Suggestion.objects.filter(record=rec).exists()


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_json_array_record_import_rejects_the_line_and_keeps_the_others(dataset, admin_user, bad):
    rows = [{"external_id": "ok-1", "fields": {"prompt": "p", "response-1": "a", "response-2": "b"}},
            {"external_id": "bad", "fields": {"prompt": "p", "response-1": bad, "response-2": "b"}},
            {"external_id": "ok-2", "fields": {"prompt": "p", "response-1": "a", "response-2": "b"}}]
    resp = _post_raw(client_for(admin_user), f"/api/v1/datasets/{dataset.pk}/records/", rows)
    assert resp.status_code in (200, 201, 202), resp.content
    body = resp.json()
    rejected = {r["line"]: r["reason"] for r in body["rejected"]}
    assert list(rejected) == [2], body
    assert "fields.response-1" in rejected[2] and ("NUL" in rejected[2] or "surrogate" in rejected[2])
    assert set(Record.objects.filter(dataset=dataset).values_list("external_id", flat=True)) == {"ok-1", "ok-2"}


def test_metadata_filter_with_nul_in_the_query_string_is_400(dataset, admin_user):
    RecordFactory(dataset=dataset, metadata={"source": "x"})
    resp = client_for(admin_user).get(f"/api/v1/datasets/{dataset.pk}/records/?metadata.source=x%00y")
    _says(resp, "metadata.source")


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_alpaca_eval_upload_with_unstorable_text_is_400(workspace, admin_user, bad):
    items = [{"instruction": "i", "output_1": "aa", "output_2": "bbbb", "generator_1": "ref", "generator_2": "m",
              "preference": p} for p in (2, 1, 1.5)]
    items[2]["generator_2"] = bad
    resp = _post_raw(client_for(admin_user), "/api/v1/leaderboards/alpaca-eval/?reference=ref", items)
    _says(resp, "[2].generator_2")


def test_csv_with_invalid_utf8_rejects_the_line_like_ndjson(dataset):
    body = (b"external_id,prompt,response-1,response-2\n"
            b"c1,p,a,b\n"
            b"c2,p,caf\xe9 latin-1,b\n"
            b"c3,p,a,b\n")
    report = records_import(dataset=dataset, stream=io.BytesIO(body), fmt="csv")
    assert (report.created, report.rejected_count) == (2, 1)
    assert report.rejected == [{"line": 3, "reason": "column response-1: not valid UTF-8 (byte 0xe9)"}]
    assert set(Record.objects.filter(dataset=dataset).values_list("external_id", flat=True)) == {"c1", "c3"}
    ndjson = (b'{"external_id": "n1", "fields": {"prompt": "p", "response-1": "a", "response-2": "b"}}\n'
              b'{"external_id": "n2", "fields": {"prompt": "p", "response-1": "caf\xe9", "response-2": "b"}}\n')
    report = records_import(dataset=dataset, stream=io.BytesIO(ndjson), fmt="ndjson")
    assert (report.created, report.rejected_count) == (1, 1) and report.rejected[0]["line"] == 2
    assert "UTF-8" in report.rejected[0]["reason"]


def test_csv_header_with_invalid_utf8_is_refused(dataset):
    from annotation.imports import ImportFormatError

    with pytest.raises(ImportFormatError, match="not valid UTF-8"):
        list(records_import(dataset=dataset, stream=io.BytesIO(b"external_id,pr\xffompt\nx,y\n"), fmt="csv").rejected)


def test_json_array_with_invalid_utf8_rejects_the_element_and_reads_on(dataset):
    body = (b'[{"external_id": "j1", "fields": {"prompt": "p", "response-1": "a", "response-2": "b"}},\n'
            b' {"external_id": "j2", "fields": {"prompt": "p", "response-1": "caf\xe9", "response-2": "b"}},\n'
            b' {"external_id": "j3", "fields": {"prompt": "p", "response-1": "a", "response-2": "b"}}]')
    report = records_import(dataset=dataset, stream=io.BytesIO(body), fmt="json")
    assert report.rejected == [{"line": 2, "reason": "record: not valid UTF-8 (byte 0xe9)"}]
    assert set(Record.objects.filter(dataset=dataset).values_list("external_id", flat=True)) == {"j1", "j3"}


def test_text_answer_from_the_annotate_page_with_nul_is_refused_on_the_form(dataset, annotator):
    """A form body cannot carry a lone surrogate (Django decodes it to U+FFFD); a NUL it can."""
    from django.test import Client
    from django.urls import reverse

    Question.objects.create(dataset=dataset, name="notes", title="Notes", kind="text", required=False, position=1)
    rec = RecordFactory(dataset=dataset)
    client = Client()
    client.force_login(annotator)
    resp = client.post(reverse("record-respond", args=[dataset.pk, rec.pk]),
                       {"action": "submit", "rank__ranking__response-1": "1", "rank__ranking__response-2": "2",
                        "q__notes": BAD["NUL"]}, HTTP_HX_REQUEST="true")
    assert resp.status_code == 422, resp.content
    assert "NUL" in resp.content.decode()
    assert not Response.objects.filter(record=rec).exists()


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_question_options_typed_on_the_dataset_page_with_unstorable_text_are_refused(admin_user, workspace, bad):
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(admin_user)
    questions = json.dumps([{"name": "tone", "kind": "label", "options": {"values": ["fine", bad]}}])
    resp = client.post(reverse("dataset-create"), {
        "workspace": workspace.pk, "name": "adv", "preset": "advanced", "min_submitted": "1", "responses": "2",
        "response_kind": "markdown", "fields_json": json.dumps([{"name": "prompt"}]), "questions_json": questions})
    html = resp.content.decode()
    assert resp.status_code == 422 and "questions[0].options.values[1]: contains a" in html
    assert not Dataset.objects.filter(name="adv").exists()


def test_the_rule_names_the_path_and_cleaning_counts_what_it_did():
    from annotation.text import text_clean, unstorable_text

    assert unstorable_text({"a": [1, {"b": "ok"}, {"c": "x\x00"}]}) == (
        "a[2].c", "contains a NUL character (\\u0000), which cannot be stored")
    assert unstorable_text({"k\ud801": 1}, "meta")[0] == "meta"
    assert unstorable_text({"a": ["fine", "caf\u00e9 \U0001F600"], "n": None}) is None
    cleaned, done = text_clean({"t": ["a\x00b\x00", "c\udfffd"], "n": 3})
    assert cleaned == {"t": ["ab", "c\ufffdd"], "n": 3}
    assert done.note() == {"nul_removed": 2, "surrogates_replaced": 1}
    assert done.describe() == "2 NUL characters removed, 1 lone surrogate replaced by U+FFFD"
