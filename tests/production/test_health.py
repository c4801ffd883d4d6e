"""/healthz for container health checks, and a lost database answering 503 with a message."""
from __future__ import annotations

import json

import pytest
from django.db import OperationalError, connection
from django.test import Client, RequestFactory

from preflab.health import DatabaseUnavailableMiddleware


def test_healthz_answers_before_host_validation_and_the_https_redirect(db, settings):
    settings.ALLOWED_HOSTS = ["preflab.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    response = Client().get("/healthz", HTTP_HOST="10.0.0.7:8000")  # a probe from inside the container
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    # every other URL still gets the host check and the redirect
    assert Client().get("/api/v1/datasets/", HTTP_HOST="10.0.0.7:8000").status_code == 400


def test_healthz_reports_a_database_outage_as_503(db, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "OperationalError" in response.json()["database"]


@pytest.mark.parametrize("message", ["server closed the connection unexpectedly",
                                     "terminating connection due to administrator command",
                                     "the database system is shutting down",
                                     "connection to server at \"127.0.0.1\", port 5432 failed: Connection refused"])
def test_a_lost_database_connection_answers_503_with_a_message(monkeypatch, message):
    monkeypatch.setattr(connection, "vendor", "postgresql")
    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    response = middleware.process_exception(RequestFactory().get("/api/v1/datasets/"), OperationalError(message))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "temporarily unavailable" in json.loads(response.content)["detail"]


def test_other_database_errors_stay_500(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "postgresql")
    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    request = RequestFactory().get("/")
    assert middleware.process_exception(request, OperationalError("division by zero")) is None
    assert middleware.process_exception(request, ValueError("connection")) is None


def test_a_page_gets_the_outage_message_as_html(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "postgresql")
    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    request = RequestFactory().get("/datasets/1/annotate/", HTTP_ACCEPT="text/html,application/xhtml+xml")
    response = middleware.process_exception(request, OperationalError("server closed the connection unexpectedly"))
    assert response.status_code == 503 and response["Content-Type"].startswith("text/html")
    assert "temporarily unavailable" in response.content.decode()
