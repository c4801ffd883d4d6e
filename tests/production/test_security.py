"""Login throttling, upload size limits, and secrets only from the environment."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import time

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.core.cache import cache
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.test import APIClient

from preflab.security import LoginRateThrottle
from tests.conftest import client_for
from tests.factories import UserFactory

from .helpers import REPO

PASSWORD = "pw-12345678"  # tests.factories.UserFactory's password


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def _login_url() -> str:
    return reverse(settings.LOGIN_URL)


def _post_login(client: Client, username: str, password: str, ip: str = "10.0.0.1", url: str | None = None):
    return client.post(url or _login_url(), {"username": username, "password": password}, REMOTE_ADDR=ip)


# --- login throttling ---------------------------------------------------------------------------

def test_login_page_locks_a_username_and_address_out_after_repeated_failures(db, settings):
    settings.LOGIN_THROTTLE_FAILURES = 5
    user = UserFactory(username="carol")
    client = Client()
    for _ in range(5):
        response = _post_login(client, "carol", "wrong-password")
        assert response.status_code == 200  # the form again, with its error
        assert "_auth_user_id" not in client.session
    # Even the right password is refused while locked out, with a clear message and Retry-After.
    locked = _post_login(client, "carol", PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed login attempts" in locked.content.decode()
    assert int(locked["Retry-After"]) == settings.LOGIN_THROTTLE_WINDOW
    assert "_auth_user_id" not in client.session
    # The lock is per username+address: the same user from another address, and another user from
    # this address, still log in.
    other_ip = Client()
    assert _post_login(other_ip, "carol", PASSWORD, ip="10.0.0.2").status_code == 302
    assert other_ip.session["_auth_user_id"] == str(user.pk)
    UserFactory(username="dave")
    assert _post_login(Client(), "dave", PASSWORD).status_code == 302


def test_lockout_ends_after_the_window_and_a_success_resets_the_count(db, settings):
    settings.LOGIN_THROTTLE_FAILURES = 3
    settings.LOGIN_THROTTLE_WINDOW = 1
    UserFactory(username="erin")
    client = Client()
    for _ in range(3):
        _post_login(client, "erin", "nope")
    assert _post_login(client, "erin", PASSWORD).status_code == 429
    time.sleep(1.2)
    assert _post_login(client, "erin", PASSWORD).status_code == 302
    # after a success the count starts again from zero
    client = Client()
    for _ in range(2):
        _post_login(client, "erin", "nope")
    assert _post_login(client, "erin", PASSWORD).status_code == 302
    client = Client()
    for _ in range(2):
        _post_login(client, "erin", "nope")
    assert _post_login(client, "erin", PASSWORD).status_code == 302


def test_username_case_does_not_bypass_the_lock(db, settings):
    settings.LOGIN_THROTTLE_FAILURES = 3
    UserFactory(username="frank")
    client = Client()
    for name in ("frank", "FRANK", "Frank"):
        _post_login(client, name, "nope")
    assert _post_login(client, "frank", PASSWORD).status_code == 429


def test_every_password_check_is_throttled_not_only_the_login_page(db, settings):
    """Django admin's login and any authenticate() call (e.g. a token endpoint) share the lock."""
    settings.LOGIN_THROTTLE_FAILURES = 3
    UserFactory(username="grace", is_staff=True)
    request = RequestFactory().post("/", REMOTE_ADDR="10.9.9.9")
    for _ in range(3):
        assert authenticate(request, username="grace", password="nope") is None
    assert authenticate(request, username="grace", password=PASSWORD) is None  # locked
    other = RequestFactory().post("/", REMOTE_ADDR="10.9.9.8")
    assert authenticate(other, username="grace", password=PASSWORD) is not None
    admin_login = Client().post(reverse("admin:login"), {"username": "grace", "password": PASSWORD},
                                REMOTE_ADDR="10.9.9.9")
    assert admin_login.status_code == 429


