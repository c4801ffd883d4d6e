"""Gold records in the annotation hot path: served at the dataset's gold_rate to every annotator
whatever the overlap, never counted toward an ordinary record's overlap, indistinguishable from
ordinary records for annotators; paused annotators get no new records; send-back reopens a record."""
import pytest
from django.urls import reverse

from annotation.models import AnnotatorStanding, Lease, Membership, Record, Response
from annotation.quality.gold import records_gold_set
from annotation.quality.serving import gold_due
from annotation.quality.standing import standing_set
from annotation.services import next_record_for, records_completion_refresh, response_upsert
from tests.conftest import client_for
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, UserFactory
from tests.helpers import login

R1, R2 = "response-1", "response-2"


def ranking(first, second):
    return {"ranking": [{"value": first, "rank": 1}, {"value": second, "rank": 2}]}


def member(dataset, name, role=Membership.Role.ANNOTATOR):
    user = UserFactory(username=name)
    MembershipFactory(user=user, workspace=dataset.workspace, role=role)
    return user


def gold_dataset(*, records: int, gold: int, rate: float, min_submitted: int = 1):
    """A dataset of `records` records, the first `gold` of them gold with response-1 best."""
    ds = DatasetFactory(min_submitted=min_submitted, gold_rate=rate)
    recs = [RecordFactory(dataset=ds) for _ in range(records)]
    records_gold_set(dataset=ds, answers={r.pk: ranking(R1, R2) for r in recs[:gold]})
    return ds, {r.pk for r in recs[:gold]}


# --- the schedule ------------------------------------------------------------------------------

