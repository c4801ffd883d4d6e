"""The request parsers settings.REST_FRAMEWORK names: DRF's own, with a check that the body holds no
text PostgreSQL cannot store. A module of their own because DRF reads the setting while it defines
APIView: a module that imports rest_framework.views (as api_common does) cannot be the one it names,
or importing that module first would be a circular import."""
from __future__ import annotations

from django.http import QueryDict
from rest_framework import parsers

from .text import input_text_check


class _StorableTextParser:
    """A request body holding text that cannot be stored (annotation.text: NUL, lone surrogates) is a
    400 naming the field, before any view sees it; settings.REST_FRAMEWORK's parsers are these."""

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        data = getattr(parsed, "data", parsed)  # multipart: the form fields (files are read by their importers)
        if isinstance(data, QueryDict):
            data = {key: values[0] if len(values) == 1 else values for key, values in data.lists()}
        input_text_check(data)
        return parsed


class JSONParser(_StorableTextParser, parsers.JSONParser):
    pass


class FormParser(_StorableTextParser, parsers.FormParser):
    pass


class MultiPartParser(_StorableTextParser, parsers.MultiPartParser):
    pass