def test_behind_a_proxy_the_lock_uses_the_address_the_proxy_saw(db, settings):
    settings.LOGIN_THROTTLE_FAILURES = 2
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    UserFactory(username="heidi")
    client = Client()
    for spoof in ("1.1.1.1", "2.2.2.2"):  # a client-chosen first hop does not reset the count
        client.post(_login_url(), {"username": "heidi", "password": "nope"}, REMOTE_ADDR="10.0.0.5",
                    HTTP_X_FORWARDED_FOR=f"{spoof}, 203.0.113.7")
    locked = client.post(_login_url(), {"username": "heidi", "password": PASSWORD}, REMOTE_ADDR="10.0.0.5",
                         HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.7")
    assert locked.status_code == 429


def _token_routes():
    """Every API view that checks a password or declares throttle_scope = "login"."""
    found = []

    def walk(patterns, prefix):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                cls = getattr(p.callback, "cls", None)
                if cls and (issubclass(cls, ObtainAuthToken) or getattr(cls, "throttle_scope", None) == "login"):
                    found.append("/" + prefix + str(p.pattern))

    walk(get_resolver().url_patterns, "")
    return found


class _ThrottledTokenView(ObtainAuthToken):
    """How a token endpoint is declared (ObtainAuthToken clears DRF's default throttles)."""

    throttle_scope = "login"
    throttle_classes = [LoginRateThrottle]


def test_api_token_endpoints_are_rate_limited(db, settings):
    """Every token endpoint of the project (and DRF's own, with the project's settings) answers 429
    past REST_FRAMEWORK's "login" rate for one username+address."""
    UserFactory(username="ivan")
    allowed = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["login"].split("/")[0])
    view = _ThrottledTokenView.as_view()
    factory = RequestFactory()
    statuses = [view(factory.post("/t", {"username": "ivan", "password": "nope"}, REMOTE_ADDR="10.1.1.1")).status_code
                for _ in range(allowed + 1)]
    assert 429 not in statuses[:allowed] and statuses[-1] == 429, statuses
    for route in _token_routes():
        cache.clear()
        client = APIClient(REMOTE_ADDR="10.1.1.1")
        statuses = [client.post(route, {"username": "ivan", "password": "nope"}, format="json").status_code
                    for _ in range(allowed + 1)]
        assert 429 not in statuses[:allowed] and statuses[-1] == 429, (route, statuses)


# --- upload size limits -------------------------------------------------------------------------

def _upload_routes() -> list[str]:
    from tests.production.test_access import ROUTES

    return [r for r in ROUTES if r.is_api and "post" in r.methods and re.search(r"import|records$", r.name or "")]


def test_import_endpoints_answer_413_over_the_upload_limit_before_reading(db, settings, request):
    from tests.production.test_access import World

    settings.PREFLAB_MAX_UPLOAD_BYTES = 10_000
    world = World()
    request.addfinalizer(world.close)
    routes = _upload_routes()
    assert routes, "the import endpoints exist"
    client = client_for(world.admin_a)
    for route in routes:
        url = "/" + route.route
        for name in route.params:
            url = re.sub(rf"<(?:\w+:)?{name}>", str(world.param_value(route, name)), url)
        before = world.snapshot()
        line = json.dumps({"external_id": "big", "prompt": "p", "chosen": "c", "rejected": "r",
                           "fields": {"prompt": "x" * 100, "response-1": "a", "response-2": "b"}}) + "\n"
        body = line * (20_000 // len(line) + 1)
        response = client.generic("POST", url, body, content_type="application/x-ndjson")
        assert response.status_code == 413, (url, response.status_code, response.content[:300])
        assert "PREFLAB_MAX_UPLOAD_BYTES" in response.content.decode() or "limit" in response.content.decode()
        # a declared Content-Length over the limit is refused without reading the body
        lying = client.generic("POST", url, line, content_type="application/x-ndjson", CONTENT_LENGTH="10000000")
        assert lying.status_code == 413, (url, lying.status_code)
        assert not world.changes_in_a(before, world.snapshot()), url


def test_json_bodies_over_data_upload_max_memory_size_are_refused(db, settings, workspace, admin_user):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50_000
    client = client_for(admin_user)
    body = {"workspace": workspace.pk, "name": "big", "guidelines": "g" * 60_000,
            "fields": [{"name": "prompt"}], "questions": []}
    response = client.post("/api/v1/datasets/", body, format="json")
    assert response.status_code in (400, 413), response.status_code
    assert not workspace.datasets.filter(name="big").exists()


def test_a_body_over_the_upload_limit_is_refused_everywhere(db, settings, workspace, admin_user):
    """Any URL: a declared body over PREFLAB_MAX_UPLOAD_BYTES is answered 413 before a view reads it."""
    settings.PREFLAB_MAX_UPLOAD_BYTES = 1_000
    client = client_for(admin_user)
    response = client.generic("POST", "/api/v1/datasets/", "{}", content_type="application/json",
                              CONTENT_LENGTH="5000")
    assert response.status_code == 413


# --- secrets only from the environment --------------------------------------------------------------

SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|API_KEY|PRIVATE)", re.I)
SECRET_VALUE = re.compile(r"(sk-[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|"
                          r"hf_[A-Za-z0-9]{30,}|xox[baprs]-[A-Za-z0-9-]{10,})")


