"""Distribution under concurrency (PostgreSQL): 20 annotators calling next + submit at once.

Each thread is one annotator with its own API client and its own database connection; the
records are handed out by GET /next/ and answered by POST /records/{id}/responses/.
"""
import threading
from collections import Counter

import pytest
from django.db import connection, connections

from annotation.models import Lease, Membership, Record, Response
from annotation.quality.gold import records_gold_set
from tests.conftest import client_for
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, UserFactory

THREADS = 20
RECORDS = 60
MIN_SUBMITTED = 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_twenty_annotators_next_and_submit(require_postgres):
    dataset = DatasetFactory(min_submitted=MIN_SUBMITTED)
    for i in range(RECORDS):
        RecordFactory(dataset=dataset, priority=i % 5)
    users = []
    for i in range(THREADS):
        user = UserFactory(username=f"conc-{i}")
        MembershipFactory(user=user, workspace=dataset.workspace, role=Membership.Role.ANNOTATOR)
        users.append(user)
    clients = [client_for(u) for u in users]  # tokens created here, before the threads start
    handed, submits, warnings = _annotate_concurrently(dataset, users, clients, limit=RECORDS + 5)

    # no user was handed the same record twice
    for username, ids in handed.items():
        assert len(ids) == len(set(ids)), f"{username} got a record twice: {ids}"
    # every submit is stored, none over-assigned, and the work is spread over the annotators
    total_submits = sum(submits.values())
    assert Response.objects.filter(dataset=dataset, status="submitted").count() == total_submits
    assert total_submits == RECORDS * MIN_SUBMITTED
    assert warnings == []
    assert sum(1 for ids in handed.values() if ids) > 1
    per_record = Counter(Response.objects.filter(dataset=dataset, status="submitted")
                         .values_list("record_id", flat=True))
    for record in Record.objects.filter(dataset=dataset):
        assert per_record[record.pk] == record.submitted_count == MIN_SUBMITTED, record.pk
        assert record.completed and record.leased_count == 0
    assert not Lease.objects.filter(dataset=dataset).exists()
    assert connection.vendor == "postgresql"


def _annotate_concurrently(dataset, users, clients, *, limit: int, answer=None):
    """Each user in a thread of their own: GET /next/ and POST a submit until a 204. Returns
    (handed record ids per username, submits per username, warnings); fails on any error."""
    handed: dict[str, list[int]] = {u.username: [] for u in users}
    submits: dict[str, int] = Counter()
    warnings: list[str] = []
    errors: list[str] = []
    barrier = threading.Barrier(len(users))

    def annotate(user, client):
        try:
            barrier.wait(timeout=30)
            for _ in range(limit):
                resp = client.get(f"/api/v1/datasets/{dataset.pk}/next/")
                if resp.status_code == 204:
                    return
                if resp.status_code != 200:
                    errors.append(f"{user.username} next: {resp.status_code} {resp.content[:200]!r}")
                    return
                body = resp.json()
                handed[user.username].append(body["id"])
                ranking = [{"value": name, "rank": k + 1} for k, name in enumerate(body["display_order"])]
                resp = client.post(f"/api/v1/records/{body['id']}/responses/",
                                   {"values": {"ranking": ranking}, "status": "submitted",
                                    "display_order": body["display_order"], "duration": 1.0}, format="json")
                if resp.status_code not in (200, 201):
                    errors.append(f"{user.username} submit: {resp.status_code} {resp.content[:200]!r}")
                    return
                submits[user.username] += 1
                warnings.extend(resp.json()["warnings"])
            errors.append(f"{user.username} never got a 204")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"{user.username}: {exc!r}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=annotate, args=(u, c)) for u, c in zip(users, clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    assert not any(t.is_alive() for t in threads), "an annotator thread hung"
    assert errors == []
    return handed, submits, warnings


GOLD = 10


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_gold_under_twenty_concurrent_annotators(require_postgres):
    """Gold records go to every annotator at the rate (one in 4 here) whatever the overlap, and
    never count toward an ordinary record's: no ordinary record is over-assigned."""
    dataset = DatasetFactory(min_submitted=MIN_SUBMITTED, gold_rate=0.25)
    records = [RecordFactory(dataset=dataset, priority=i % 5) for i in range(RECORDS)]
    gold = {r.pk for r in records[:GOLD]}
    records_gold_set(dataset=dataset, answers={pk: {"ranking": [{"value": "response-1", "rank": 1},
                                                                 {"value": "response-2", "rank": 2}]} for pk in gold})
    users = []
    for i in range(THREADS):
        user = UserFactory(username=f"gold-{i}")
        MembershipFactory(user=user, workspace=dataset.workspace, role=Membership.Role.ANNOTATOR)
        users.append(user)
    clients = [client_for(u) for u in users]
    handed, submits, warnings = _annotate_concurrently(dataset, users, clients, limit=RECORDS + 5)

    assert warnings == []                                               # nothing over-assigned
    for username, ids in handed.items():
        assert len(ids) == len(set(ids)), f"{username} got a record twice: {ids}"
        n_gold = sum(pk in gold for pk in ids)
        # the schedule: one gold per block of 4 handed (the last block may be cut short)
        assert len(ids) // 4 <= n_gold <= -(-len(ids) // 4), (username, len(ids), n_gold)
    per_record = Counter(Response.objects.filter(dataset=dataset, status="submitted")
                         .values_list("record_id", flat=True))
    gold_answers = sum(per_record[pk] for pk in gold)
    assert gold_answers == sum(sum(pk in gold for pk in ids) for ids in handed.values())
    assert len({u for u, ids in handed.items() if gold & set(ids)}) > GOLD // 2  # gold goes to many, not one each
    for record in Record.objects.filter(dataset=dataset):
        assert per_record[record.pk] == record.submitted_count, record.pk
        assert record.completed and record.leased_count == 0
        if record.pk not in gold:
            assert record.submitted_count == MIN_SUBMITTED, record.pk   # gold answers took no slot
    assert sum(submits.values()) == (RECORDS - GOLD) * MIN_SUBMITTED + gold_answers
    assert not Lease.objects.filter(dataset=dataset).exists()
    assert connection.vendor == "postgresql"
