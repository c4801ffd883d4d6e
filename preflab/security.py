"""Login throttling: failed password logins are counted per (username, client IP) in the shared cache.

Three entry points use the same counter:
- ThrottledModelBackend (AUTHENTICATION_BACKENDS): every password check anywhere (the login page,
  Django admin, a DRF token endpoint) goes through it; a locked-out pair is refused before the
  password is even checked, so guessing stops working while locked out.
- LoginThrottleMiddleware: on the login pages it answers 429 with a clear message instead of the
  generic "wrong password" form error while the pair is locked out.
- LoginRateThrottle (DRF DEFAULT_THROTTLE_CLASSES): API views that declare throttle_scope = "login"
  (token endpoints) are rate limited per username+IP at REST_FRAMEWORK's "login" rate.

CSPMiddleware: django-csp's, with the fixed policy's headers built once (see the class).

Counters live in the default cache (CACHE_URL=redis://... in production so every gunicorn worker and
machine shares them). If the cache is down the limiter fails open (logins keep working) and logs it.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import math

from csp import middleware as csp_middleware
from django.conf import settings
from django.contrib.auth import user_login_failed
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpResponse, JsonResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import escape
from rest_framework.throttling import SimpleRateThrottle

log = logging.getLogger(__name__)

_PREFIX = "preflab:login-fail:"


def client_ip(request) -> str:
    """The client's address; behind a trusted proxy (BEHIND_PROXY) the address that proxy saw."""
    if request is None:
        return ""
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            # The right-most entry was appended by our own proxy; the others are client-supplied.
            return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "") or ""


def _key(username: str, ip: str) -> str:
    digest = hashlib.sha256(f"{(username or '').strip().lower()}\x00{ip}".encode()).hexdigest()
    return _PREFIX + digest


def login_failures(*, username: str, ip: str) -> int:
    try:
        return int(cache.get(_key(username, ip), 0))
    except Exception:
        log.warning("login throttle: cache unavailable, not counting", exc_info=True)
        return 0


def login_locked(*, username: str, ip: str) -> bool:
    return login_failures(username=username, ip=ip) >= settings.LOGIN_THROTTLE_FAILURES


def login_failure_record(*, username: str, ip: str) -> int:
    key = _key(username, ip)
    try:
        cache.add(key, 0, timeout=settings.LOGIN_THROTTLE_WINDOW)
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.LOGIN_THROTTLE_WINDOW)
        return 1
    except Exception:
        log.warning("login throttle: cache unavailable, failure not counted", exc_info=True)
        return 0


def login_failures_reset(*, username: str, ip: str) -> None:
    try:
        cache.delete(_key(username, ip))
    except Exception:
        log.warning("login throttle: cache unavailable, counter not reset", exc_info=True)


def lockout_message() -> str:
    minutes = max(1, math.ceil(settings.LOGIN_THROTTLE_WINDOW / 60))
    return (f"Too many failed login attempts for this account from your address. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.")


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend with a per-(username, IP) lockout after repeated failures."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field(), "")
        ip = client_ip(request)
        if username and login_locked(username=username, ip=ip):
            # PermissionDenied stops django.contrib.auth.authenticate() from trying further backends.
            raise PermissionDenied(lockout_message())
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if username and password is not None:
            if user is None:
                login_failure_record(username=username, ip=ip)
            else:
                login_failures_reset(username=username, ip=ip)
        return user

    @staticmethod
    def _username_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


def _login_paths() -> set[str]:
    paths = set()
    for name in (settings.LOGIN_URL, "login", "admin:login"):
        try:
            paths.add(reverse(name) if not str(name).startswith("/") else str(name))
        except NoReverseMatch:
            continue
    return paths


class LoginThrottleMiddleware:
    """Answers 429 (with the reason) to a POST on a login page while its username+IP is locked out."""

    def __init__(self, get_response):
        self.get_response = get_response
        self._paths: set[str] | None = None

    def __call__(self, request):
        if request.method == "POST":
            if self._paths is None:
                self._paths = _login_paths()
            if request.path in self._paths:
                username = request.POST.get("username", "")
                if username and login_locked(username=username, ip=client_ip(request)):
                    user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)
                    return self._locked_response(request)
        return self.get_response(request)

    @staticmethod
    def _locked_response(request):
        message = lockout_message()
        retry = str(settings.LOGIN_THROTTLE_WINDOW)
        if "application/json" in request.headers.get("Accept", ""):
            response = JsonResponse({"detail": message}, status=429)
        else:
            response = HttpResponse(
                "<!doctype html><title>Too many login attempts</title>"
                f"<main style='font-family:sans-serif;max-width:40rem;margin:4rem auto'>"
                f"<h1>Too many login attempts</h1><p>{escape(message)}</p>"
                f"<p><a href='{escape(request.path)}'>Back to the login page</a></p></main>",
                status=429, content_type="text/html; charset=utf-8")
        response["Retry-After"] = retry
        return response


