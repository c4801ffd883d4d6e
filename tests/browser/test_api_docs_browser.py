"""The API docs page in a real browser with no way out: every request that is not to the app itself is
refused, as on a machine without internet. Swagger UI must still load (its files are served by the app) and
list the API's operations."""
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


def test_api_docs_list_operations_without_internet(browser, live_server):
    base = live_server.url
    ctx = browser.new_context(viewport={"width": 1300, "height": 1000})
    refused = []

    def only_the_app(route):
        url = route.request.url
        if url.startswith(base + "/"):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    ctx.route("**/*", only_the_app)
    page = ctx.new_page()
    page.goto(f"{base}/api/docs/")
    page.wait_for_selector(".opblock", timeout=15000)
    summaries = page.locator(".opblock .opblock-summary-path").all_inner_texts()
    assert any("/api/v1/datasets/" in s for s in summaries), summaries[:10]
    assert page.locator(".opblock").count() > 20
    assert page.locator(".info .title").first.inner_text().startswith("preflab API")
    assert refused == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "api-docs-offline.png"))
    ctx.close()
