"""What every REST API of preflab shares (annotation, generation, judging): the exception handler
settings.REST_FRAMEWORK names, the strict input serializer, reading a request's input through it,
and the one vocabulary of boolean query parameters.

Every bad input is a 400 naming the field and the reason, whether DRF (a serializer) or a service
(a django ValidationError) found it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import QueryDict
from rest_framework import parsers, serializers, status
from rest_framework.response import Response as ApiResponse
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ConflictError, validation_detail
from .jobs import JobNotQueued
from .text import input_text_check
from .validation import bool_param

__all__ = ["FormParser", "JSONParser", "MultiPartParser", "StrictInputSerializer", "bool_param",
           "exception_handler", "validated_input"]


def exception_handler(exc, context):
    """Turn service-layer ValidationErrors into 400s naming the field and the reason (a
    ConflictError: 409, same body); a job that was stored but could not be queued (the broker is
    down) into a 503 saying so, with the job to resume."""
    if isinstance(exc, ConflictError):
        return ApiResponse(validation_detail(exc), status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DjangoValidationError):
        return ApiResponse(validation_detail(exc), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, JobNotQueued):
        return ApiResponse({"detail": exc.message, "job": exc.job.pk, "status": exc.job.status},
                           status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "30"})
    return drf_exception_handler(exc, context)


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


class StrictInputSerializer(serializers.Serializer):
    """An input serializer that rejects keys it does not know (a typo must not pass silently)."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["unknown field"] for key in unknown})
        return super().to_internal_value(data)


def validated_input(serializer_class, data: Any, **kwargs) -> dict:
    """The request data checked by `serializer_class` (a 400 naming each bad field otherwise)."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