class LoginRateThrottle(SimpleRateThrottle):
    """DRF throttle for views that declare throttle_scope = "login" (per username + client IP).

    Installed in DEFAULT_THROTTLE_CLASSES; every other view passes through untouched.
    """

    scope = "login"

    def allow_request(self, request, view):
        if getattr(view, "throttle_scope", None) != "login":
            return True
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        username = ""
        try:
            data = request.data
            if hasattr(data, "get"):
                username = str(data.get("username", ""))
        except Exception:  # noqa: BLE001 - unparsable bodies are throttled per IP
            username = ""
        return self.cache_format % {"scope": self.scope, "ident": _key(username, client_ip(request))}


class RequestSizeLimitMiddleware:
    """413 for any request that declares a body over PREFLAB_MAX_UPLOAD_BYTES, before a view reads it.

    The hard upper bound for every URL (imports stream up to it; chunked uploads without a
    Content-Length are counted by the import endpoints themselves). Ordinary form/JSON bodies are
    further limited by Django's DATA_UPLOAD_MAX_MEMORY_SIZE.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.PREFLAB_MAX_UPLOAD_BYTES
        if length > limit:
            return JsonResponse({"detail": f"the request body is {length} bytes, over the limit of {limit} bytes "
                                           "(PREFLAB_MAX_UPLOAD_BYTES)"}, status=413)
        return self.get_response(request)


class QueryTextMiddleware:
    """A query string holding text that cannot be stored or compared (annotation.text: a NUL from
    "%00") is a 400 naming the parameter, for every page and API, before a view builds a query of it.
    API paths answer JSON, pages plain text."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.core.exceptions import ValidationError

        from annotation.errors import validation_detail, validation_message
        from annotation.text import query_params_check

        if request.META.get("QUERY_STRING"):
            try:
                query_params_check(request.GET)
            except ValidationError as exc:
                if request.path.startswith("/api/"):
                    return JsonResponse(validation_detail(exc), status=400)
                return HttpResponse(escape(validation_message(exc)), status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


# --- Content-Security-Policy -------------------------------------------------------------------

_CSP_PER_RESPONSE = ("_csp_config", "_csp_update", "_csp_replace", "_csp_config_ro", "_csp_update_ro", "_csp_replace_ro")


@functools.cache
def _csp_fixed_headers() -> tuple[tuple[str, str, tuple[str, ...], str], ...]:
    """(header, value, excluded path prefixes, exempting response attribute) of the policy and the
    report-only policy, as django-csp builds them for a response without a nonce or a view's own policy."""
    from csp.constants import HEADER, HEADER_REPORT_ONLY
    from csp.utils import build_policy

    out = []
    for header, setting, exempt, report_only in ((HEADER, "CONTENT_SECURITY_POLICY", "_csp_exempt", False),
                                                 (HEADER_REPORT_ONLY, "CONTENT_SECURITY_POLICY_REPORT_ONLY",
                                                  "_csp_exempt_ro", True)):
        value = build_policy(report_only=report_only)
        if value:
            prefixes = tuple((getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES", None) or ())
            out.append((header, value, prefixes, exempt))
    return tuple(out)


@receiver(setting_changed)
def _csp_settings_changed(*, setting, **kwargs):
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        _csp_fixed_headers.cache_clear()


class CSPMiddleware(csp_middleware.CSPMiddleware):
    """django-csp's middleware, with the headers of the fixed policy (settings) built once per
    process: django-csp builds both policies again for every response (a tenth of the CPU of an
    annotator's API call). A response whose request used a nonce, or whose view set its own
    policy (django-csp's decorators), goes through django-csp unchanged."""

    def process_response(self, request, response):
        if (getattr(request, "_csp_nonce", None) is not None or any(a in response.__dict__ for a in _CSP_PER_RESPONSE)
                or settings.DEBUG and response.status_code in (500, 404)):
            return super().process_response(request, response)
        for header, value, prefixes, exempt in _csp_fixed_headers():
            if header not in response and not getattr(response, exempt, False) and not request.path_info.startswith(prefixes):
                response[header] = value
        request.csp_nonce = csp_middleware.CheckableLazyObject(self._csp_nonce_post_response)
        return response