# Placeholder values published by the providers for documentation (tests may use them as fake keys).
DOCUMENTED_EXAMPLES = {"AKIAIOSFODNN7EXAMPLE"}
# Obvious placeholders (a counting sequence, the alphabet, a run of one letter) are not credentials.
PLACEHOLDER = re.compile(r"0123456789|abcdefghij|EXAMPLE|(.)\1{9}", re.I)


def test_settings_take_every_secret_from_the_environment():
    tree = ast.parse((REPO / "preflab" / "settings.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and SECRET_NAME.search(target.id):
                    # a literal string (or an f-string) assigned to a secret-named setting is a hard-coded secret
                    assert not isinstance(node.value, (ast.Constant, ast.JoinedStr)), \
                        f"settings.py line {node.lineno}: {target.id} is hard-coded"
                    if isinstance(node.value, ast.Call):
                        func = ast.unparse(node.value.func)
                        assert func.startswith("env"), f"settings.py line {node.lineno}: {target.id} = {func}(...)"


def test_no_credentials_in_the_repository():
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        path = REPO / name
        if not path.is_file() or path.suffix in (".png", ".jpg", ".parquet", ".gz", ".ico", ".woff2"):
            continue
        text = path.read_text(errors="ignore")
        for match in SECRET_VALUE.finditer(text):
            if match.group(0) in DOCUMENTED_EXAMPLES or PLACEHOLDER.search(match.group(0)):
                continue
            offenders.append(f"{name}: {match.group(0)[:12]}...")
    assert not offenders, offenders
    assert not (REPO / ".env").exists() or ".env" in (REPO / ".gitignore").read_text() \
        or ".env" in (REPO / ".dockerignore").read_text()


def test_endpoints_store_the_name_of_the_key_variable_never_the_key():
    from django.apps import apps

    for model in apps.get_models():
        if model._meta.app_label not in ("annotation", "generation", "judging"):
            continue
        for f in model._meta.concrete_fields:
            from django.db import models as djm

            if isinstance(f, (djm.CharField, djm.TextField)) and re.search(r"(api_key|secret|password|token)", f.name, re.I):
                assert f.name.endswith("_env"), f"{model._meta.label}.{f.name} would store a secret in the database"


def test_the_lockout_is_shared_by_every_process_through_redis(db, settings, redis_url):
    """Production (CACHE_URL=redis://...): the counter lives in Redis, so every gunicorn worker and
    every web machine sees the same lock; a second client (another process's cache connection) is refused."""
    import uuid

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url,
                                   "KEY_PREFIX": f"test-prod-{uuid.uuid4().hex[:8]}"}}
    settings.LOGIN_THROTTLE_FAILURES = 3
    UserFactory(username="judy")
    try:
        for _ in range(3):
            _post_login(Client(), "judy", "nope")
        # what another process would read: a fresh connection to the same Redis
        import redis as redis_lib

        keys = redis_lib.Redis.from_url(redis_url).keys(f"{settings.CACHES['default']['KEY_PREFIX']}*login-fail*")
        assert len(keys) == 1
        assert _post_login(Client(), "judy", PASSWORD).status_code == 429
    finally:
        import redis as redis_lib

        r = redis_lib.Redis.from_url(redis_url)
        for key in r.scan_iter(f"{settings.CACHES['default']['KEY_PREFIX']}*"):  # never FLUSHDB a shared Redis
            r.delete(key)
