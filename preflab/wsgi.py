"""The WSGI application the web server runs (granian in the image, gunicorn to compare).

Django's handler returns the HttpResponse object itself, an iterable the server walks chunk by chunk and closes
afterwards. A response whose body is already whole (every API answer and page, all but the streamed exports and
files) is handed back as a one-item list instead, after closing it here: request_finished runs as before (the
database connection is checked or closed, the request's files are closed), and granian sends a list in one write
from Rust instead of driving a Python iterator across the boundary for each chunk.

The module also loads the URLconf and the Celery task module as the worker starts (below).
"""
import os
from importlib import import_module

import django
from django.core.handlers.wsgi import WSGIHandler
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "preflab.settings")


class WholeBodyWSGIHandler(WSGIHandler):
    def __call__(self, environ, start_response):
        response = super().__call__(environ, start_response)
        if getattr(response, "streaming", True):  # a streamed response, or the server's file wrapper
            return response
        try:
            return [response.content]
        finally:
            response.close()


django.setup(set_prefix=False)
application = WholeBodyWSGIHandler()
# The URLconf, and with it every view, serializer and API module, is imported as the worker starts, not inside the
# first request it serves (a second or more of CPU for that request, on a busy machine).
get_resolver().url_patterns  # noqa: B018
# Likewise Celery, which Django's start no longer loads (preflab/__init__.py): the task module and the project's app,
# so the first request that queues a job does not import them.
import_module("annotation.tasks")
