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

from .api_parsers import FormParser, JSONParser, MultiPartParser
from .errors import ConflictError, validation_detail
from .jobs import JobNotQueued
from .validation import bool_param

__all__ = ["FormParser", "JSONParser", "MultiPartParser", "StrictInputSerializer", "bool_param", "broker_down_response",
           "error_responses_hook", "exception_handler", "validated_input"]


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
    """The request data checked by `serializer_class` (a 400 naming each bad field otherwise).

    A serializer class may define `plain_validated(data)`: the validated data of a body it is sure of, without
    building the serializer (DRF deep-copies the declared fields for every instance), else None; every other body
    goes through the serializer, which words the errors."""
    plain = getattr(serializer_class, "plain_validated", None)
    if plain is not None and not kwargs:
        validated = plain(data)
        if validated is not None:
            return validated
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- the error answers, as the OpenAPI schema declares them -------------------------------------------
# The bodies exception_handler (and DRF's own handler behind it) writes: a 400 names each bad field (a list of
# reasons, or nested objects for nested input), or says "detail" when no field is named; every other error is
# {"detail": "..."}.
ERROR_SCHEMAS = {
    "ValidationError": {
        "type": "object",
        "description": "Field name -> the reasons it was refused (a list of strings; objects or lists of objects "
                       "for nested input); `detail` when the error names no field.",
        "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "array"}, {"type": "object"}]},
        "minProperties": 1,
    },
    "ErrorDetail": {
        "type": "object",
        "properties": {"detail": {"type": "string", "description": "What went wrong, in words."}},
        "required": ["detail"],
    },
}
ERROR_RESPONSES = {
    "400": ("ValidationError", "Bad input: each field named with its reasons."),
    "401": ("ErrorDetail", "No credentials, or credentials that are not valid."),
    "403": ("ErrorDetail", "Your role in the object's workspace does not allow this."),
    "404": ("ErrorDetail", "No such object, or one in a workspace you are not a member of."),
    # declared by the operations that can give them (extend_schema(responses={409: ...})); the hook adds the body
    "409": ("ValidationError", "The request conflicts with what is stored (the field named says why); nothing changed."),
    "503": ("ErrorDetail", "A service behind the API (the task broker) is unreachable; nothing is lost, retry later."),
}


def broker_down_response():
    """The 503 a job-creating operation declares (extend_schema(responses={503: broker_down_response()}))."""
    from drf_spectacular.utils import OpenApiResponse

    return OpenApiResponse(description="the job is stored but the task broker is unreachable: resume it later")


def _declared_errors(operation: dict) -> list[str]:
    """The error answers an operation can give: 401 (unless it is open to anyone) and 403 to any request; 400 and
    404 where there is input: a bad value is refused, and an object it names (in the path, the query, a cursor or
    the body, e.g. a workspace id) may not exist or be out of reach."""
    codes = ["403"] if {} in operation.get("security", [{}]) else ["401", "403"]
    if "requestBody" in operation or operation.get("parameters"):
        codes += ["400", "404"]
    return codes


def error_responses_hook(result, generator, request, public):
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]): every operation declares
    the error answers it can give, with the bodies exception_handler writes, unless it declares its own."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(ERROR_SCHEMAS)
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in ("get", "put", "patch", "post", "delete") or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            for code in _declared_errors(operation):
                name, description = ERROR_RESPONSES[code]
                responses.setdefault(code, {"description": description, "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}})
            for code in ("403", "409", "503"):  # declared by the operation, described here
                if code in responses and not responses[code].get("content"):
                    name, description = ERROR_RESPONSES[code]
                    responses[code] = {"description": responses[code].get("description") or description, "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}
    return result
