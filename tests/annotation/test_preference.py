"""Graded pairwise preferences: the question's options, its answers, the export (strength as TRL's
margin, records called both bad), the agreement and the dashboard, on hand-made answers."""
import orjson
import pytest
from django.core.exceptions import ValidationError

from annotation.agreement import dataset_agreement, dataset_quality, pair_vote_from_value, ranks_from_value
from annotation.exports import triplets_export
from annotation.models import Question, Response
from annotation.services import response_upsert
from annotation.validation import question_specs_validate, response_values_validate
from tests.conftest import client_for
from tests.factories import DatasetFactory, RecordFactory, ResponseFactory, UserFactory

pytestmark = pytest.mark.django_db

FIELDS = {"prompt", "response-1", "response-2"}
LLAMA2 = [{"label": "significantly better", "value": 3}, {"label": "better", "value": 2},
          {"label": "slightly better", "value": 1}, {"label": "negligibly better / unsure", "value": 0}]


def spec(**options):
    return {"name": "graded", "kind": "preference",
            "options": {"compares": ["response-1", "response-2"], **options}}


def errors_of(exc: ValidationError) -> dict:
    return {k: " ".join(v) for k, v in exc.message_dict.items()}


# --- the question ------------------------------------------------------------------------------

def test_question_options_normalised_with_the_default_scale():
    [q] = question_specs_validate([spec()], FIELDS)
    assert q["kind"] == "preference"
    assert q["options"] == {"compares": ["response-1", "response-2"], "both_bad": False,
                            "scale": [{"label": "much better", "value": 3}, {"label": "better", "value": 2},
                                      {"label": "slightly better", "value": 1},
                                      {"label": "about the same", "value": 0}]}


def test_plain_labels_get_values_from_strongest_down():
    [q] = question_specs_validate([spec(scale=["much better", "better"], both_bad=True)], FIELDS)
    assert q["options"]["scale"] == [{"label": "much better", "value": 1}, {"label": "better", "value": 0}]
    assert q["options"]["both_bad"] is True


@pytest.mark.parametrize("options,key,reason", [
    ({"compares": ["response-1"]}, "questions[0].options.compares", "two different fields"),
    ({"compares": ["response-1", "response-1"]}, "questions[0].options.compares", "two different fields"),
    ({"compares": ["response-1", "nope"]}, "questions[0].options.compares", "two different fields"),
    ({"scale": []}, "questions[0].options.scale", "1 to 4"),
    ({"scale": ["a", "b", "c", "d", "e"]}, "questions[0].options.scale", "1 to 4"),
    ({"scale": [{"label": "x", "value": "big"}]}, "questions[0].options.scale[0].value", "finite number"),
    ({"scale": [{"label": "", "value": 1}]}, "questions[0].options.scale[0].label", "non-empty"),
    ({"scale": [{"label": "a", "value": 1}, {"label": "b", "value": 2}]}, "questions[0].options.scale", "decrease"),
    ({"scale": [{"label": "a", "value": 2}, {"label": "a", "value": 1}]}, "questions[0].options.scale", "distinct"),
    ({"both_bad": "yes"}, "questions[0].options.both_bad", "true or false"),
    ({"colour": "red"}, "questions[0].options", "unknown keys: colour"),
])
def test_bad_question_options_name_the_key(options, key, reason):
    q = spec()
    q["options"].update(options)
    with pytest.raises(ValidationError) as exc:
        question_specs_validate([q], FIELDS)
    assert reason in errors_of(exc.value)[key]


# --- answers -----------------------------------------------------------------------------------

@pytest.fixture
def graded_dataset():
    ds = DatasetFactory()
    Question.objects.filter(dataset=ds).delete()
    [q] = question_specs_validate([spec(scale=LLAMA2, both_bad=True)], FIELDS)
    Question.objects.create(dataset=ds, **q)
    return ds


def validate(ds, values, status="submitted"):
    return response_values_validate(questions=list(ds.questions.all()), values=values, status=status,
                                    allow_ties=ds.allow_ties)


def test_answers_are_normalised(graded_dataset):
    assert validate(graded_dataset, {"graded": {"preferred": "response-2", "strength": 2}}) == {
        "graded": {"preferred": "response-2", "strength": 2}}
    assert validate(graded_dataset, {"graded": {"preferred": "response-1", "strength": 0.0, "both_bad": True}}) == {
        "graded": {"preferred": "response-1", "strength": 0, "both_bad": True}}
    assert validate(graded_dataset, {"graded": {"value": {"both_bad": True}}}) == {"graded": {"both_bad": True}}


