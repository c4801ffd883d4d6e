"""How gold gets in, as an admin sees it: the record and bulk gold APIs, import_gold, the gold_answer
column of records imports and `gold: true` in pair imports, the record page's gold panel, and the
dataset's quality settings (page and API). And what an annotator sees of it: nothing."""
import io

import orjson
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from annotation import services
from annotation.imports import chosen_position, pairs_import, records_import
from annotation.models import Dataset, Question, Record
from annotation.quality.gold import records_gold_set
from annotation.services import dataset_create, pairwise_dataset_spec, response_upsert
from tests.conftest import client_for
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

R1, R2 = "response-1", "response-2"
BEST_R2 = {"ranking": [{"value": R2, "rank": 1}, {"value": R1, "rank": 2}]}
BEST_R1 = {"ranking": [{"value": R1, "rank": 1}, {"value": R2, "rank": 2}]}


def ndjson(*lines) -> bytes:
    return b"\n".join(line if isinstance(line, bytes) else orjson.dumps(line) for line in lines) + b"\n"


def gold_of(dataset) -> dict:
    return dict(Record.objects.filter(dataset=dataset, is_gold=True).values_list("external_id", "gold_answer"))


# --- one record: PUT / DELETE ------------------------------------------------------------------

def test_admin_marks_changes_and_unmarks_a_record(dataset, admin_client_api):
    dataset.min_submitted = 2
    dataset.save()
    record = RecordFactory(dataset=dataset, external_id="r1", submitted_count=1)
    url = f"/api/v1/records/{record.pk}/gold/"
    resp = admin_client_api.put(url, {"answer": {"ranking": [R2, R1]}}, format="json")  # the best-first shorthand
    assert resp.status_code == 200, resp.content
    assert resp.json() == {"id": record.pk, "external_id": "r1", "is_gold": True, "gold_answer": BEST_R2,
                           "submitted_count": 1}
    record.refresh_from_db()
    assert record.is_gold and record.completed          # served apart: out of the ordinary queue
    assert admin_client_api.put(url, {"answer": BEST_R1}, format="json").json()["gold_answer"] == BEST_R1

    assert admin_client_api.delete(url).status_code == 204
    record.refresh_from_db()
    assert (record.is_gold, record.gold_answer, record.completed) == (False, None, False)  # 1 of 2 answers


def test_a_bad_answer_is_a_400_naming_the_question_and_changes_nothing(dataset, admin_client_api):
    record = RecordFactory(dataset=dataset)
    url = f"/api/v1/records/{record.pk}/gold/"
    resp = admin_client_api.put(url, {"answer": {"ranking": [R1]}}, format="json")
    assert resp.status_code == 400
    assert resp.json() == {"answer.ranking": ["missing from the ranking: response-2"]}
    resp = admin_client_api.put(url, {"answer": {"nope": 1}}, format="json")
    assert resp.status_code == 400 and resp.json() == {"answer": ["unknown questions: nope"]}
    assert admin_client_api.put(url, {"value": BEST_R1}, format="json").json() == {"value": ["unknown field"]}
    assert admin_client_api.put(url, {}, format="json").json() == {"answer": ["This field is required."]}
    record.refresh_from_db()
    assert not record.is_gold and record.gold_answer is None


def test_annotators_and_other_workspaces_cannot_touch_gold(dataset, annotator_client_api, admin_user):
    record = RecordFactory(dataset=dataset)
    for method, path, body in (("put", f"/api/v1/records/{record.pk}/gold/", {"answer": BEST_R1}),
                               ("delete", f"/api/v1/records/{record.pk}/gold/", None),
                               ("get", f"/api/v1/datasets/{dataset.pk}/gold/", None),
                               ("post", f"/api/v1/datasets/{dataset.pk}/gold/", [{"record": record.pk, "answer": BEST_R1}])):
        assert getattr(annotator_client_api, method)(path, body, format="json").status_code == 403, (method, path)
    outsider = UserFactory()
    MembershipFactory(user=outsider, workspace=WorkspaceFactory(), role="admin")
    assert client_for(outsider).put(f"/api/v1/records/{record.pk}/gold/", {"answer": BEST_R1},
                                    format="json").status_code == 404
    record.refresh_from_db()
    assert not record.is_gold


# --- many: the gold file -----------------------------------------------------------------------

