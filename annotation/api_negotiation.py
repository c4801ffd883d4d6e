"""The content negotiation of every REST API (settings.REST_FRAMEWORK names it).

A module of its own: DRF reads this setting while it defines APIView, so the module must not import
rest_framework.views (annotation.api_common does).
"""
from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's content negotiation (settings.REST_FRAMEWORK names it), with the answer to the Accept headers of
    nearly every API client (none, "*/*", "application/json") given without parsing them: DRF's own answer to
    those, the first renderer. Anything else (another header, ?format=, a format suffix) goes through DRF's."""

    def select_renderer(self, request, renderers, format_suffix=None):
        accept = request.META.get("HTTP_ACCEPT", "*/*")
        if (renderers and not format_suffix and (accept == "*/*" or accept == renderers[0].media_type == "application/json")
                and not (request.META.get("QUERY_STRING") and self.settings.URL_FORMAT_OVERRIDE in request.query_params)):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
