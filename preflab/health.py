"""GET /healthz for container health checks and load balancers.

A middleware placed first, so it answers before host validation and the HTTPS redirect (a health
probe comes over plain HTTP from inside the container with whatever Host header it has). It checks
that the database answers; 200 {"status": "ok"} or 503 with the reason, never a hang longer than
the database's connect timeout.
"""
from __future__ import annotations

import logging

from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.http import HttpResponse, JsonResponse

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"


def database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True, "ok"
    except Exception as exc:  # noqa: BLE001 - the probe reports any failure as "unhealthy"
        try:
            connection.close()
        except Exception:  # noqa: BLE001
            pass
        return False, f"database unavailable: {type(exc).__name__}"


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == HEALTH_PATH and request.method in ("GET", "HEAD"):
            ok, detail = database_ok()
            if not ok:
                log.warning("health check failed: %s", detail)
            return JsonResponse({"status": "ok" if ok else "unavailable", "database": detail},
                                status=200 if ok else 503)
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """A lost database connection (restart, failover) answers 503 with a message and Retry-After.

    Only connection-level errors (OperationalError / InterfaceError) become 503; the broken
    connection is closed so the next request reconnects (CONN_HEALTH_CHECKS does the rest).
    Any other error keeps Django's normal 500 path.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)) or not _is_connection_error(exception):
            return None
        log.warning("database unavailable during %s %s: %s", request.method, request.path, exception)
        try:
            connection.close()
        except Exception:  # noqa: BLE001
            pass
        message = ("The database is temporarily unavailable and this request may not have been applied. "
                   "Retry it in a few seconds.")
        wants_html = not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", "")
        if wants_html or request.headers.get("HX-Request") == "true":
            response = HttpResponse(
                "<!doctype html><title>Temporarily unavailable</title>"
                "<main style='font-family:sans-serif;max-width:40rem;margin:4rem auto'>"
                f"<h1>Temporarily unavailable</h1><p>{message}</p></main>",
                status=503, content_type="text/html; charset=utf-8")
        else:
            response = JsonResponse({"detail": message}, status=503)
        response["Retry-After"] = "5"
        return response


class JobNotQueuedMiddleware:
    """A page that created or resumed a job while the task broker was down (annotation.jobs.JobNotQueued):
    the job is stored failed with the reason, so the page says so and opens the job, whose Resume button
    sends it once the broker is back (the APIs answer 503: annotation.api_common.exception_handler)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from django.contrib import messages
        from django.shortcuts import redirect

        from annotation.jobs import JobNotQueued

        if not isinstance(exception, JobNotQueued):
            return None
        messages.error(request, exception.message)
        response = redirect("job-detail", exception.job.pk)
        if request.headers.get("HX-Request") == "true":
            response = HttpResponse(status=200)
            response["HX-Redirect"] = redirect("job-detail", exception.job.pk)["Location"]
        return response


def _is_connection_error(exc: DatabaseError) -> bool:
    if isinstance(exc, InterfaceError):
        return True
    # SQLite "database is locked" is an OperationalError too, but not an outage: let it be a 500.
    text = str(exc).lower()
    markers = ("connection", "connect", "server closed", "terminating", "shutting down", "starting up",
               "recovery mode", "could not receive", "could not send", "ssl syscall", "eof detected")
    return connection.vendor != "sqlite" and any(m in text for m in markers)
