"""The annotation hot path over the API with a token (next, submit): what it answers to callers it
must refuse, and, on PostgreSQL, how many statements each call sends to the database."""
from functools import partial

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.models import Response
from tests.conftest import client_for
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, UserFactory

pytestmark = pytest.mark.django_db
RANK = {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]}


def _next(client, dataset_id):
    return client.get(f"/api/v1/datasets/{dataset_id}/next/")


def _submit(client, record_id):
    return client.post(f"/api/v1/records/{record_id}/responses/", {"values": RANK, "status": "submitted"}, format="json")


def test_a_token_of_another_workspace_or_an_unknown_id_gets_404_and_changes_nothing(dataset, annotator_client_api):
    rec = RecordFactory(dataset=dataset)
    stranger = UserFactory(username="stranger")
    MembershipFactory(user=stranger, workspace=DatasetFactory().workspace, role="admin")  # admin elsewhere
    other = client_for(stranger)
    assert _next(other, dataset.pk).status_code == 404
    assert _submit(other, rec.pk).status_code == 404
    assert _next(annotator_client_api, 999_999).status_code == 404
    assert _submit(annotator_client_api, 999_999).status_code == 404
    assert _next(annotator_client_api, "9" * 30).status_code == 404  # beyond what an id column holds
    assert not Response.objects.exists()
    assert _next(annotator_client_api, dataset.pk).json()["id"] == rec.pk  # the member is served


def test_a_bad_token_is_refused_before_anything_is_read(dataset):
    client = client_for(UserFactory(username="someone"))
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert _next(client, dataset.pk).status_code == 401


def _statements(captured) -> list[str]:
    """The statements a call sent, less the savepoints its atomic blocks are inside the test's own
    transaction (outside one they are BEGIN and COMMIT, which Django does not capture either)."""
    return [q["sql"] for q in captured if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO"))]


def test_next_takes_three_statements_and_submit_four_on_postgresql(require_postgres, dataset, annotator_client_api):
    first, second = RecordFactory(dataset=dataset), RecordFactory(dataset=dataset)
    assert _submit(annotator_client_api, _next(annotator_client_api, dataset.pk).json()["id"]).status_code == 201
    with CaptureQueriesContext(connection) as got_next:
        body = _next(annotator_client_api, dataset.pk).json()
    with CaptureQueriesContext(connection) as got_submit:
        assert _submit(annotator_client_api, body["id"]).status_code == 201
    assert {first.pk, second.pk} == set(Response.objects.values_list("record_id", flat=True))
    # next: token + user + dataset + role; the caller's lease, draft and standing; the claim
    assert len(_statements(got_next)) <= 3, "\n".join(q[:120] for q in _statements(got_next))
    # submit: token + user + record + dataset + role; lease release and record lock; the caller's
    # response status; the write (BEGIN and COMMIT besides)
    assert len(_statements(got_submit)) <= 4, "\n".join(q[:120] for q in _statements(got_submit))


# --- round trips and the pipelined submit transaction (PostgreSQL, outside any test transaction) ---

def _round_trips(call):
    """(what `call` returned, the round trips it made), the request started as a server starts it."""
    from django.db import close_old_connections

    from preflab.pgbackend.roundtrips import round_trips

    with round_trips() as trips:
        close_old_connections()  # (the connection's age and health are checked at every request)
        got = call()
    return got, trips.count


def _lease_ids(dataset):
    from annotation.models import Lease

    return sorted(Lease.objects.filter(dataset=dataset).values_list("record_id", flat=True))


@pytest.mark.django_db(transaction=True)
def test_next_and_submit_take_three_round_trips_each_on_postgresql(require_postgres, dataset, annotator_client_api):
    for _ in range(8):
        RecordFactory(dataset=dataset)
    # the process's cache of the dataset's questions filled first (one query, once per process)
    assert _submit(annotator_client_api, _next(annotator_client_api, dataset.pk).json()["id"]).status_code == 201
    for _ in range(7):  # past psycopg's prepare threshold (5): the statements are prepared by then
        body, next_trips = _round_trips(lambda: _next(annotator_client_api, dataset.pk).json())
        answer, submit_trips = _round_trips(partial(_submit, annotator_client_api, body["id"]))
        assert answer.status_code == 201
        # next: token + user + dataset + role; the caller's lease, draft and standing; the claim
        assert next_trips <= 3
        # submit: token + user + record + dataset + role; BEGIN, lease release and record lock, the
        # response status; the write and COMMIT
        assert submit_trips <= 3
    assert Response.objects.filter(status="submitted").count() == 8
    assert connection.connection.info.transaction_status == 0  # (IDLE: committed, nothing left open)
    with connection.cursor() as cursor:  # the pipelined statements were prepared on the server as well
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = " ".join(row[0] for row in cursor.fetchall())
    assert "DELETE FROM annotation_lease" in prepared and "INSERT INTO annotation_response" in prepared


def _broken(sql: str) -> str:
    """The statement, failing in the database when it runs (a division by zero in its result)."""
    return sql.rstrip().removesuffix("FOR UPDATE").rstrip() + (" AND 1 / 0 = 1 FOR UPDATE" if "FOR UPDATE" in sql
                                                                 else " WHERE 1 / 0 = 1")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("statement", ["_RESPONSE_STATUS_SQL", "_RESPONSE_WRITE_SQL"])
def test_an_error_in_the_pipelined_submit_writes_nothing_and_the_connection_goes_on(
        require_postgres, dataset, annotator_client_api, monkeypatch, statement):
    from django.db import DataError

    from annotation import services

    record = RecordFactory(dataset=dataset)
    assert _next(annotator_client_api, dataset.pk).json()["id"] == record.pk  # leased to the caller
    monkeypatch.setattr(services, statement, _broken(getattr(services, statement)))
    with pytest.raises(DataError):  # (the first batch released the lease: rolled back with the rest)
        _submit(annotator_client_api, record.pk)
    record.refresh_from_db()
    assert (record.submitted_count, record.leased_count, record.completed) == (0, 1, False)
    assert _lease_ids(dataset) == [record.pk] and not Response.objects.exists()
    pg = connection.connection
    assert pg.info.transaction_status == 0 and pg.pgconn.pipeline_status == 0  # idle, out of pipeline mode
    monkeypatch.undo()
    answer, trips = _round_trips(lambda: _submit(annotator_client_api, record.pk))  # the same connection goes on
    assert answer.status_code == 201 and trips <= 3
    record.refresh_from_db()
    assert (record.submitted_count, record.leased_count) == (1, 0) and _lease_ids(dataset) == []


@pytest.mark.django_db(transaction=True)
def test_a_refused_submit_between_the_batches_is_rolled_back(require_postgres, dataset, annotator_client_api):
    record = RecordFactory(dataset=dataset)
    assert _next(annotator_client_api, dataset.pk).json()["id"] == record.pk
    assert _submit(annotator_client_api, record.pk).status_code == 201
    late_draft = annotator_client_api.post(f"/api/v1/records/{record.pk}/responses/",
                                           {"values": RANK, "status": "draft"}, format="json")
    assert late_draft.status_code == 409  # refused after the first batch read the status
    assert Response.objects.get().status == "submitted"
    assert connection.connection.info.transaction_status == 0
    record.refresh_from_db()
    assert record.submitted_count == 1
