"""REST API: responses (validation, counters, over-assignment) and bulk suggestions."""
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Dataset, Lease, Record, Response, Suggestion
from annotation.services import leases_reclaim
from tests.conftest import client_for
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, UserFactory

pytestmark = pytest.mark.django_db
RANK = {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]}


def _post(client, record, **body):
    return client.post(f"/api/v1/records/{record.pk}/responses/", body, format="json")


def test_submit_then_update(dataset, annotator, annotator_client_api):
    rec = RecordFactory(dataset=dataset)
    resp = _post(annotator_client_api, rec, values=RANK, status="draft", display_order=["response-2", "response-1"],
                 duration=3.5)
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["status"] == "draft" and body["warnings"] == [] and body["over_assigned"] is False
    assert body["display_order"] == ["response-2", "response-1"] and body["duration"] == 3.5
    resp = _post(annotator_client_api, rec, values=RANK, status="submitted")
    assert resp.status_code == 200 and resp.json()["status"] == "submitted"
    assert resp.json()["values"] == RANK
    rec.refresh_from_db()
    assert rec.submitted_count == 1 and rec.completed is True
    assert Response.objects.filter(record=rec).count() == 1


def test_plain_list_ranking_shorthand(dataset, annotator_client_api):
    rec = RecordFactory(dataset=dataset)
    resp = _post(annotator_client_api, rec, values={"ranking": ["response-2", "response-1"]}, status="submitted")
    assert resp.status_code == 201
    assert resp.json()["values"]["ranking"][0] == {"value": "response-2", "rank": 1}


@pytest.mark.parametrize("body,field,reason", [
    ({"values": {"ranking": [{"value": "response-1", "rank": 1}]}, "status": "submitted"}, "values.ranking", "missing"),
    ({"values": {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-1", "rank": 2}]},
      "status": "submitted"}, "values.ranking", "twice"),
    ({"values": {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 1}]},
      "status": "submitted"}, "values.ranking", "ties are not allowed"),
    ({"values": {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-9", "rank": 2}]},
      "status": "submitted"}, "values.ranking", "not one of"),
    ({"values": {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 7}]},
      "status": "submitted"}, "values.ranking", "from 1 to 2"),
    ({"values": {"mood": "happy"}, "status": "submitted"}, "values", "unknown questions"),
    ({"values": {}, "status": "submitted"}, "values.ranking", "required"),
    ({"values": RANK, "status": "done"}, "status", "valid choice"),
    ({"values": RANK}, "status", "required"),
    ({"values": RANK, "status": "submitted", "duration": -1}, "duration", "greater than or equal"),
    ({"values": RANK, "status": "submitted", "colour": 1}, "colour", "unknown field"),
    ({"values": "best", "status": "submitted"}, "values", "object"),
])
def test_invalid_responses_are_400_and_store_nothing(dataset, annotator_client_api, body, field, reason):
    rec = RecordFactory(dataset=dataset)
    resp = annotator_client_api.post(f"/api/v1/records/{rec.pk}/responses/", body, format="json")
    assert resp.status_code == 400, resp.content
    assert field in resp.json() and reason in str(resp.json()[field]), resp.json()
    rec.refresh_from_db()
    assert rec.submitted_count == 0 and not Response.objects.exists()


def test_invalid_update_keeps_the_stored_response(dataset, annotator_client_api):
    rec = RecordFactory(dataset=dataset)
    assert _post(annotator_client_api, rec, values=RANK, status="submitted").status_code == 201
    bad = {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 1}]}
    assert _post(annotator_client_api, rec, values=bad, status="submitted").status_code == 400
    assert Response.objects.get(record=rec).values == RANK


def test_ties_allowed_when_dataset_allows(workspace, annotator_client_api):
    ds = DatasetFactory(workspace=workspace, allow_ties=True)
    rec = RecordFactory(dataset=ds)
    tie = {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 1}]}
    assert _post(annotator_client_api, rec, values=tie, status="submitted").status_code == 201


def test_rating_and_label_values_outside_options(workspace, admin_client_api, annotator_client_api):
    created = admin_client_api.post("/api/v1/datasets/", {
        "workspace": workspace.pk, "name": "compare",
        "fields": [{"name": "prompt"}, {"name": "response-1"}, {"name": "response-2"}],
        "questions": [
            {"name": "better", "kind": "rating", "options": {"values": [0, 1, 2], "compares": ["response-1", "response-2"]}},
            {"name": "topic", "kind": "label", "options": {"values": ["code", "math"]}},
        ]}, format="json").json()
    admin_client_api.post(f"/api/v1/datasets/{created['id']}/publish/")
    rec = RecordFactory(dataset_id=created["id"], fields={"prompt": "p", "response-1": "a", "response-2": "b"})
    resp = _post(annotator_client_api, rec, values={"better": 3, "topic": "code"}, status="submitted")
    assert resp.status_code == 400 and "not one of" in resp.json()["values.better"][0]
    resp = _post(annotator_client_api, rec, values={"better": 1, "topic": "poetry"}, status="submitted")
    assert resp.status_code == 400 and "poetry" in resp.json()["values.topic"][0]
    resp = _post(annotator_client_api, rec, values={"better": 0, "topic": "math"}, status="submitted")
    assert resp.status_code == 201


