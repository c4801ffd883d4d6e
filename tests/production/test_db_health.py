"""The PostgreSQL connection health check (preflab.pgbackend): a reused connection is checked at
each request without a round trip, and one the server ended is still replaced before it is used."""
import time

import pytest
from django.db import close_old_connections, connection

from preflab.pgbackend.base import socket_quiet
from tests.helpers import need


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.fixture
def pg_connection(transactional_db):
    need(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")
    assert connection.health_check_enabled and connection.settings_dict["CONN_MAX_AGE"] > 0
    return connection


def test_a_healthy_connection_is_reused_without_asking_the_server(pg_connection, monkeypatch):
    pid = _backend_pid()
    asked = []
    monkeypatch.setattr(connection, "is_usable", lambda: asked.append(1) or True)
    for _ in range(3):
        close_old_connections()  # what every request starts with
        assert _backend_pid() == pid
    assert asked == []


def test_a_connection_the_server_ended_is_replaced_before_the_next_request_uses_it(pg_connection):
    pid = _backend_pid()
    other = connection.copy()
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    for _ in range(200):  # the server's goodbye travels over loopback: wait until it arrived
        if not socket_quiet(connection.connection):
            break
        time.sleep(0.01)
    close_old_connections()
    assert _backend_pid() != pid  # the request's first query worked, on a new connection
