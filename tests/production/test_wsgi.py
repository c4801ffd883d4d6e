"""preflab.wsgi.application: whole bodies come back as a one-item list (the response closed, request_finished
sent), streamed ones as the response itself for the server to walk and close."""
import subprocess
import sys

import orjson
from django.core.signals import request_finished
from django.test import RequestFactory

from annotation.models import Membership
from annotation.services import member_upsert
from preflab.wsgi import application
from tests.factories import DatasetFactory


def _call(environ):
    started = {}

    def start_response(status, headers):
        started.update(status=status, headers=dict(headers))

    finished = []

    def on_finished(**kwargs):
        finished.append(kwargs)

    request_finished.connect(on_finished)
    try:
        body = application(environ, start_response)
        finished_before_iteration = len(finished)
        chunks = list(body)
        if hasattr(body, "close"):
            body.close()
    finally:
        request_finished.disconnect(on_finished)
    return started, body, chunks, finished_before_iteration, len(finished)


def test_a_whole_body_is_a_list_and_the_response_is_closed_before_the_server_sends_it(wsgi_in_test_transaction):
    started, body, chunks, before, after = _call(RequestFactory().get("/healthz").environ)
    assert started["status"].startswith("200")
    assert type(body) is list and len(body) == 1
    assert orjson.loads(body[0])["status"] == "ok"
    assert (before, after) == (1, 1)  # request_finished ran once, inside the application call


def test_an_api_error_body_is_whole_too(wsgi_in_test_transaction):
    started, body, chunks, before, _ = _call(RequestFactory().get("/api/v1/datasets/").environ)
    assert started["status"].startswith(("401", "403")) and type(body) is list and before == 1
    assert b"detail" in body[0]


def test_a_streamed_export_stays_an_iterable_the_server_closes(wsgi_in_test_transaction):
    ds = DatasetFactory()
    _m, token, _ = member_upsert(workspace=ds.workspace, username="wsgi-admin", role=Membership.Role.ADMIN)
    environ = RequestFactory().get(f"/api/v1/datasets/{ds.pk}/triplets/", {"format": "jsonl"},
                                   HTTP_AUTHORIZATION=f"Token {token}").environ
    started, body, chunks, before, after = _call(environ)
    assert started["status"].startswith("200"), chunks
    assert type(body) is not list and getattr(body, "streaming", False)
    assert before == 0 and after == 1  # request_finished waits for the server's close()


def test_a_worker_loads_the_url_conf_as_it_starts():
    """Not within the first request it serves."""
    probe = ("import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'preflab.settings'); import preflab.wsgi; "
             "print(' '.join(m for m in ('preflab.urls', 'annotation.apis', 'annotation.tasks', 'preflab.celery') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    # the Celery app and task too: Django's start no longer loads them, and a request queueing a job would
    assert out.stdout.split() == ["preflab.urls", "annotation.apis", "annotation.tasks", "preflab.celery"]
