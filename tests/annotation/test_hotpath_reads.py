"""What the annotation hot path reads and how it builds what it read: the columns its token query
leaves unread stay deferred and neither view loads one (which would cost a query each), instances
built without Model.__init__ are what Model.from_db makes, hot cursors are reused on their
connection, and timestamps load as Django's own loader gives them (PostgreSQL)."""
import datetime

import pytest
from django.db import connection
from django.db.models import Model
from django.test.utils import CaptureQueriesContext

from annotation.hotpath import instance_from_db
from annotation.models import Dataset, Membership, Record, Response
from tests.conftest import client_for
from tests.factories import MembershipFactory, RecordFactory, SuggestionFactory, UserFactory

pytestmark = pytest.mark.django_db
RANK = {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]}


@pytest.fixture
def deferred_loads(monkeypatch):
    """The (model, fields) of every deferred field loaded (Django loads one with refresh_from_db)."""
    loads = []
    original = Model.refresh_from_db

    def recording(self, using=None, fields=None, from_queryset=None):
        loads.append((type(self).__name__, fields))
        return original(self, using=using, fields=fields, from_queryset=from_queryset)

    monkeypatch.setattr(Model, "refresh_from_db", recording)
    return loads


def _next(client, dataset_id):
    return client.get(f"/api/v1/datasets/{dataset_id}/next/")


def _submit(client, record_id, status="submitted"):
    return client.post(f"/api/v1/records/{record_id}/responses/", {"values": RANK, "status": status}, format="json")


@pytest.mark.parametrize("role", [Membership.Role.ANNOTATOR, Membership.Role.ADMIN])
@pytest.mark.parametrize("kind", ["ordinary", "suggestions", "gold"])
def test_next_and_submit_load_no_column_the_token_query_left_unread(require_postgres, dataset, deferred_loads, role, kind):
    user = UserFactory(username=f"caller-{role}")
    MembershipFactory(user=user, workspace=dataset.workspace, role=role)
    client = client_for(user)
    record = RecordFactory(dataset=dataset, metadata={"source": "s"}, is_gold=kind == "gold",
                           gold_answer=RANK if kind == "gold" else None)
    if kind == "suggestions":
        SuggestionFactory(record=record)
    Dataset.objects.filter(pk=dataset.pk).update(shuffle_responses=True, show_suggestions=kind == "suggestions",
                                                 gold_rate=1.0 if kind == "gold" else 0.0)
    got = _next(client, dataset.pk)
    assert got.status_code == 200 and got.json()["id"] == record.pk
    caller = got.wsgi_request.user
    assert set(caller.get_deferred_fields()) == {"password", "last_login", "date_joined"}
    with CaptureQueriesContext(connection) as queries:  # the token is the caller's, both sides cached
        assert caller.auth_token.user is caller and caller.auth_token.user_id == user.pk
    assert len(queries) == 0
    assert _next(client, dataset.pk).json()["id"] == record.pk  # the caller's own lease, resumed
    assert _submit(client, record.pk, "draft").status_code == 201
    answer = _submit(client, record.pk)
    assert answer.status_code == 200 and answer.json()["user"] == user.username
    assert Response.objects.get(record=record, user=user).status == "submitted"
    assert deferred_loads == []


def test_an_unpublished_or_archived_dataset_is_refused_without_loading_an_unread_column(
        require_postgres, dataset, annotator_client_api, deferred_loads):
    record = RecordFactory(dataset=dataset)
    Dataset.objects.filter(pk=dataset.pk).update(status=Dataset.Status.DRAFT)
    assert _next(annotator_client_api, dataset.pk).status_code == 400
    Dataset.objects.filter(pk=dataset.pk).update(status=Dataset.Status.ARCHIVED)
    assert _submit(annotator_client_api, record.pk).status_code == 400
    assert deferred_loads == []


