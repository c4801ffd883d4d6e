"""An admin watches annotator quality in the browser: the dashboard's quality card loads after the page and names
the annotator below the gold threshold; on the quality page "Pause" swaps that row's standing in place (htmx, CSRF
from the page) and "Resume" undoes it. Screenshots go to var/screenshots/."""
from pathlib import Path

import pytest
from django.conf import settings

from annotation.models import Membership
from annotation.quality.gold import records_gold_set
from annotation.quality.standing import annotator_paused
from annotation.services import member_upsert, workspace_create
from tests.browser.test_annotate_browser import _login
from tests.factories import DatasetFactory, RecordFactory, ResponseFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
FIRST = {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]}
SECOND = {"ranking": [{"value": "response-2", "rank": 1}, {"value": "response-1", "rank": 2}]}


def test_quality_card_and_pausing_from_the_quality_page(browser, live_server):
    ws = workspace_create(name="Quality")
    member_upsert(workspace=ws, username="quinn", role=Membership.Role.ADMIN, password="quinn-pass-12")
    careful = member_upsert(workspace=ws, username="careful", role=Membership.Role.ANNOTATOR)[0].user
    sloppy = member_upsert(workspace=ws, username="sloppy", role=Membership.Role.ANNOTATOR)[0].user
    ds = DatasetFactory(workspace=ws, name="quality", min_submitted=2, gold_pause_accuracy=0.6, gold_pause_min_answers=3,
                        too_fast_seconds=4)
    golds = [RecordFactory(dataset=ds) for _ in range(3)]
    records_gold_set(dataset=ds, answers={r.pk: FIRST for r in golds})
    for i, record in enumerate(golds):
        ResponseFactory(record=record, user=careful, values=FIRST, duration=25)
        ResponseFactory(record=record, user=sloppy, values=FIRST if i == 0 else SECOND, duration=2)   # 1 of 3

    page = _login(browser.new_context(viewport={"width": 1300, "height": 900}), live_server.url, "quinn", "quinn-pass-12")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{live_server.url}/datasets/{ds.pk}/")
    below = page.locator('#quality-summary [data-summary="below-gold"]')
    below.wait_for()
    assert "1 of 2" in below.inner_text() and "sloppy" in below.inner_text()
    page.locator("#quality-summary").screenshot(path=str(SHOTS / "quality-dashboard-card.png"))

    page.get_by_role("link", name="Open the quality page").click()
    page.wait_for_url(f"{live_server.url}/datasets/{ds.pk}/quality/")
    row = page.locator('#quality-table tr[data-annotator="sloppy"]')
    row.wait_for()
    assert "1 / 3" in row.inner_text() and row.locator('[data-flag="below-gold"]').is_visible()
    assert row.locator('[data-flag="too-fast"]').is_visible()
    url_before = page.url
    row.get_by_role("button", name="Pause").click()
    row.locator('[data-state="paused"]').wait_for()
    assert page.url == url_before                                     # swapped in place, no navigation
    assert annotator_paused(dataset=ds, user=sloppy) == "An admin of this dataset paused you."
    assert page.locator('#quality-table tr[data-annotator="careful"] [data-state="active"]').is_visible()
    page.screenshot(path=str(SHOTS / "quality-page.png"), full_page=True)
    row.get_by_role("button", name="Resume").click()
    row.locator('[data-state="active"]').wait_for()
    assert annotator_paused(dataset=ds, user=sloppy) is None