@pytest.mark.parametrize("value,reason", [
    ({"preferred": "response-3", "strength": 2}, "not one of the compared fields"),
    ({"preferred": "response-1", "strength": 7}, "strength 7 is not one of the scale's values [3, 2, 1, 0]"),
    ({"preferred": "response-1"}, "strength None is not one of"),
    ({"preferred": "response-1", "strength": True}, "strength True is not one of"),
    ({"strength": 2}, "needs the preferred field"),
    ({"both_bad": "yes"}, "both_bad must be true or false"),
    ({}, "pick the better response"),
    ({"both_bad": False}, "pick the better response"),
    ({"preferred": "response-1", "strength": 2, "why": "x"}, "unknown keys: why"),
    ("response-1", "a preference is"),
])
def test_bad_answers_name_the_question(graded_dataset, value, reason):
    with pytest.raises(ValidationError) as exc:
        validate(graded_dataset, {"graded": value})
    assert reason in errors_of(exc.value)["values.graded"]


def test_both_bad_only_where_the_question_offers_it():
    ds = DatasetFactory()
    [q] = question_specs_validate([spec()], FIELDS)
    Question.objects.create(dataset=ds, **q)
    with pytest.raises(ValidationError) as exc:
        response_values_validate(questions=[ds.questions.get(name="graded")], values={"graded": {"both_bad": True}},
                                 status="submitted", allow_ties=False)
    assert "no 'both are bad' choice" in errors_of(exc.value)["values.graded"]


def test_api_refuses_a_bad_answer_and_keeps_the_stored_one(graded_dataset):
    rec = RecordFactory(dataset=graded_dataset)
    user = UserFactory()
    from annotation.models import Membership
    Membership.objects.create(user=user, workspace=graded_dataset.workspace, role="annotator")
    client = client_for(user)
    ok = client.post(f"/api/v1/records/{rec.pk}/responses/", {
        "status": "submitted", "values": {"graded": {"preferred": "response-2", "strength": 3}}}, format="json")
    assert ok.status_code in (200, 201), ok.content
    bad = client.post(f"/api/v1/records/{rec.pk}/responses/", {
        "status": "submitted", "values": {"graded": {"preferred": "response-2", "strength": 5}}}, format="json")
    assert bad.status_code == 400
    assert "values.graded" in bad.json() and "strength 5" in str(bad.json()["values.graded"])
    assert Response.objects.get(record=rec, user=user).values == {"graded": {"preferred": "response-2", "strength": 3}}


def test_api_creates_a_dataset_with_a_preference_question(workspace, admin_client_api):
    body = {"workspace": workspace.pk, "name": "graded-pairs",
            "fields": [{"name": "prompt"}, {"name": "response-1"}, {"name": "response-2"}],
            "questions": [spec(scale=LLAMA2, both_bad=True)]}
    resp = admin_client_api.post("/api/v1/datasets/", body, format="json")
    assert resp.status_code == 201, resp.content
    assert resp.json()["questions"][0]["kind"] == "preference"
    assert resp.json()["questions"][0]["options"]["scale"][0] == {"label": "significantly better", "value": 3}
    body["name"] = "graded-bad"
    body["questions"] = [spec(scale=[{"label": "a", "value": 1}, {"label": "b", "value": 1}])]
    bad = admin_client_api.post("/api/v1/datasets/", body, format="json")
    assert bad.status_code == 400 and "decrease" in str(bad.json()["questions[0].options.scale"])


# --- the one reader ----------------------------------------------------------------------------

def test_reader_reads_preferences_as_pair_votes():
    pair = ("response-1", "response-2")
    vote = pair_vote_from_value('{"preferred": "response-2", "strength": 2, "both_bad": true}', pair)
    assert vote.ranks == {"response-1": 2, "response-2": 1} and vote.strength == 2 and vote.both_bad is True
    assert pair_vote_from_value({"both_bad": True}, pair).ranks is None
    assert pair_vote_from_value(1, pair).ranks == {"response-1": 1, "response-2": 2}
    assert pair_vote_from_value({"preferred": "other", "strength": 1}, pair) is None
    assert ranks_from_value({"preferred": "response-1", "strength": 3}, compares=pair) == {"response-1": 1,
                                                                                          "response-2": 2}


# --- export ------------------------------------------------------------------------------------

def prefer(rec, field, strength, *, both_bad=False, status=Response.Status.SUBMITTED):
    value = {"preferred": field, "strength": strength} if field else {}
    if both_bad:
        value["both_bad"] = True
    return ResponseFactory(record=rec, user=UserFactory(), values={"graded": value}, status=status)


