"""REST API of the annotation app (DRF): one small view per operation, logic in services."""
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response as ApiResponse
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    """Turn service-layer ValidationErrors into 400s naming the field and the reason."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return ApiResponse(detail, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)