def test_over_assigned_submit_is_stored_with_a_warning(dataset, annotator_client_api):
    rec = RecordFactory(dataset=dataset)
    first = UserFactory()
    MembershipFactory(user=first, workspace=dataset.workspace)
    # the annotator holds the record (a draft), their lease expires and the slot goes to `first`
    assert _post(annotator_client_api, rec, values={}, status="draft").status_code == 201
    Lease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    leases_reclaim(dataset=dataset)
    assert _post(client_for(first), rec, values=RANK, status="submitted").status_code == 201
    resp = _post(annotator_client_api, rec, values=RANK, status="submitted")
    assert resp.status_code == 200  # their draft became the submit
    body = resp.json()
    assert body["over_assigned"] is True and "stored" in body["warnings"][0]
    assert Response.objects.filter(record=rec, status="submitted").count() == 2
    assert Record.objects.get(pk=rec.pk).submitted_count == 2


def test_response_list_admin_sees_all_annotator_own(dataset, annotator, annotator_client_api, admin_client_api):
    Dataset.objects.filter(pk=dataset.pk).update(min_submitted=2)
    rec = RecordFactory(dataset=dataset)
    other = UserFactory()
    MembershipFactory(user=other, workspace=dataset.workspace)
    _post(client_for(other), rec, values=RANK, status="submitted")
    _post(annotator_client_api, rec, values={}, status="discarded")
    own = annotator_client_api.get(f"/api/v1/records/{rec.pk}/responses/").json()
    assert [(r["user"], r["status"]) for r in own] == [("annotator-1", "discarded")]
    everyone = admin_client_api.get(f"/api/v1/records/{rec.pk}/responses/").json()
    assert {r["user"] for r in everyone} == {"annotator-1", other.username}


def test_responses_on_other_workspace_are_404(annotator_client_api):
    rec = RecordFactory(dataset=DatasetFactory())
    assert _post(annotator_client_api, rec, values=RANK, status="submitted").status_code == 404
    assert annotator_client_api.get(f"/api/v1/records/{rec.pk}/responses/").status_code == 404
    assert not Response.objects.exists()


def test_archived_dataset_takes_no_responses(dataset, annotator_client_api):
    rec = RecordFactory(dataset=dataset)
    dataset.status = "archived"
    dataset.save()
    resp = _post(annotator_client_api, rec, values=RANK, status="submitted")
    assert resp.status_code == 400 and "archived" in resp.json()["dataset"][0]


# --- suggestions -------------------------------------------------------------------------------

def test_bulk_suggestions(dataset, admin_client_api):
    a = RecordFactory(dataset=dataset, external_id="a")
    b = RecordFactory(dataset=dataset, external_id="b")
    url = f"/api/v1/datasets/{dataset.pk}/suggestions/"
    items = [
        {"record": a.pk, "question": "ranking", "value": ["response-2", "response-1"], "score": 0.8,
         "agent": "judge", "rationale": "B is correct"},
        {"external_id": "b", "question": "ranking", "value": RANK["ranking"], "agent": "judge"},
        {"external_id": "zzz", "question": "ranking", "value": RANK["ranking"]},
        {"record": a.pk, "question": "nope", "value": 1},
        {"record": a.pk, "question": "ranking", "value": [{"value": "response-1", "rank": 1}]},
        "not an object",
    ]
    resp = admin_client_api.post(url, items, format="json")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert (body["created"], body["updated"]) == (2, 0)
    assert [e["index"] for e in body["errors"]] == [2, 3, 4, 5]
    assert "record" in body["errors"][0]["errors"] and "question" in body["errors"][1]["errors"]
    assert "values.ranking" in body["errors"][2]["errors"]
    assert Suggestion.objects.get(record=a).rationale == "B is correct"
    again = admin_client_api.post(url, items[:2], format="json").json()
    assert (again["created"], again["updated"], again["errors"]) == (0, 2, [])
    assert Suggestion.objects.filter(record__in=[a, b]).count() == 2


def test_suggestions_body_must_be_a_list(dataset, admin_client_api):
    resp = admin_client_api.post(f"/api/v1/datasets/{dataset.pk}/suggestions/", {"record": 1}, format="json")
    assert resp.status_code == 400 and "list" in resp.json()["body"][0]


