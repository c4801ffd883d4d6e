"""The anchoring experiment: judges' suggestions shown to a share of (annotator, record) assignments,
decided per pair, and whether they were shown stored on each response by the server."""
import pytest
from django.urls import reverse

from annotation.models import Dataset, Membership, Record, Response
from annotation.quality.serving import suggestion_assigned
from annotation.selectors import suggestions_shown_for
from tests.conftest import client_for
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, SuggestionFactory, UserFactory
from tests.helpers import login

RANKING = {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]}


def setup(*, share: float, records: int = 1, with_suggestions: bool = True, show: bool = True):
    ds = DatasetFactory(min_submitted=1, gold_rate=0.0, show_suggestions=show, suggestion_share=share)
    recs = [RecordFactory(dataset=ds) for _ in range(records)]
    if with_suggestions:
        for rec in recs:
            SuggestionFactory(record=rec, agent="judge-x", rationale="Response 1 is clearer.")
    user = UserFactory(username="ann")
    MembershipFactory(user=user, workspace=ds.workspace, role=Membership.Role.ANNOTATOR)
    return ds, recs, user


def next_and_submit(api, ds):
    body = api.get(f"/api/v1/datasets/{ds.pk}/next/").json()
    resp = api.post(f"/api/v1/records/{body['id']}/responses/", {"values": RANKING, "status": "submitted"},
                    format="json")
    assert resp.status_code == 201
    return body, Response.objects.get(pk=resp.json()["id"])


@pytest.mark.django_db
def test_share_one_shows_suggestions_and_stores_true():
    ds, _, user = setup(share=1.0)
    body, response = next_and_submit(client_for(user), ds)
    assert [s["agent"] for s in body["suggestions"]] == ["judge-x"]
    assert response.suggestion_shown is True


@pytest.mark.django_db
def test_share_zero_hides_suggestions_everywhere_and_stores_false():
    ds, (rec,), user = setup(share=0.0)
    api = client_for(user)
    page = login(user).get(reverse("annotate", args=[ds.pk])).content.decode()
    assert f'data-record="{rec.pk}"' in page
    assert "judge-x" not in page and "pre-filled by a judge" not in page and "Response 1 is clearer" not in page
    assert api.get(f"/api/v1/records/{rec.pk}/").json()["suggestions"] == []
    body, response = next_and_submit(api, ds)
    assert body["suggestions"] == []
    assert response.suggestion_shown is False
    # an admin reviewing the record still sees the judge's suggestion
    admin = UserFactory(username="boss")
    MembershipFactory(user=admin, workspace=ds.workspace, role=Membership.Role.ADMIN)
    assert [s["agent"] for s in client_for(admin).get(f"/api/v1/records/{rec.pk}/").json()["suggestions"]] == ["judge-x"]


@pytest.mark.django_db
def test_nothing_to_show_stores_none():
    ds, _, user = setup(share=1.0, with_suggestions=False)
    _, response = next_and_submit(client_for(user), ds)
    assert response.suggestion_shown is None
    Dataset.objects.filter(pk=ds.pk).update(show_suggestions=False)
    rec = RecordFactory(dataset=ds)
    SuggestionFactory(record=rec)
    ds.refresh_from_db()
    _, response = next_and_submit(client_for(user), ds)
    assert response.record_id == rec.pk and response.suggestion_shown is None  # suggestions off


@pytest.mark.django_db
def test_the_client_cannot_set_suggestion_shown():
    ds, (rec,), user = setup(share=0.0)
    api = client_for(user)
    api.get(f"/api/v1/datasets/{ds.pk}/next/")
    resp = api.post(f"/api/v1/records/{rec.pk}/responses/",
                    {"values": RANKING, "status": "submitted", "suggestion_shown": True}, format="json")
    assert resp.status_code == 400 and "suggestion_shown" in resp.json()
    assert not Response.objects.filter(record=rec).exists()


@pytest.mark.django_db
def test_half_share_shows_about_half_the_pairs_deterministically():
    ds, recs, user = setup(share=0.5, records=40)
    others = []
    for i in range(4):
        u = UserFactory(username=f"other-{i}")
        MembershipFactory(user=u, workspace=ds.workspace, role=Membership.Role.ANNOTATOR)
        others.append(u)
    pairs = [(rec, u) for rec in recs for u in [user, *others]]
    shown = [suggestions_shown_for(record=rec, user=u, dataset=ds, has_suggestions=True) for rec, u in pairs]
    assert 80 <= sum(shown) <= 120                                      # 200 pairs at one half
    assert shown == [suggestions_shown_for(record=rec, user=u, dataset=ds) for rec, u in pairs]  # the same again
    assert any(len(set(shown[i * 5:i * 5 + 5])) == 2 for i in range(40))  # per pair, not per record
    # the API and the stored flag follow the same decision, record by record
    api = client_for(user)
    seen = set()
    for _ in range(16):
        body, response = next_and_submit(api, ds)
        expected = suggestion_assigned(record_id=body["id"], user_id=user.pk, share=0.5)
        assert bool(body["suggestions"]) is expected
        assert response.suggestion_shown is expected
        seen.add(expected)
    assert seen == {True, False}
    assert Record.objects.filter(dataset=ds, completed=True).count() == 16
