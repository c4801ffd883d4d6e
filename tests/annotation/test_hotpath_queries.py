"""The annotation hot path over the API with a token (next, submit): what it answers to callers it
must refuse, and, on PostgreSQL, how many statements each call sends to the database."""
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