def test_suggestions_need_admin(dataset, annotator_client_api):
    rec = RecordFactory(dataset=dataset)
    item = [{"record": rec.pk, "question": "ranking", "value": RANK["ranking"]}]
    assert annotator_client_api.post(f"/api/v1/datasets/{dataset.pk}/suggestions/", item,
                                     format="json").status_code == 403
    other = DatasetFactory()
    outsider_admin = UserFactory()
    MembershipFactory(user=outsider_admin, workspace=other.workspace, role="admin")
    assert client_for(outsider_admin).post(f"/api/v1/datasets/{dataset.pk}/suggestions/", item,
                                           format="json").status_code == 404
    assert not Suggestion.objects.exists()


def test_draft_after_submit_is_refused_and_changes_nothing(dataset, annotator_client_api):
    rec = RecordFactory(dataset=dataset)
    assert _post(annotator_client_api, rec, values=RANK, status="submitted").status_code == 201
    resp = _post(annotator_client_api, rec, values={}, status="draft")
    assert resp.status_code == 409
    assert "already submitted" in resp.json()["status"][0]
    stored = Response.objects.get(record=rec)
    assert stored.status == "submitted" and stored.values == RANK
    rec.refresh_from_db()
    assert rec.submitted_count == 1 and rec.completed is True
    # an explicit edit (a submit with new values) still changes it
    edited = {"ranking": [{"value": "response-2", "rank": 1}, {"value": "response-1", "rank": 2}]}
    assert _post(annotator_client_api, rec, values=edited, status="submitted").status_code == 200
    assert Response.objects.get(record=rec).values == edited
    assert Record.objects.get(pk=rec.pk).submitted_count == 1


def test_answer_to_a_record_not_handed_out_is_refused_once_it_is_full(dataset, annotator_client_api):
    """A record whose overlap is taken (answered or leased by others) takes no answer from a caller
    that next did not hand it to: 409, nothing stored, counters unchanged."""
    other = UserFactory()
    MembershipFactory(user=other, workspace=dataset.workspace)
    full = RecordFactory(dataset=dataset)
    leased = RecordFactory(dataset=dataset)
    assert _post(client_for(other), full, values=RANK, status="submitted").status_code == 201
    Lease.objects.create(record=leased, dataset=dataset, user=other, expires_at=timezone.now() + timedelta(minutes=5))
    Record.objects.filter(pk=leased.pk).update(leased_count=1)
    for rec in (full, leased):
        for status, values in (("submitted", RANK), ("discarded", {}), ("draft", {})):
            resp = _post(annotator_client_api, rec, values=values, status=status)
            assert resp.status_code == 409, (rec, status)
            assert "not handed to you" in resp.json()["record"][0]
    assert not Response.objects.filter(record__in=[full, leased]).exclude(user=other).exists()
    assert list(Record.objects.filter(pk__in=[full.pk, leased.pk]).order_by("pk")
                .values_list("submitted_count", "leased_count")) == [(1, 0), (0, 1)]


def test_answer_to_an_open_record_takes_its_slot(dataset, annotator, annotator_client_api):
    """Answering a record with a free slot without next is admitted and counted: a submit takes the
    slot, a draft takes it as a lease (so next hands the record to nobody else)."""
    Dataset.objects.filter(pk=dataset.pk).update(min_submitted=1)
    submitted, drafted = RecordFactory(dataset=dataset), RecordFactory(dataset=dataset)
    assert _post(annotator_client_api, submitted, values=RANK, status="submitted").status_code == 201
    assert _post(annotator_client_api, drafted, values={}, status="draft").status_code == 201
    assert Record.objects.get(pk=submitted.pk).completed is True
    assert Record.objects.get(pk=drafted.pk).leased_count == 1
    assert Lease.objects.filter(record=drafted, user=annotator).exists()
    other = UserFactory()
    MembershipFactory(user=other, workspace=dataset.workspace)
    assert client_for(other).get(f"/api/v1/datasets/{dataset.pk}/next/").status_code == 204


def test_submits_to_every_record_id_never_push_a_record_over_its_overlap(dataset):
    """Annotators who submit to every record id without asking next: each record takes exactly
    its overlap, every other submit is a 409."""
    Dataset.objects.filter(pk=dataset.pk).update(min_submitted=2)
    records = [RecordFactory(dataset=dataset) for _ in range(5)]
    clients = []
    for _ in range(3):
        user = UserFactory()
        MembershipFactory(user=user, workspace=dataset.workspace)
        clients.append(client_for(user))
    codes = [_post(c, rec, values=RANK, status="submitted").status_code for c in clients for rec in records]
    assert codes.count(201) == 10 and codes.count(409) == 5
    assert set(Record.objects.filter(dataset=dataset).values_list("submitted_count", "completed")) == {(2, True)}