def export(ds, **kw):
    return list(triplets_export(dataset=ds, **kw))


def test_one_annotator_strength_becomes_the_margin_when_asked(graded_dataset):
    rec = RecordFactory(dataset=graded_dataset)
    prefer(rec, "response-2", 3)
    [row] = export(graded_dataset)
    assert (row["chosen_field"], row["rejected_field"]) == ("response-2", "response-1")
    assert row["chosen"] == rec.fields["response-2"] and row["rejected"] == rec.fields["response-1"]
    assert row["vote_margin"] == 1.0 and row["strength_margin"] == 3.0 and "margin" not in row
    [row] = export(graded_dataset, margin_from="strength")
    assert row["strength_margin"] == 3.0 and row["agreement"] == 1.0 and row["annotators"] == 1
    assert export(graded_dataset, margin_from="strength", min_margin=3.5) == []  # min_margin reads the strength
    assert len(export(graded_dataset, min_margin=1.0)) == 1  # ... and by default the vote margin


def test_three_annotators_signed_mean_strength(graded_dataset):
    rec = RecordFactory(dataset=graded_dataset)
    prefer(rec, "response-1", 3)
    prefer(rec, "response-1", 1)
    prefer(rec, "response-2", 2)
    prefer(rec, "response-2", 3, status=Response.Status.DISCARDED)  # never counts
    [row] = export(graded_dataset, margin_from="strength")
    # response-1 wins 2 votes to 1; margin = (3 + 1 - 2) / 3
    assert row["chosen_field"] == "response-1"
    assert row["agreement"] == pytest.approx(2 / 3)
    assert row["strength_margin"] == pytest.approx(2 / 3)
    [row] = export(graded_dataset)
    assert row["vote_margin"] == pytest.approx(1 / 3)


def test_both_bad_records_left_out_unless_asked(graded_dataset):
    only_bad = RecordFactory(dataset=graded_dataset)
    prefer(only_bad, None, None, both_bad=True)
    bad_but_b = RecordFactory(dataset=graded_dataset)
    prefer(bad_but_b, "response-2", 1, both_bad=True)
    minority_bad = RecordFactory(dataset=graded_dataset)   # 1 of 3 calls both bad: kept, and still votes
    prefer(minority_bad, "response-1", 2)
    prefer(minority_bad, "response-1", 2)
    prefer(minority_bad, "response-2", 0, both_bad=True)
    half_bad = RecordFactory(dataset=graded_dataset)       # 1 of 2: not a majority, kept
    prefer(half_bad, "response-1", 1)
    prefer(half_bad, None, None, both_bad=True)
    rows = export(graded_dataset, margin_from="strength")
    assert [r["record_id"] for r in rows] == [minority_bad.pk, half_bad.pk]
    assert rows[0]["annotators"] == 3 and rows[0]["strength_margin"] == pytest.approx((2 + 2 - 0) / 3)
    assert rows[1]["annotators"] == 1 and rows[1]["strength_margin"] == 1.0
    rows = export(graded_dataset, margin_from="strength", include_both_bad=True)
    # the record with only "both bad" has no preference to export
    assert [r["record_id"] for r in rows] == [bad_but_b.pk, minority_bad.pk, half_bad.pk]
    assert rows[0]["chosen_field"] == "response-2" and rows[0]["strength_margin"] == 1.0


def test_margin_from_strength_needs_a_preference_question():
    ds = DatasetFactory()
    with pytest.raises(ValidationError) as exc:
        export(ds, margin_from="strength")
    assert "needs a preference question" in errors_of(exc.value)["margin_from"]
    with pytest.raises(ValidationError) as exc:
        export(ds, margin_from="loudness")
    assert "must be one of votes, strength" in errors_of(exc.value)["margin_from"]


def test_export_api_writes_strength_as_margin(graded_dataset, admin_user):
    from annotation.models import Membership
    Membership.objects.update_or_create(user=admin_user, workspace=graded_dataset.workspace,
                                        defaults={"role": "admin"})
    rec = RecordFactory(dataset=graded_dataset)
    prefer(rec, "response-1", 2)
    bad = RecordFactory(dataset=graded_dataset)
    prefer(bad, "response-2", 0, both_bad=True)
    client = client_for(admin_user)
    base = f"/api/v1/datasets/{graded_dataset.pk}/triplets/?format=jsonl"
    rows = [orjson.loads(x) for x in b"".join(client.get(base + "&margin_from=strength").streaming_content).splitlines()]
    assert [(r["record_id"], r["strength_margin"]) for r in rows] == [(rec.pk, 2.0)]
    rows = [orjson.loads(x) for x in b"".join(
        client.get(base + "&margin_from=strength&include_both_bad=true").streaming_content).splitlines()]
    assert [(r["record_id"], r["strength_margin"]) for r in rows] == [(rec.pk, 2.0), (bad.pk, 0.0)]
    resp = client.get(base + "&include_both_bad=maybe")
    assert resp.status_code == 400 and "include_both_bad" in resp.json()


