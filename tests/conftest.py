"""Shared fixtures. Service tests (PostgreSQL, Redis) are required in CI: PREFLAB_REQUIRE_SERVICES=1
makes them fail, not skip, when the services are missing."""
import os

import pytest
from django.db import connection
from rest_framework.test import APIClient

from annotation.models import Membership
from tests.factories import DatasetFactory, EndpointFactory, MembershipFactory, UserFactory, WorkspaceFactory
from tests.helpers import need


@pytest.fixture
def require_postgres(db):
    need(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")


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
    need(ok, f"Redis ({url or 'REDIS_URL unset'})")
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


# --- the LLM test server -------------------------------------------------------------------------
# `llm_server`: the OpenAI-compatible test server of tests/llm_server.py on 127.0.0.1 (one per test).
# `llm_endpoint(**fields)`: an Endpoint in the `workspace` fixture pointing at that server; fast retries.

@pytest.fixture
def llm_server():
    from tests.llm_server import LLMTestServer

    server = LLMTestServer(latency=0.0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def llm_endpoint(workspace, llm_server, settings):
    from generation.models import Endpoint

    settings.PREFLAB_LLM_BACKOFF = 0.01  # retries in tests wait milliseconds, not seconds
    settings.PREFLAB_LLM_BACKOFF_MAX = 0.2
    counter = {"n": 0}

    def make(**fields) -> Endpoint:
        counter["n"] += 1
        values = {"workspace": workspace, "name": f"test-llm-{counter['n']}", "model": f"test-model-{counter['n']}",
                  "base_url": llm_server.base_url, "max_concurrency": 8, "timeout": 5.0, "max_retries": 3}
        values.update(fields)
        return EndpointFactory(**values)

    return make


# --- a fresh in-memory cache per test -----------------------------------------------------------
# Login throttling counts failures per username+address in the cache; the in-memory cache lives as
# long as the test process, so clear it between tests (never a shared Redis cache: no FLUSHDB).
@pytest.fixture(autouse=True)
def _fresh_local_cache():
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    if isinstance(caches["default"], LocMemCache):
        caches["default"].clear()
    yield


# --- speed: factories hash a password per user; the default PBKDF2 costs ~0.3 s each ----------
@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- real Celery workers (tests/workers.py): a queue of the test's own and the workers on it ----------
@pytest.fixture
def worker_queue(redis_url):
    import uuid

    import redis
    from django.conf import settings

    queue = f"{settings.PREFLAB_CPU_QUEUE}-worker-{uuid.uuid4().hex[:8]}"
    yield queue
    redis.Redis.from_url(redis_url).delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")


@pytest.fixture
def workers(redis_url, worker_queue):
    from tests.workers import Workers

    w = Workers(redis_url, worker_queue)
    yield w
    w.stop()