def test_bulk_json_marks_by_external_id_or_record_id(dataset, admin_client_api):
    a, b = RecordFactory(dataset=dataset, external_id="a"), RecordFactory(dataset=dataset, external_id="b")
    RecordFactory(dataset=dataset, external_id="c")
    resp = admin_client_api.post(f"/api/v1/datasets/{dataset.pk}/gold/",
                                 [{"external_id": "a", "answer": BEST_R2}, {"record": b.pk, "answer": {"ranking": [R1, R2]}}],
                                 format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json() == {"gold": 2}
    assert gold_of(dataset) == {"a": BEST_R2, "b": BEST_R1}

    listed = admin_client_api.get(f"/api/v1/datasets/{dataset.pk}/gold/?page_size=1").json()
    assert [r["external_id"] for r in listed["results"]] == ["a"] and listed["results"][0]["gold_answer"] == BEST_R2
    assert [r["id"] for r in admin_client_api.get(listed["next"]).json()["results"]] == [b.pk]
    assert a.pk != b.pk


def test_bulk_is_all_or_nothing_and_names_every_bad_line(dataset, admin_client_api):
    RecordFactory(dataset=dataset, external_id="a")
    other = RecordFactory(dataset=DatasetFactory(workspace=dataset.workspace), external_id="elsewhere")
    body = ndjson(
        {"external_id": "a", "answer": BEST_R1},                       # 1 good
        {"external_id": "missing", "answer": BEST_R1},                 # 2 no such record
        {"record": other.pk, "answer": BEST_R1},                       # 3 a record of another dataset
        {"external_id": "a", "answer": {"ranking": [R1]}},             # 4 a partial ranking
        b"{not json",                                                  # 5 unreadable
        {"external_id": "a", "answer": BEST_R2, "note": "x"},          # 6 unknown key
        {"answer": BEST_R1},                                           # 7 no record named
        {"external_id": "a", "answer": BEST_R2},                       # 8 named twice
        {"external_id": "nul\u0000", "answer": BEST_R2},              # 9 text no database stores
    )
    resp = admin_client_api.generic("POST", f"/api/v1/datasets/{dataset.pk}/gold/", body,
                                    content_type="application/x-ndjson")
    assert resp.status_code == 400
    got = resp.json()
    assert got["detail"] == "nothing stored: 8 of 9 lines are not valid gold answers"
    assert [(e["line"], e["field"]) for e in got["rejected"]] == [
        (2, "external_id"), (3, "record"), (4, "answer.ranking"), (5, "line"), (6, "note"), (7, "external_id"),
        (8, "external_id"), (9, "external_id")]
    reasons = {e["line"]: e["reason"] for e in got["rejected"]}
    assert reasons[2] == "no record 'missing' in this dataset"
    assert reasons[4] == "missing from the ranking: response-2"
    assert reasons[8] == "record 'a' is given on line 1 too"
    assert gold_of(dataset) == {}                                      # line 1 was good, but nothing is stored


def test_bulk_csv_takes_the_answer_as_json_text(dataset, admin_client_api):
    RecordFactory(dataset=dataset, external_id="a")
    RecordFactory(dataset=dataset, external_id="b")
    csv_body = (b'external_id,answer\n'
                b'a,"{""ranking"": [""response-2"", ""response-1""]}"\n'
                b'b,not json\n')
    resp = admin_client_api.generic("POST", f"/api/v1/datasets/{dataset.pk}/gold/", csv_body, content_type="text/csv")
    assert resp.status_code == 400
    assert [(e["line"], e["field"]) for e in resp.json()["rejected"]] == [(3, "answer")]
    resp = admin_client_api.generic("POST", f"/api/v1/datasets/{dataset.pk}/gold/", csv_body.rsplit(b"b,", 1)[0],
                                    content_type="text/csv")
    assert resp.status_code == 200 and gold_of(dataset) == {"a": BEST_R2}


def test_import_gold_command(dataset, tmp_path):
    RecordFactory(dataset=dataset, external_id="a")
    RecordFactory(dataset=dataset, external_id="b")
    bad = tmp_path / "gold.jsonl"
    bad.write_bytes(ndjson({"external_id": "a", "answer": BEST_R1}, {"external_id": "zz", "answer": BEST_R1},
                           {"external_id": "b", "answer": {"ranking": "best"}}))
    out = io.StringIO()
    with pytest.raises(CommandError) as err:
        call_command("import_gold", "--dataset", str(dataset.pk), str(bad), stdout=out)
    assert "nothing stored: 2 of 3 lines" in str(err.value)
    assert out.getvalue().splitlines() == ["line 2: external_id: no record 'zz' in this dataset",
                                           "line 3: answer.ranking: a ranking is a list of {value, rank}"]
    assert gold_of(dataset) == {}
    good = tmp_path / "gold.jsonl"
    good.write_bytes(ndjson({"external_id": "a", "answer": BEST_R1}, {"external_id": "b", "answer": BEST_R2}))
    out = io.StringIO()
    call_command("import_gold", "--dataset", str(dataset.pk), str(good), stdout=out)
    assert "2 records" in out.getvalue()
    assert gold_of(dataset) == {"a": BEST_R1, "b": BEST_R2}
    with pytest.raises(CommandError, match="no dataset with id 999999"):
        call_command("import_gold", "--dataset", "999999", str(good))


# --- what annotators see -----------------------------------------------------------------------

def test_annotators_never_see_gold_in_the_record_apis(dataset, admin_client_api, annotator, annotator_client_api):
    dataset.min_submitted = 2
    dataset.gold_rate = 0.0
    dataset.save()
    gold = RecordFactory(dataset=dataset, external_id="g", priority=5)
    RecordFactory(dataset=dataset, external_id="o")
    records_gold_set(dataset=dataset, answers={gold.pk: BEST_R2})
    base = f"/api/v1/datasets/{dataset.pk}/records/"

    mine = annotator_client_api.get(base).json()["results"]
    assert {tuple(sorted(r)) for r in mine} == {tuple(sorted(
        ["id", "external_id", "fields", "metadata", "submitted_count", "completed", "response",
         "suggestions"]))}
    assert [r["completed"] for r in mine] == [False, False]           # gold looks like the ordinary record
    assert b"gold" not in annotator_client_api.get(base).content
    assert b"gold" not in annotator_client_api.get(f"/api/v1/records/{gold.pk}/").content
    assert [r["external_id"] for r in annotator_client_api.get(base + "?status=pending").json()["results"]] == ["g", "o"]
    assert annotator_client_api.get(base + "?status=completed").json()["results"] == []
    refused = annotator_client_api.get(base + "?gold=true")
    assert refused.status_code == 400 and "gold" in refused.json()

    theirs = admin_client_api.get(base).json()["results"]
    assert [(r["external_id"], r["is_gold"], r["gold_answer"], r["completed"]) for r in theirs] == [
        ("g", True, BEST_R2, True), ("o", False, None, False)]
    assert [r["external_id"] for r in admin_client_api.get(base + "?gold=true").json()["results"]] == ["g"]
    assert [r["external_id"] for r in admin_client_api.get(base + "?gold=false").json()["results"]] == ["o"]


def test_next_hands_out_a_gold_record_without_telling(dataset, annotator_client_api, monkeypatch):
    gold = RecordFactory(dataset=dataset, external_id="g")
    records_gold_set(dataset=dataset, answers={gold.pk: BEST_R2})
    # however the distribution picks it, a gold record handed out reads like any other
    monkeypatch.setattr(services, "next_record_for", lambda user, ds: Record.objects.get(pk=gold.pk))
    seen = annotator_client_api.get(f"/api/v1/datasets/{dataset.pk}/next/")
    assert seen.status_code == 200
    assert b"gold" not in seen.content and seen.json()["completed"] is False


# --- the records import's gold_answer column ---------------------------------------------------

def rec(eid, **extra):
    return {"external_id": eid, "fields": {"prompt": "p", "response-1": "a", "response-2": "b"}, **extra}


def test_records_import_marks_rows_with_a_gold_answer(dataset):
    report = records_import(dataset=dataset, fmt="ndjson", stream=io.BytesIO(ndjson(
        rec("plain"), rec("gold", gold_answer={"ranking": [R2, R1]}), rec("bad", gold_answer={"ranking": [R1]}),
        rec("empty", gold_answer=None))))
    assert (report.created, report.rejected_count, report.extra) == (3, 1, {"gold": 1})
    assert report.rejected == [{"line": 3, "reason": "gold_answer.ranking: missing from the ranking: response-2"}]
    assert gold_of(dataset) == {"gold": BEST_R2}
    assert not Record.objects.filter(dataset=dataset, external_id="bad").exists()   # the whole line is rejected


def test_records_import_csv_gold_answer_column(dataset, admin_client_api):
    body = (b'external_id,prompt,response-1,response-2,gold_answer\n'
            b'x,p,a,b,"{""ranking"": [""response-1"", ""response-2""]}"\n'
            b'y,p,a,b,\n'
            b'z,p,a,b,{oops\n')
    resp = admin_client_api.generic("POST", f"/api/v1/datasets/{dataset.pk}/records/", body, content_type="text/csv")
    assert resp.status_code == 200, resp.content
    got = resp.json()
    assert (got["created"], got["gold"], [r["line"] for r in got["rejected"]]) == (2, 1, [4])
    assert got["rejected"][0]["reason"].startswith("gold_answer: must be a JSON object")
    assert gold_of(dataset) == {"x": BEST_R1}


# --- the pair importers' gold column -----------------------------------------------------------

def test_pairs_marked_gold_know_their_chosen_answer_where_the_shuffle_put_it(dataset):
    lines = [{"id": f"p{i}", "prompt": "q", "chosen": "good", "rejected": "bad", "gold": i < 6} for i in range(8)]
    lines.append({"id": "as-text", "prompt": "q", "chosen": "good", "rejected": "bad", "gold": "yes"})
    lines.append({"id": "nonsense", "prompt": "q", "chosen": "good", "rejected": "bad", "gold": "maybe"})
    report = pairs_import(dataset=dataset, stream=io.BytesIO(ndjson(*lines)), seed=3, strict=True)
    assert report.created == 9 and report.extra == {"gold": 7}
    assert report.rejected == [{"line": 10, "reason": "gold: must be true or false, not 'maybe'"}]
    gold = gold_of(dataset)
    assert sorted(gold) == ["as-text", "p0", "p1", "p2", "p3", "p4", "p5"]
    places = set()
    for eid, answer in gold.items():
        where = chosen_position(external_id=eid, seed=3)
        other = R2 if where == R1 else R1
        assert answer == {"ranking": [{"value": where, "rank": 1}, {"value": other, "rank": 2}]}
        assert Record.objects.get(dataset=dataset, external_id=eid).fields[where] == "good"
        places.add(where)
    assert places == {R1, R2}                                             # the shuffle was followed both ways
    assert "gold" not in Record.objects.get(dataset=dataset, external_id="p7").metadata


def test_pairs_gold_for_a_preference_question_and_refusals(workspace):
    fields, questions = pairwise_dataset_spec(responses=2, graded=True)
    graded = dataset_create(workspace=workspace, name="graded", fields=fields, questions=questions)
    report = pairs_import(dataset=graded, stream=io.BytesIO(ndjson(
        {"instruction": "q", "output_1": "x", "output_2": "y", "preference": 2, "id": "a", "gold": True},
        {"instruction": "q", "output_1": "x", "output_2": "y", "preference": 0, "id": "tie", "gold": True})), seed=1)
    where = chosen_position(external_id="a", seed=1)
    # the strongest level of the default scale; only the side is scored
    assert gold_of(graded) == {"a": {"preference": {"preferred": where, "strength": 3}}}
    assert Record.objects.get(dataset=graded, external_id="a").fields[where] == "y"   # output_2 was preferred
    assert report.rejected == [{"line": 2, "reason": "gold: a tie cannot be the known answer to the preference "
                                                     "'preference'"}]

    mapped = DatasetFactory(workspace=workspace)                          # a file's own column mapped to gold
    report = pairs_import(dataset=mapped, mapping={"gold": "is_check"}, stream=io.BytesIO(ndjson(
        {"prompt": "q", "chosen": "c", "rejected": "r", "id": "m", "is_check": "1"})))
    assert report.extra == {"gold": 1} and list(gold_of(mapped)) == ["m"]

    plain = DatasetFactory(workspace=workspace)
    report = pairs_import(dataset=plain, stream=io.BytesIO(ndjson(
        {"prompt": "q", "response-1": "x", "response-2": "y", "id": "unknown", "gold": True})))
    assert report.rejected == [{"line": 1, "reason": "gold: this row says no answer was chosen: a gold pair needs a "
                                                     "chosen answer (or a tie)"}]
    assert gold_of(plain) == {}


# --- the record page ---------------------------------------------------------------------------

def test_record_page_marks_gold_from_an_answer_or_the_best_response_and_removes_it(dataset, admin_user, annotator):
    record = RecordFactory(dataset=dataset)
    response = response_upsert(user=annotator, record=record, values=BEST_R2, status="submitted").response
    client = Client()
    client.force_login(admin_user)
    page = reverse("record-detail", args=[dataset.pk, record.pk])
    action = reverse("record-gold", args=[dataset.pk, record.pk])
    html = client.get(page).content.decode()
    assert "Mark as gold" in html and "Use this answer as gold" in html and 'data-gold="no"' in html

    resp = client.post(action, {"action": "response", "response": response.pk})
    assert resp.status_code == 302 and resp["Location"] == page
    record.refresh_from_db()
    assert record.is_gold and record.gold_answer == BEST_R2
    html = client.get(page).content.decode()
    assert 'data-gold="yes"' in html and "Response 2 &gt; Response 1" in html and "matches the known answer" in html

    assert '<option value="response-2" selected>' in html                # the known answer's best response
    client.post(action, {"action": "best", "best": R1})
    record.refresh_from_db()
    assert record.gold_answer == BEST_R1
    html = client.get(page).content.decode()
    assert "misses the known answer" in html and '<option value="response-1" selected>' in html

    resp = client.post(action, {"action": "best", "best": "response-9"}, follow=True)
    assert "Nothing changed: gold: &#x27;response-9&#x27; is not one of the responses" in resp.content.decode()
    client.post(action, {"action": "clear"})
    record.refresh_from_db()
    assert not record.is_gold and record.gold_answer is None

    annotator_client = Client()
    annotator_client.force_login(annotator)
    assert annotator_client.post(action, {"action": "best", "best": R1}).status_code == 403
    other_dataset = DatasetFactory(workspace=dataset.workspace)
    assert client.post(reverse("record-gold", args=[other_dataset.pk, record.pk]), {"action": "clear"}).status_code == 404


# --- quality settings --------------------------------------------------------------------------

QUALITY = {"gold_rate": 0.1, "gold_pause_accuracy": 0.7, "gold_pause_min_answers": 5, "too_fast_seconds": 2.5,
           "exclude_removed_annotators": True, "suggestion_share": 0.5}


@pytest.mark.parametrize("field,value,reason", [
    ("gold_rate", 1.5, "a share from 0 to 1"), ("gold_rate", -0.1, "a share from 0 to 1"),
    ("gold_pause_accuracy", 2, "a share from 0 to 1"), ("gold_pause_min_answers", 0, "an integer from 1 to 1000"),
    ("gold_pause_min_answers", 1001, "an integer from 1 to 1000"), ("too_fast_seconds", -1, "a number of seconds"),
    ("suggestion_share", 3, "a share from 0 to 1")])
def test_quality_settings_api_refuses_bad_values_naming_the_field(dataset, admin_client_api, field, value, reason):
    resp = admin_client_api.patch(f"/api/v1/datasets/{dataset.pk}/", {field: value}, format="json")
    assert resp.status_code == 400 and list(resp.json()) == [field] and resp.json()[field][0].startswith(reason)
    dataset.refresh_from_db()
    assert (dataset.gold_rate, dataset.gold_pause_accuracy, dataset.gold_pause_min_answers) == (0.05, None, 10)


def test_quality_settings_over_the_api_for_admins_only(dataset, admin_client_api, annotator_client_api, workspace):
    resp = admin_client_api.patch(f"/api/v1/datasets/{dataset.pk}/", QUALITY, format="json")
    assert resp.status_code == 200, resp.content
    assert {k: resp.json()[k] for k in QUALITY} == QUALITY
    resp = admin_client_api.patch(f"/api/v1/datasets/{dataset.pk}/", {"gold_pause_accuracy": None}, format="json")
    assert resp.json()["gold_pause_accuracy"] is None                   # the pause policy switched off
    assert not set(QUALITY) & set(annotator_client_api.get(f"/api/v1/datasets/{dataset.pk}/").json())
    assert not set(QUALITY) & set(annotator_client_api.get("/api/v1/datasets/").json()[0])
    assert set(QUALITY) <= set(admin_client_api.get("/api/v1/datasets/").json()[0])
    created = admin_client_api.post("/api/v1/datasets/", {
        "workspace": workspace.pk, "name": "with-gold", "gold_rate": 0.2, "too_fast_seconds": 1,
        "fields": [{"name": "prompt"}, {"name": R1}, {"name": R2}],
        "questions": [{"name": "ranking", "kind": "ranking", "options": {"values": [R1, R2]}}]}, format="json")
    assert created.status_code == 201, created.content
    assert (created.json()["gold_rate"], created.json()["too_fast_seconds"]) == (0.2, 1.0)
    bad = admin_client_api.post("/api/v1/datasets/", {
        "workspace": workspace.pk, "name": "bad-gold", "gold_rate": 7,
        "fields": [{"name": "prompt"}, {"name": R1}, {"name": R2}],
        "questions": [{"name": "ranking", "kind": "ranking", "options": {"values": [R1, R2]}}]}, format="json")
    assert bad.status_code == 400 and list(bad.json()) == ["gold_rate"]
    assert not Dataset.objects.filter(name="bad-gold").exists()


def test_quality_settings_page(dataset, admin_user):
    client = Client()
    client.force_login(admin_user)
    url = reverse("dataset-settings", args=[dataset.pk])
    html = client.get(url).content.decode()
    assert "<h2>Quality</h2>" in html and 'name="gold_rate"' in html and "one in 20" in html
    form = {"name": dataset.name, "min_submitted": 1, "visible_metadata": "", **QUALITY}
    form["gold_rate"] = 2
    resp = client.post(url, form)
    assert resp.status_code == 422
    assert "a share from 0 to 1" in resp.content.decode()
    dataset.refresh_from_db()
    assert dataset.gold_rate == 0.05
    form["gold_rate"] = 0.1
    assert client.post(url, form).status_code == 302
    dataset.refresh_from_db()
    assert {k: getattr(dataset, k) for k in QUALITY} == QUALITY
    form["gold_pause_accuracy"] = ""                                   # empty: the policy is off
    del form["exclude_removed_annotators"]                             # an unticked box is not posted
    assert client.post(url, form).status_code == 302
    dataset.refresh_from_db()
    assert (dataset.gold_pause_accuracy, dataset.exclude_removed_annotators, dataset.gold_rate) == (None, False, 0.1)


def test_questions_without_a_ranked_one_get_no_best_response_form(workspace, admin_user):
    ds = dataset_create(workspace=workspace, name="labels", fields=[{"name": "prompt"}],
                        questions=[{"name": "topic", "kind": "label", "options": {"values": ["a", "b"]}}])
    record = RecordFactory(dataset=ds, fields={"prompt": "t"})
    assert Question.objects.filter(dataset=ds).count() == 1
    client = Client()
    client.force_login(admin_user)
    html = client.get(reverse("record-detail", args=[ds.pk, record.pk])).content.decode()
    assert 'data-gold="no"' in html and "Mark as gold" not in html
    client.post(reverse("record-gold", args=[ds.pk, record.pk]), {"action": "best", "best": "a"})
    record.refresh_from_db()
    assert not record.is_gold


@pytest.mark.django_db(transaction=True)
def test_gold_answers_follow_their_batches_through_the_pipelined_writer(require_postgres):
    ds = DatasetFactory()
    lines = [rec(f"r{i}", **({"gold_answer": BEST_R2} if i % 3 == 0 else {})) for i in range(1, 11)]
    lines.append(rec("r3"))                                               # re-sent without an answer: r3 stays gold
    report = records_import(dataset=ds, stream=io.BytesIO(ndjson(*lines)), fmt="ndjson", batch_size=2, pipeline=True)
    assert (report.created, report.updated, report.extra) == (10, 1, {"gold": 3})
    assert gold_of(ds) == {"r3": BEST_R2, "r6": BEST_R2, "r9": BEST_R2}
    assert Record.objects.filter(dataset=ds, completed=True).count() == 3  # gold is served apart


def test_an_annotator_who_answered_a_gold_record_reads_nothing_of_gold(dataset, annotator):
    gold = RecordFactory(dataset=dataset)
    records_gold_set(dataset=dataset, answers={gold.pk: BEST_R2})
    response_upsert(user=annotator, record=gold, values=BEST_R1, status="submitted")
    client = Client()
    client.force_login(annotator)
    for url in (reverse("history", args=[dataset.pk]), reverse("history-record", args=[dataset.pk, gold.pk]),
                f"/api/v1/records/{gold.pk}/responses/", f"/api/v1/records/{gold.pk}/",
                f"/api/v1/datasets/{dataset.pk}/", f"/api/v1/datasets/{dataset.pk}/records/"):
        resp = client.get(url)
        assert resp.status_code == 200, url
        assert "gold" not in resp.content.decode().lower(), url