# --- agreement and dashboard -------------------------------------------------------------------

def test_agreement_reads_preferences_as_pairwise_votes(graded_dataset):
    users = [UserFactory() for _ in range(3)]
    for u in users:
        from annotation.models import Membership
        Membership.objects.create(user=u, workspace=graded_dataset.workspace, role="annotator")
    graded_dataset.min_submitted = 3
    graded_dataset.save(update_fields=["min_submitted"])
    first, second = RecordFactory(dataset=graded_dataset), RecordFactory(dataset=graded_dataset)
    for u, (field, s) in zip(users, [("response-1", 3), ("response-1", 1), ("response-2", 2)]):
        response_upsert(user=u, record=first, values={"graded": {"preferred": field, "strength": s}},
                        status="submitted")
    for u, value in zip(users[:2], [{"both_bad": True}, {"preferred": "response-2", "strength": 0, "both_bad": True}]):
        response_upsert(user=u, record=second, values={"graded": value}, status="submitted")
    report = dataset_agreement(graded_dataset)
    assert report["question"] == "graded" and report["fields"] == ["response-1", "response-2"]
    # first record: 3 votes, pairs of annotators agree 1 of 3 times; the second gives one vote only
    assert report["submitted_responses"] == 4
    assert report["pairwise_agreement"]["value"] == 0.3333  # rounded to 4 places in the report
    quality = dataset_quality(graded_dataset)
    assert quality.question == "graded"
    assert quality.overall_agreement == pytest.approx(1 / 3)
    assert quality.both_bad_records == 1


def test_dashboard_shows_both_bad_records(graded_dataset, admin_user, client):
    from annotation.models import Membership
    Membership.objects.update_or_create(user=admin_user, workspace=graded_dataset.workspace,
                                        defaults={"role": "admin"})
    for _ in range(2):
        prefer(RecordFactory(dataset=graded_dataset), None, None, both_bad=True)
    prefer(RecordFactory(dataset=graded_dataset), "response-1", 1)
    client.force_login(admin_user)
    html = client.get(f"/datasets/{graded_dataset.pk}/").content.decode()
    assert 'data-stat="both-bad"' in html and "both bad: 2 records" in html


# --- pages: the annotate form, dataset creation, the export job --------------------------------

HX = {"HTTP_HX_REQUEST": "true"}


def page_client(user):
    from django.test import Client
    c = Client()
    c.force_login(user)
    return c