def test_the_schedule_gives_exactly_one_gold_per_block_at_unpredictable_places():
    for rate, block in ((0.05, 20), (0.1, 10), (0.25, 4)):
        due = [n for n in range(20 * block) if gold_due(dataset_id=7, user_id=3, handed=n, rate=rate)]
        assert len(due) == 20                                            # 20 blocks: exactly one gold each
        assert [n // block for n in due] == list(range(20))
    # where the gold falls differs from block to block and from annotator to annotator
    offsets = {u: [n % 20 for n in range(400) if gold_due(dataset_id=7, user_id=u, handed=n, rate=0.05)]
               for u in (1, 2)}
    assert len(set(offsets[1])) > 5 and offsets[1] != offsets[2]
    # a rate that is not 1/k keeps the exact share: 30 handed at 0.3 hold 9 gold
    assert sum(gold_due(dataset_id=1, user_id=1, handed=n, rate=0.3) for n in range(30)) == 9
    assert not any(gold_due(dataset_id=1, user_id=1, handed=n, rate=0.0) for n in range(50))
    assert all(gold_due(dataset_id=1, user_id=1, handed=n, rate=1.0) for n in range(5))


# --- serving -----------------------------------------------------------------------------------

def annotate_all(user, ds, *, wrong_on_gold=False, gold_ids=frozenset(), limit=1000):
    """next + submit until nothing is left for `user`; returns the record ids handed, in order."""
    handed = []
    for _ in range(limit):
        record = next_record_for(user, ds)
        if record is None:
            return handed
        handed.append(record.pk)
        values = ranking(R2, R1) if (wrong_on_gold and record.pk in gold_ids) else ranking(R1, R2)
        result = response_upsert(user=user, record=record, values=values, status="submitted")
        assert not result.over_assigned and result.warnings == []
    raise AssertionError("never ran out of records")


@pytest.mark.django_db
def test_gold_is_served_at_the_rate_to_every_annotator_and_never_counts_toward_overlap():
    ds, gold = gold_dataset(records=200, gold=10, rate=0.1, min_submitted=1)
    a, b = member(ds, "ann-a"), member(ds, "ann-b")
    handed = {a.pk: [], b.pk: []}
    done = set()
    while len(done) < 2:  # the two annotators take turns
        for user in (a, b):
            if user.pk in done:
                continue
            record = next_record_for(user, ds)
            if record is None:
                done.add(user.pk)
                continue
            handed[user.pk].append(record.pk)
            result = response_upsert(user=user, record=record, values=ranking(R1, R2), status="submitted")
            assert not result.over_assigned and result.warnings == []
    for user_handed in handed.values():
        assert len(user_handed) == len(set(user_handed))                # never the same record twice
        assert sorted(pk for pk in user_handed if pk in gold) == sorted(gold)  # every gold record, once
        assert sum(pk in gold for pk in user_handed[:100]) == 10       # 10 blocks of 10: one gold each
    ordinary_a = [pk for pk in handed[a.pk] if pk not in gold]
    ordinary_b = [pk for pk in handed[b.pk] if pk not in gold]
    assert not set(ordinary_a) & set(ordinary_b)                        # min_submitted 1: one annotator each
    assert len(ordinary_a) + len(ordinary_b) == 190
    for rec in Record.objects.filter(dataset=ds):
        if rec.pk in gold:  # answered by both, complete from the start, nothing leased
            assert (rec.submitted_count, rec.completed, rec.leased_count) == (2, True, 0)
        else:
            assert (rec.submitted_count, rec.completed, rec.leased_count) == (1, True, 0)


@pytest.mark.django_db
def test_gold_due_with_none_left_serves_an_ordinary_record_and_a_gold_lease_resumes():
    ds, gold = gold_dataset(records=4, gold=1, rate=1.0)  # every handed record should be gold
    user = member(ds, "ann")
    first = next_record_for(user, ds)
    assert first.pk in gold
    assert next_record_for(user, ds).pk == first.pk                    # its lease resumes, as any record's
    assert Lease.objects.filter(record=first, user=user).exists()
    response_upsert(user=user, record=first, values=ranking(R1, R2), status="draft")
    Lease.objects.all().delete()                                        # the lease expired and was reclaimed
    Record.objects.filter(pk=first.pk).update(leased_count=0)
    assert next_record_for(user, ds).pk == first.pk                    # the gold draft comes back
    response_upsert(user=user, record=first, values=ranking(R1, R2), status="submitted")
    rest = annotate_all(user, ds)
    assert len(rest) == 3 and not set(rest) & gold                      # no gold left: ordinary ones


@pytest.mark.django_db
def test_gold_submits_keep_the_record_complete_and_unflagged_at_any_count():
    ds, gold = gold_dataset(records=2, gold=1, rate=1.0, min_submitted=1)
    users = [member(ds, f"ann-{i}") for i in range(3)]
    (gold_pk,) = gold
    for user in users:
        record = next_record_for(user, ds)
        assert record.pk == gold_pk
        result = response_upsert(user=user, record=record, values=ranking(R1, R2), status="submitted")
        assert not result.over_assigned and result.warnings == []
        assert record.completed
    rec = Record.objects.get(pk=gold_pk)
    assert (rec.submitted_count, rec.completed) == (3, True)
    assert Response.objects.filter(record=rec, status="submitted").count() == 3


@pytest.mark.django_db
def test_send_back_makes_a_completed_record_available_again():
    ds = DatasetFactory(min_submitted=1, gold_rate=0.0)
    rec = RecordFactory(dataset=ds)
    a, b = member(ds, "ann-a"), member(ds, "ann-b")
    response_upsert(user=a, record=next_record_for(a, ds), values=ranking(R1, R2), status="submitted")
    assert next_record_for(b, ds) is None
    Record.objects.filter(pk=rec.pk).update(extra_wanted=1)              # a reviewer wants one more answer
    records_completion_refresh(dataset=ds)
    assert next_record_for(b, ds).pk == rec.pk
    result = response_upsert(user=b, record=rec, values=ranking(R2, R1), status="submitted")
    assert not result.over_assigned                                     # 2 wanted now: not over
    rec.refresh_from_db()
    assert (rec.submitted_count, rec.completed) == (2, True)
    c = member(ds, "ann-c")
    assert next_record_for(c, ds) is None


# --- what annotators see -----------------------------------------------------------------------

def _strip_record(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("id", "external_id", "fields", "display_order")}


@pytest.mark.django_db
def test_a_gold_record_reads_like_an_ordinary_one_in_the_api():
    ds, gold = gold_dataset(records=2, gold=1, rate=1.0, min_submitted=1)
    (gold_pk,) = gold
    ordinary = Record.objects.filter(dataset=ds, is_gold=False).get()
    for i in range(3):  # others answered the gold record already
        other = member(ds, f"other-{i}")
        response_upsert(user=other, record=next_record_for(other, ds), values=ranking(R1, R2), status="submitted")
    ann = member(ds, "ann")
    api = client_for(ann)
    gold_body = api.get(f"/api/v1/datasets/{ds.pk}/next/").json()
    assert gold_body["id"] == gold_pk
    ds.gold_rate = 0.0
    ds.save()
    plain_body = client_for(member(ds, "ann-2")).get(f"/api/v1/datasets/{ds.pk}/next/").json()
    assert plain_body["id"] == ordinary.pk
    assert _strip_record(gold_body) == _strip_record(plain_body)         # same keys, same values
    assert (gold_body["submitted_count"], gold_body["completed"]) == (0, False)
    assert "gold" not in str(gold_body).lower()
    detail = api.get(f"/api/v1/records/{gold_pk}/").json()
    assert (detail["submitted_count"], detail["completed"]) == (0, False)
    pending = api.get(f"/api/v1/datasets/{ds.pk}/records/?status=pending").json()["results"]
    assert gold_pk in [r["id"] for r in pending]                         # listed as open, like ordinary ones
    resp = api.post(f"/api/v1/records/{gold_pk}/responses/", {"values": ranking(R1, R2), "status": "submitted"},
                    format="json")
    assert resp.status_code in (200, 201) and resp.json()["warnings"] == [] and not resp.json()["over_assigned"]
    detail = api.get(f"/api/v1/records/{gold_pk}/").json()
    assert (detail["submitted_count"], detail["completed"]) == (1, True)  # as if only the caller answered
    # an admin reads the stored values
    admin = member(ds, "boss", role=Membership.Role.ADMIN)
    detail = client_for(admin).get(f"/api/v1/records/{gold_pk}/").json()
    assert (detail["submitted_count"], detail["completed"]) == (4, True)


@pytest.mark.django_db
def test_the_annotate_page_of_a_gold_record_shows_nothing_of_gold():
    ds, gold = gold_dataset(records=2, gold=1, rate=1.0)
    Record.objects.filter(pk__in=gold).update(metadata={"source": "gold-set"})
    ann = member(ds, "ann")
    html = login(ann).get(reverse("annotate", args=[ds.pk])).content.decode()
    (gold_pk,) = gold
    assert f'data-record="{gold_pk}"' in html and 'id="annotate-form"' in html
    assert "gold" not in html.lower()


# --- paused annotators -------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_paused_annotator_gets_no_new_record_but_keeps_what_they_hold():
    ds = DatasetFactory(min_submitted=1, gold_rate=0.0)
    held, other, third = (RecordFactory(dataset=ds) for _ in range(3))
    ann = member(ds, "ann")
    api = client_for(ann)
    assert api.get(f"/api/v1/datasets/{ds.pk}/next/").json()["id"] == held.pk
    admin = member(ds, "boss", role=Membership.Role.ADMIN)
    standing_set(dataset=ds, user=ann, paused=True, reason="too many check records missed", by=admin)
    resp = api.get(f"/api/v1/datasets/{ds.pk}/next/")
    assert resp.status_code == 403 and resp.json() == {"detail": "too many check records missed"}
    page = login(ann).get(reverse("annotate", args=[ds.pk])).content.decode()
    assert "You are paused on this dataset" in page and "too many check records missed" in page
    assert 'id="annotate-form"' not in page
    # the record they hold is still theirs to answer; a record not handed to them is refused
    resp = api.post(f"/api/v1/records/{held.pk}/responses/", {"values": ranking(R1, R2), "status": "submitted"},
                    format="json")
    assert resp.status_code == 201
    resp = api.post(f"/api/v1/records/{other.pk}/responses/", {"values": ranking(R1, R2), "status": "submitted"},
                    format="json")
    assert resp.status_code == 403 and "too many check records missed" in resp.json()["detail"]
    assert not Response.objects.filter(record=other).exists()
    # resumed: records again
    standing_set(dataset=ds, user=ann, paused=False, by=admin)
    assert api.get(f"/api/v1/datasets/{ds.pk}/next/").json()["id"] == other.pk


@pytest.mark.django_db
def test_a_paused_annotator_finishes_a_draft_from_the_page():
    ds = DatasetFactory(min_submitted=1, gold_rate=0.0)
    rec = RecordFactory(dataset=ds)
    ann = member(ds, "ann")
    response_upsert(user=ann, record=next_record_for(ann, ds), values={}, status="draft")
    standing_set(dataset=ds, user=ann, paused=True)
    client = login(ann)
    resp = client.post(reverse("record-respond", args=[ds.pk, rec.pk]),
                       {"action": "submit", "rank__ranking__response-1": "1", "rank__ranking__response-2": "2"},
                       HTTP_HX_REQUEST="true")
    html = resp.content.decode()
    assert resp.status_code == 200 and "You are paused on this dataset" in html
    assert "An admin of this dataset paused you." in html
    assert Response.objects.get(record=rec, user=ann).status == "submitted"


@pytest.mark.django_db
def test_wrong_gold_answers_pause_the_annotator_through_the_submit_api():
    ds, gold = gold_dataset(records=6, gold=3, rate=1.0)
    ds.gold_pause_accuracy = 0.5
    ds.gold_pause_min_answers = 2
    ds.save()
    ann = member(ds, "ann")
    api = client_for(ann)
    for expected_status in (200, 200):
        body = api.get(f"/api/v1/datasets/{ds.pk}/next/")
        assert body.status_code == expected_status and body.json()["id"] in gold
        resp = api.post(f"/api/v1/records/{body.json()['id']}/responses/",
                        {"values": ranking(R2, R1), "status": "submitted"}, format="json")  # the wrong one best
        assert resp.status_code == 201
    resp = api.get(f"/api/v1/datasets/{ds.pk}/next/")
    assert resp.status_code == 403
    assert "0 of 2 check records" in resp.json()["detail"]
    standing = AnnotatorStanding.objects.get(dataset=ds, user=ann)
    assert standing.paused and standing.changed_by is None               # the policy did it
    assert Response.objects.filter(user=ann, status="submitted").count() == 2  # nothing lost


@pytest.mark.django_db
def test_right_gold_answers_do_not_pause():
    ds, gold = gold_dataset(records=4, gold=3, rate=1.0)
    ds.gold_pause_accuracy = 0.5
    ds.gold_pause_min_answers = 2
    ds.save()
    ann = member(ds, "ann")
    handed = annotate_all(ann, ds, gold_ids=gold)
    assert len(handed) == 4 and not AnnotatorStanding.objects.filter(user=ann, paused=True).exists()


@pytest.mark.django_db
def test_submitting_a_gold_record_does_not_move_the_dataset_completion_the_page_shows():
    ds, gold = gold_dataset(records=4, gold=1, rate=1.0, min_submitted=2)
    (gold_pk,) = gold
    ann = member(ds, "ann")
    client = login(ann)
    page = client.get(reverse("annotate", args=[ds.pk])).content.decode()
    assert f'data-record="{gold_pk}"' in page and "(1 / 4)" in page       # gold is stored complete
    resp = client.post(reverse("record-respond", args=[ds.pk, gold_pk]),
                       {"action": "submit", "rank__ranking__response-1": "1", "rank__ranking__response-2": "2"},
                       HTTP_HX_REQUEST="true")
    html = resp.content.decode()
    assert resp.status_code == 200 and "1</strong> submitted by you" in html
    assert "(1 / 4)" in html                                            # as after an ordinary first answer
