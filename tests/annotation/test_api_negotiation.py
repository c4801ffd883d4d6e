"""The API's content negotiation (annotation.api_negotiation.ContentNegotiation) picks what DRF's own picks, for the
Accept headers it answers itself and for every other request."""
import pytest
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer, TemplateHTMLRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from annotation.api_negotiation import ContentNegotiation

RENDERER_SETS = [[JSONRenderer(), BrowsableAPIRenderer()], [BrowsableAPIRenderer(), JSONRenderer()],
                 [JSONRenderer()], [TemplateHTMLRenderer(), JSONRenderer()]]
ACCEPTS = [None, "*/*", "application/json", "application/json; indent=4", "text/html", "text/html,*/*;q=0.8",
           "application/*", "", "application/xml"]
QUERIES = ["", "?format=json", "?format=api", "?x=1"]


def _pick(negotiation, accept, query, renderers, suffix=None):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(f"/api/v1/x/{query}", **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, suffix)
    except Exception as exc:  # noqa: BLE001 - the refusal must be the same too
        return type(exc).__name__
    return type(renderer).__name__, media_type


@pytest.mark.parametrize("renderers", RENDERER_SETS, ids=lambda rs: "+".join(type(r).__name__ for r in rs))
@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("accept", ACCEPTS)
def test_the_same_renderer_as_drf(accept, query, renderers):
    assert _pick(ContentNegotiation(), accept, query, renderers) == _pick(DefaultContentNegotiation(), accept, query, renderers)


@pytest.mark.parametrize("suffix", ["json", "api"])
def test_a_format_suffix_as_drf(suffix):
    renderers = RENDERER_SETS[0]
    assert _pick(ContentNegotiation(), None, "", renderers, suffix) == _pick(DefaultContentNegotiation(), None, "", renderers, suffix)


def test_the_api_answers_json_by_default_and_the_browsable_page_to_a_browser(client):
    assert client.get("/api/v1/workspaces/")["Content-Type"] == "application/json"
    assert client.get("/api/v1/workspaces/", HTTP_ACCEPT="text/html")["Content-Type"].startswith("text/html")
