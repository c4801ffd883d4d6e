"""preflab.lazy_middleware: Django's session and message middlewares with the store and storage made on first
use. A request gets the same answer (status, headers, cookies) as with Django's own, whatever it does with the
session and the messages; one that uses neither (an API call by token) makes neither."""
import pytest
from django.contrib import messages
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.contrib.messages.storage.base import BaseStorage
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpResponse
from django.test import RequestFactory

from preflab.lazy_middleware import MessageMiddleware, SessionMiddleware
from tests.conftest import client_for


def _view(request):
    action = request.GET.get("do", "")
    body = ""
    if action == "message":
        messages.info(request, "saved")
    elif action == "read":
        body = ",".join(str(m) for m in messages.get_messages(request))
    elif action == "set":
        request.session["k"] = "v"
    elif action == "get":
        body = str(request.session.get("k"))
    elif action == "flush":
        request.session.flush()
    return HttpResponse(body)


def _run(session_cls, message_cls, steps, cookie=None):
    chain = session_cls(message_cls(_view))
    cookies, seen = dict(cookie or {}), []
    for action in steps:
        request = RequestFactory().get("/", {"do": action})
        request.COOKIES.update(cookies)
        response = chain(request)
        for name, morsel in response.cookies.items():
            if morsel.value:
                cookies[name] = morsel.value
            else:
                cookies.pop(name, None)
        seen.append((response.status_code, response.content, response.get("Vary"),
                     sorted((name, bool(m.value), m["max-age"]) for name, m in response.cookies.items())))
    return seen


@pytest.mark.django_db
@pytest.mark.parametrize("steps", [
    ["none", "none"], ["message", "read", "read"], ["message", "none", "read"], ["set", "get", "none", "flush", "get"],
    ["get"], ["set", "message", "read", "get"], ["read", "none"],
])
@pytest.mark.parametrize("cookie", [None, {"sessionid": "x"}, {"sessionid": "an-unknown-session-key-0123456789"}])
def test_the_same_answers_as_djangos_middlewares(steps, cookie):
    assert _run(SessionMiddleware, MessageMiddleware, steps, cookie) == _run(DjangoSessionMiddleware, DjangoMessageMiddleware,
                                                                              steps, cookie)


@pytest.mark.django_db
def test_a_token_api_call_makes_no_session_store_nor_message_storage(monkeypatch, annotator, dataset):
    made = []
    for cls in (SessionBase, BaseStorage):
        init = cls.__init__
        monkeypatch.setattr(cls, "__init__", lambda self, *a, _init=init, **k: made.append(type(self)) or _init(self, *a, **k))
    r = client_for(annotator).get(f"/api/v1/datasets/{dataset.pk}/")
    assert r.status_code == 200 and not r.cookies and "Cookie" not in r.get("Vary", "")
    assert made == []
    # a page uses both
    from tests.helpers import login

    assert login(annotator).get("/").status_code == 200 and made
