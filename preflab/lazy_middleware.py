"""Django's session and message middlewares, with the session store and the message storage made when a
request first uses them instead of for every request.

An API call authenticated by token never reads the session or the messages, and building both was about a
twentieth of its CPU. A request that does use them gets the very objects Django's middlewares make (behind a
SimpleLazyObject), and the response goes through Django's own process_response. One that did not touch them
leaves nothing for process_response to do: the session is not accessed, not modified, and empty without a
session cookie (with one, Django's process_response runs as before, and may delete a cookie of an unknown
session); a message storage nothing read or added stores nothing.
"""
from __future__ import annotations

from functools import partial

from django.conf import settings
from django.contrib.messages import middleware as messages_middleware
from django.contrib.messages.storage import default_storage
from django.contrib.sessions import middleware as sessions_middleware
from django.utils.functional import SimpleLazyObject, empty


def _untouched(obj) -> bool:
    return type(obj) is SimpleLazyObject and obj._wrapped is empty


class SessionMiddleware(sessions_middleware.SessionMiddleware):
    def process_request(self, request):
        request.session = SimpleLazyObject(partial(self.SessionStore, request.COOKIES.get(settings.SESSION_COOKIE_NAME)))

    def process_response(self, request, response):
        if _untouched(getattr(request, "session", None)) and settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return response
        return super().process_response(request, response)


class MessageMiddleware(messages_middleware.MessageMiddleware):
    def process_request(self, request):
        request._messages = SimpleLazyObject(partial(default_storage, request))

    def process_response(self, request, response):
        if _untouched(getattr(request, "_messages", None)):
            return response
        return super().process_response(request, response)