def test_annotate_form_shows_the_scale_in_slot_terms_and_saves_answers(graded_dataset, annotator):
    import re

    from django.urls import reverse

    from annotation.models import Dataset, Membership
    from annotation.services import display_order_for
    Membership.objects.get_or_create(user=annotator, workspace=graded_dataset.workspace,
                                     defaults={"role": "annotator"})
    Dataset.objects.filter(pk=graded_dataset.pk).update(shuffle_responses=True)
    # a record shown as B, A (response-2 on the left) to this annotator
    for _ in range(40):
        rec = RecordFactory(dataset=graded_dataset, fields={"prompt": "Say <b>hi</b>", "response-1": "one",
                                                            "response-2": "two"})
        if display_order_for(record=rec, user_id=annotator.pk, field_names=["response-1", "response-2"],
                             shuffle=True)[0] == "response-2":
            break
        rec.delete()
    else:
        pytest.skip("no swapped order found")
    c = page_client(annotator)
    html = c.get(reverse("annotate", args=[graded_dataset.pk])).content.decode()
    assert "keys <kbd>1</kbd>–<kbd>8</kbd> from Response A to Response B" in html and "<kbd>0</kbd> both bad" in html
    # key 1 = slot A (response-2 here) significantly better; key 8 = slot B (response-1) significantly better
    assert re.search(r'data-key="1" data-slot="A">\s*<input type="radio" name="q__graded" value="response-2:3"', html)
    assert re.search(r'data-key="8" data-slot="B">\s*<input type="radio" name="q__graded" value="response-1:3"', html)
    assert re.search(r'data-key="5" data-slot="B">\s*<input type="radio" name="q__graded" value="response-1:0"', html)
    assert "negligibly better / unsure" in html
    # the shortcuts panel lists this page's keys: no ranking keys on a dataset without a ranking
    shortcuts = html[html.index('class="panel shortcuts"'):]
    assert "how much better" in shortcuts and "rank the selected response" not in shortcuts
    assert "reorder the ranking list" not in shortcuts
    r = c.post(reverse("record-respond", args=[graded_dataset.pk, rec.pk]),
               {"action": "submit", "q__graded": "response-2:9"}, **HX)
    assert r.status_code == 422 and "strength 9 is not one of" in r.content.decode()
    assert not Response.objects.filter(record=rec, status="submitted").exists()
    r = c.post(reverse("record-respond", args=[graded_dataset.pk, rec.pk]),
               {"action": "submit", "q__graded": "response-2:2", "q__graded__both_bad": "1"}, **HX)
    assert r.status_code == 200
    saved = Response.objects.get(record=rec, user=annotator)
    assert saved.status == "submitted"
    assert saved.values == {"graded": {"preferred": "response-2", "strength": 2, "both_bad": True}}
    # the history page shows the answer checked again
    html = c.get(reverse("history-record", args=[graded_dataset.pk, rec.pk])).content.decode()
    assert re.search(r'value="response-2:2" checked', html)
    assert re.search(r'name="q__graded__both_bad" value="1" checked', html)


def test_create_form_offers_a_graded_preference(admin_user, workspace):
    from django.urls import reverse

    from annotation.models import Dataset
    c = page_client(admin_user)
    base = {"workspace": workspace.pk, "preset": "pairwise", "question": "preference", "response_kind": "markdown",
            "min_submitted": "1"}
    r = c.post(reverse("dataset-create"), {**base, "name": "three", "responses": "3"})
    assert r.status_code == 422 and "compares exactly two responses" in r.content.decode()
    assert not Dataset.objects.filter(name="three").exists()
    r = c.post(reverse("dataset-create"), {**base, "name": "graded", "responses": "2"})
    assert r.status_code == 302
    q = Dataset.objects.get(name="graded").questions.get()
    assert q.kind == "preference" and q.options["compares"] == ["response-1", "response-2"]
    assert q.options["both_bad"] is True and len(q.options["scale"]) == 4


def test_export_job_from_the_dashboard_asks_for_strength(graded_dataset, admin_user):
    from django.urls import reverse

    from annotation.models import Job, Membership
    Membership.objects.update_or_create(user=admin_user, workspace=graded_dataset.workspace,
                                        defaults={"role": "admin"})
    c = page_client(admin_user)
    html = c.get(reverse("dashboard", args=[graded_dataset.pk])).content.decode()
    assert 'name="margin_from"' in html and 'name="include_both_bad"' in html
    r = c.post(reverse("dataset-export", args=[graded_dataset.pk]),
               {"format": "jsonl", "margin_from": "strength", "include_both_bad": "on"})
    assert r.status_code == 302
    job = Job.objects.get(dataset=graded_dataset, kind="export")
    assert job.params["margin_from"] == "strength" and job.params["include_both_bad"] is True


def test_record_page_shows_preference_answers_in_words(graded_dataset, admin_user):
    from django.urls import reverse

    from annotation.models import Membership
    Membership.objects.update_or_create(user=admin_user, workspace=graded_dataset.workspace,
                                        defaults={"role": "admin"})
    rec = RecordFactory(dataset=graded_dataset)
    prefer(rec, "response-2", 1, both_bad=True)
    html = page_client(admin_user).get(reverse("record-detail", args=[graded_dataset.pk, rec.pk])).content.decode()
    assert "response-2 slightly better (1) · both bad" in html


def test_cli_writes_strength_as_margin(graded_dataset, tmp_path):
    from django.core.management import call_command
    rec = RecordFactory(dataset=graded_dataset)
    prefer(rec, "response-1", 3)
    bad = RecordFactory(dataset=graded_dataset)
    prefer(bad, None, None, both_bad=True)
    out = tmp_path / "graded.jsonl"
    call_command("export_triplets", graded_dataset.pk, "--out", str(out), "--margin-from", "strength",
                 "--include-both-bad", "--quiet")
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [(r["record_id"], r["chosen_field"], r["strength_margin"]) for r in rows] == [(rec.pk, "response-1", 3.0)]
