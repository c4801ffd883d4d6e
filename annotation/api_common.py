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
from rest_framework import serializers, status
from rest_framework.response import Response as ApiResponse
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ConflictError, validation_detail
from .jobs import JobNotQueued
from .validation import bool_param

__all__ = ["StrictInputSerializer", "bool_param", "exception_handler", "validated_input"]


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