def test_an_instance_built_without_init_is_the_one_from_db_makes(dataset):
    record = RecordFactory(dataset=dataset, metadata={"k": 1})
    names = ["id", "dataset_id", "external_id", "priority", "is_gold"]
    values = [record.pk, dataset.pk, record.external_id, 0.5, False]
    built, reference = instance_from_db(Record, names, values), Record.from_db(connection.alias, names, values)
    assert type(built) is Record
    assert {k: v for k, v in vars(built).items() if k != "_state"} == {k: v for k, v in vars(reference).items()
                                                                         if k != "_state"}
    assert (built._state.adding, built._state.db) == (reference._state.adding, reference._state.db) == (False, "default")
    assert built.get_deferred_fields() == reference.get_deferred_fields()
    assert built.metadata == {"k": 1}  # a deferred field loads as usual
    assert built.dataset == dataset


@pytest.mark.django_db(transaction=True)
def test_a_hot_cursor_is_reused_on_its_connection_and_not_after_it_closed(require_postgres):
    with connection.hot_cursor() as cursor:
        cursor.execute("SELECT %s::int", [1])
        first = cursor.cursor
        assert cursor.fetchone() == (1,)
    with connection.hot_cursor() as again, connection.hot_cursor() as other:
        assert again.cursor is first and other.cursor is not first  # two at once are two cursors
        again.execute("SELECT %s::int", [2])
        other.execute("SELECT %s::text", ["b"])
        assert (again.fetchone(), other.fetchone()) == ((2,), ("b",))
        again.close()  # (closed twice: given back once)
    with connection.hot_cursor() as one, connection.hot_cursor() as two, connection.hot_cursor() as three:
        assert len({id(one.cursor), id(two.cursor), id(three.cursor)}) == 3
    connection.close()
    assert first.closed
    with connection.hot_cursor() as fresh:
        assert fresh.cursor is not first
        fresh.execute("SELECT %s::int", [3])
        assert fresh.fetchone() == (3,)


_TIMESTAMPS = ["2026-12-03 17:21:30.127637+00", "0001-01-01 00:00:00+00", "9999-12-30 23:59:59.999999+00",
               "2000-02-29 12:00:00.5+05:30", "1969-07-20 20:17:40-04"]


@pytest.mark.parametrize("session_zone", ["UTC", "Europe/Paris"])
def test_timestamps_load_as_djangos_loader_loads_them(require_postgres, session_zone):
    from django.db.backends.postgresql.psycopg_any import register_tzloader

    from preflab.pgbackend.base import fast_tzloader

    sql = "SELECT " + ", ".join(f"'{value}'::timestamptz" for value in _TIMESTAMPS) + ", NULL::timestamptz"
    with connection.cursor() as cursor:
        assert cursor.cursor.adapters.get_loader(1184, 0) is fast_tzloader(connection.timezone)
        cursor.execute(f"SET TIME ZONE '{session_zone}'")
        try:
            cursor.execute(sql)
            fast = cursor.fetchone()
            register_tzloader(connection.timezone, cursor.cursor)  # Django's own loader, on this cursor only
            cursor.execute(sql)
            django = cursor.fetchone()
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")
    assert fast == django and fast[-1] is None
    assert [value.tzinfo for value in fast[:-1]] == [value.tzinfo for value in django[:-1]] == [datetime.UTC] * 5
    assert [value.isoformat() for value in fast[:-1]] == [value.isoformat() for value in django[:-1]]



def _hot_timestamp(value: str):
    """(the psycopg cursor of a hot cursor, the timestamptz `value` it read)."""
    with connection.hot_cursor() as cursor:
        cursor.execute("SELECT %s::timestamptz", [value])
        return cursor.cursor, cursor.fetchone()[0]


def test_a_kept_hot_cursor_is_not_reused_once_the_time_zone_settings_change(require_postgres):
    from django.test import override_settings

    noon = "2026-01-01 12:00:00+00"
    first, _ = _hot_timestamp(noon)
    with override_settings(USE_TZ=False, TIME_ZONE="Europe/Paris"):
        paris, got = _hot_timestamp(noon)
        assert paris is not first and got == datetime.datetime(2026, 1, 1, 13, 0)
        with override_settings(TIME_ZONE="America/New_York"):  # (Django's time zone stays None)
            new_york, got = _hot_timestamp(noon)
            assert new_york is not paris and got == datetime.datetime(2026, 1, 1, 7, 0)
    assert _hot_timestamp(noon)[1] == datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
