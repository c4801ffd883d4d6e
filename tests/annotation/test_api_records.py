"""REST API: record list (filters, cursor pagination), record detail, next record."""
import pytest

from annotation.models import Dataset, Lease, Question
from annotation.services import response_upsert
from tests.conftest import client_for
from tests.factories import (
    DatasetFactory,
    MembershipFactory,
    RecordFactory,
    ResponseFactory,
    SuggestionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
RANK = {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]}


def _ids(resp):
    assert resp.status_code == 200, resp.content
    return [r["id"] for r in resp.json()["results"]]


def test_list_records_with_my_response_and_suggestions(dataset, annotator, annotator_client_api):
    dataset.visible_metadata = ["model"]  # annotators see the metadata keys the dataset shows them
    dataset.save(update_fields=["visible_metadata"])
    rec = RecordFactory(dataset=dataset, metadata={"model": "a"}, priority=2.5)
    ResponseFactory(record=rec, user=annotator, status="draft", values={"ranking": RANK["ranking"]})
    ResponseFactory(record=rec, user=UserFactory(), status="submitted")  # someone else's: not shown
    q = Question.objects.get(dataset=dataset, name="ranking")
    SuggestionFactory(record=rec, question=q, value=RANK["ranking"], score=0.9, agent="judge-x",
                      rationale="A is clearer")
    body = annotator_client_api.get(f"/api/v1/datasets/{dataset.pk}/records/").json()
    (item,) = body["results"]
    assert item["external_id"] == rec.external_id and item["fields"]["prompt"].startswith("Prompt")
    assert item["metadata"] == {"model": "a"} and item["completed"] is False
    assert "priority" not in item  # the queue order (the judges' doubt) is for admins
    assert item["response"]["status"] == "draft" and item["response"]["user"] == "annotator-1"
    assert item["suggestions"][0]["agent"] == "judge-x" and item["suggestions"][0]["question"] == "ranking"


def test_suggestions_hidden_from_annotators_unless_shown(dataset, annotator_client_api, admin_client_api):
    dataset.show_suggestions = False
    dataset.save()
    rec = RecordFactory(dataset=dataset)
    SuggestionFactory(record=rec, question=dataset.questions.get(), value=RANK["ranking"], agent="j")
    assert annotator_client_api.get(f"/api/v1/records/{rec.pk}/").json()["suggestions"] == []
    assert len(admin_client_api.get(f"/api/v1/records/{rec.pk}/").json()["suggestions"]) == 1


def test_filters(dataset, annotator, annotator_client_api):
    dataset.visible_metadata = ["model", "turns", "hard", "nested"]
    dataset.save(update_fields=["visible_metadata"])
    done = RecordFactory(dataset=dataset, metadata={"model": "gpt", "turns": 2, "hard": True})
    draft = RecordFactory(dataset=dataset, metadata={"model": "llama", "turns": 1})
    discarded = RecordFactory(dataset=dataset, metadata={"model": "gpt", "nested": {"lang": "de"}})
    untouched = RecordFactory(dataset=dataset, metadata={})
    response_upsert(user=annotator, record=done, values=RANK, status="submitted")
    response_upsert(user=annotator, record=draft, values={}, status="draft")
    response_upsert(user=annotator, record=discarded, values={}, status="discarded")
    url = f"/api/v1/datasets/{dataset.pk}/records/"
    get = annotator_client_api.get
    assert _ids(get(url)) == [done.pk, draft.pk, discarded.pk, untouched.pk]
    assert _ids(get(url + "?status=completed")) == [done.pk]
    assert _ids(get(url + "?status=pending")) == [draft.pk, discarded.pk, untouched.pk]
    assert _ids(get(url + "?response_status=submitted")) == [done.pk]
    assert _ids(get(url + "?response_status=draft")) == [draft.pk]
    assert _ids(get(url + "?response_status=discarded")) == [discarded.pk]
    assert _ids(get(url + "?response_status=missing")) == [untouched.pk]
    assert _ids(get(url + "?has_my_response=true")) == [done.pk, draft.pk, discarded.pk]
    assert _ids(get(url + "?has_my_response=false")) == [untouched.pk]
    assert _ids(get(url + "?metadata.model=gpt")) == [done.pk, discarded.pk]
    assert _ids(get(url + "?metadata.model=gpt&status=pending")) == [discarded.pk]
    assert _ids(get(url + "?metadata.turns=2")) == [done.pk]
    assert _ids(get(url + "?metadata.hard=true")) == [done.pk]
    assert _ids(get(url + "?metadata.nested.lang=de")) == [discarded.pk]
    assert _ids(get(url + "?metadata.model=none")) == []
    # another annotator's view of "my response" is their own
    other = UserFactory()
    MembershipFactory(user=other, workspace=dataset.workspace)
    assert _ids(client_for(other).get(url + "?has_my_response=true")) == []


@pytest.mark.parametrize("query,field", [
    ("status=open", "status"),
    ("response_status=maybe", "response_status"),
    ("has_my_response=perhaps", "has_my_response"),
    ("metadata.a%27b=1", "metadata.a'b"),
])
def test_bad_filters_are_400(dataset, annotator_client_api, query, field):
    resp = annotator_client_api.get(f"/api/v1/datasets/{dataset.pk}/records/?{query}")
    assert resp.status_code == 400 and field in resp.json(), resp.content


def test_cursor_pagination_walks_all_records_once(dataset, annotator_client_api):
    records = [RecordFactory(dataset=dataset) for _ in range(7)]
    url = f"/api/v1/datasets/{dataset.pk}/records/?page_size=3"
    seen, pages = [], 0
    while url:
        body = annotator_client_api.get(url).json()
        seen += [r["id"] for r in body["results"]]
        url = body["next"]
        pages += 1
    assert seen == [r.pk for r in records] and pages == 3
    assert annotator_client_api.get(f"/api/v1/datasets/{dataset.pk}/records/?cursor=garbage").status_code == 404


