"""Shared fixtures. Service tests (PostgreSQL, Redis) are required in CI: PREFLAB_REQUIRE_SERVICES=1
makes them fail, not skip, when the services are missing."""
import os

import pytest
from django.db import connection
from rest_framework.test import APIClient

from annotation.models import Membership
from tests.factories import DatasetFactory, MembershipFactory, UserFactory, WorkspaceFactory

REQUIRE_SERVICES = os.environ.get("PREFLAB_REQUIRE_SERVICES") == "1"


def _need(condition: bool, what: str):
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required in this run (PREFLAB_REQUIRE_SERVICES=1) but is not available")
    pytest.skip(f"{what} not available")


@pytest.fixture
def require_postgres(db):
    _need(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")


@pytest.fixture
def redis_url():
    url = os.environ.get("REDIS_URL", "")
    ok = False
    if url:
        try:
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=2).ping()
            ok = True
        except Exception:  # noqa: BLE001
            ok = False
    _need(ok, f"Redis ({url or 'REDIS_URL unset'})")
    return url


@pytest.fixture
def workspace(db):
    return WorkspaceFactory()


@pytest.fixture
def admin_user(workspace):
    user = UserFactory(username="ws-admin")
    MembershipFactory(user=user, workspace=workspace, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def annotator(workspace):
    user = UserFactory(username="annotator-1")
    MembershipFactory(user=user, workspace=workspace, role=Membership.Role.ANNOTATOR)
    return user


@pytest.fixture
def dataset(workspace):
    return DatasetFactory(workspace=workspace)


@pytest.fixture
def api_client():
    return APIClient()


def client_for(user) -> APIClient:
    from rest_framework.authtoken.models import Token

    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def admin_client_api(admin_user):
    return client_for(admin_user)


@pytest.fixture
def annotator_client_api(annotator):
    return client_for(annotator)
