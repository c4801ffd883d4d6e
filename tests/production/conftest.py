import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections


@pytest.fixture
def wsgi_in_test_transaction(db):
    """Calls of preflab.wsgi.application inside the test's transaction: as django.test.Client does, a request
    ending must not close the test's connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