def test_records_of_other_workspace_are_404(dataset, annotator_client_api):
    other = DatasetFactory()
    rec = RecordFactory(dataset=other)
    assert annotator_client_api.get(f"/api/v1/datasets/{other.pk}/records/").status_code == 404
    assert annotator_client_api.get(f"/api/v1/records/{rec.pk}/").status_code == 404
    assert annotator_client_api.get(f"/api/v1/datasets/{other.pk}/next/").status_code == 404


def test_record_detail(dataset, annotator_client_api):
    rec = RecordFactory(dataset=dataset)
    body = annotator_client_api.get(f"/api/v1/records/{rec.pk}/").json()
    assert body["id"] == rec.pk and body["response"] is None and body["submitted_count"] == 0


def test_next_hands_out_by_priority_and_204_when_done(dataset, annotator, annotator_client_api):
    low = RecordFactory(dataset=dataset, priority=0)
    high = RecordFactory(dataset=dataset, priority=9)
    url = f"/api/v1/datasets/{dataset.pk}/next/"
    first = annotator_client_api.get(url)
    assert first.status_code == 200 and first.json()["id"] == high.pk
    assert first.json()["display_order"] == ["response-1", "response-2"]  # shuffle off in the factory
    assert first.json()["draft"] is None
    assert Lease.objects.filter(record=high, user=annotator).exists()
    assert annotator_client_api.get(url).json()["id"] == high.pk  # resumes its lease
    annotator_client_api.post(f"/api/v1/records/{high.pk}/responses/", {"values": RANK, "status": "submitted"},
                              format="json")
    assert annotator_client_api.get(url).json()["id"] == low.pk
    annotator_client_api.post(f"/api/v1/records/{low.pk}/responses/", {"values": {}, "status": "discarded"},
                              format="json")
    done = annotator_client_api.get(url)
    assert done.status_code == 204 and done.content == b""


def test_next_returns_the_draft_to_resume(dataset, annotator, annotator_client_api):
    rec = RecordFactory(dataset=dataset)
    RecordFactory(dataset=dataset)
    partial = {"ranking": RANK["ranking"]}
    annotator_client_api.post(f"/api/v1/records/{rec.pk}/responses/", {"values": partial, "status": "draft"},
                              format="json")
    Lease.objects.all().delete()
    body = annotator_client_api.get(f"/api/v1/datasets/{dataset.pk}/next/").json()
    assert body["id"] == rec.pk and body["draft"] == partial and body["response"]["status"] == "draft"


def test_next_shuffles_display_order_per_annotator(workspace):
    ds = DatasetFactory(workspace=workspace, shuffle_responses=True, min_submitted=50, responses=4)
    RecordFactory(dataset=ds, fields={"prompt": "p", "response-1": "a", "response-2": "b", "response-3": "c",
                                      "response-4": "d"})
    orders = set()
    for _ in range(12):
        user = UserFactory()
        MembershipFactory(user=user, workspace=workspace)
        client = client_for(user)
        order = client.get(f"/api/v1/datasets/{ds.pk}/next/").json()["display_order"]
        assert sorted(order) == ["response-1", "response-2", "response-3", "response-4"]
        assert client.get(f"/api/v1/datasets/{ds.pk}/next/").json()["display_order"] == order  # stable
        orders.add(tuple(order))
    assert len(orders) > 1


def test_next_needs_a_published_dataset(dataset, annotator_client_api):
    RecordFactory(dataset=dataset)
    Dataset.objects.filter(pk=dataset.pk).update(status="draft")
    resp = annotator_client_api.get(f"/api/v1/datasets/{dataset.pk}/next/")
    assert resp.status_code == 400 and "not published" in resp.json()["dataset"][0]
    assert not Lease.objects.exists()


def test_post_to_records_path_dispatches_to_the_import(dataset, admin_client_api):
    """GET and POST share /datasets/{id}/records/: POST reaches the import (annotation.apis_io)."""
    rows = [{"external_id": "imported-1", "fields": {"prompt": "p", "response-1": "a", "response-2": "b"}}]
    resp = admin_client_api.post(f"/api/v1/datasets/{dataset.pk}/records/", rows, format="json")
    assert resp.status_code in (200, 201), resp.content
    listed = admin_client_api.get(f"/api/v1/datasets/{dataset.pk}/records/").json()["results"]
    assert [r["external_id"] for r in listed] == ["imported-1"]


def test_the_queue_priority_is_shown_to_admins_only(dataset, annotator_client_api, admin_client_api):
    """A record's priority (the judges' doubt, the queue order) would tell an annotator that the judges
    disagree, and a gold record's would set it apart: the records list, detail and next leave it out
    for annotators and show it to admins."""
    dataset.min_submitted = 2  # both callers are handed it
    dataset.save(update_fields=["min_submitted"])
    rec = RecordFactory(dataset=dataset, priority=2.5)
    for client, shown in ((annotator_client_api, False), (admin_client_api, True)):
        listed = client.get(f"/api/v1/datasets/{dataset.pk}/records/").json()["results"][0]
        detail = client.get(f"/api/v1/records/{rec.pk}/").json()
        handed = client.get(f"/api/v1/datasets/{dataset.pk}/next/").json()
        assert handed["id"] == rec.pk
        for body in (listed, detail, handed):
            assert ("priority" in body) is shown and body.get("priority", 2.5) == 2.5
