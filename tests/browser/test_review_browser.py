"""A reviewer settles disputed records in a real browser (Debian's Chromium driven by Playwright):
from the home page to the review queue, the worst record first; they set their own verdict with the
page's controls, land on the next queued record, accept one annotator's answer there, and find the
queue empty. An annotator name holding HTML is shown as text, never run. Screenshots go to
var/screenshots/.
"""
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from annotation.models import Membership, Record, Review
from annotation.services import (
    dataset_create,
    dataset_publish,
    member_upsert,
    next_record_for,
    pairwise_dataset_spec,
    records_upsert,
    response_upsert,
    workspace_create,
)
from annotation.validation import field_specs_of, record_validate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
XSS = '<img src=x onerror="window.__pwned = 1">'
R1, R2 = "response-1", "response-2"


def ranking(*order):
    return [{"value": name, "rank": k} for k, name in enumerate(order, start=1)]


@pytest.fixture
def disputed():
    ws = workspace_create(name="Review")
    member_upsert(workspace=ws, username="rita", role=Membership.Role.REVIEWER, password="rita-pass-1")
    voters = []
    for name in ("ann", XSS):
        user = get_user_model().objects.create(username=name)
        Membership.objects.create(user=user, workspace=ws, role=Membership.Role.ANNOTATOR)
        voters.append(user)
    fields, questions = pairwise_dataset_spec(responses=2)
    ds = dataset_create(workspace=ws, name="Disputed pairs", fields=fields, questions=questions,
                        min_submitted=2, allow_ties=False, shuffle_responses=False, show_suggestions=False)
    rows = [{"external_id": "tea", "fields": {"prompt": "How long should green tea steep?",
                                              R1: "Ten minutes, boiling.", R2: "Two to three minutes at 80 °C."}},
            {"external_id": "capital", "fields": {"prompt": "Capital of Australia?", R1: "Canberra.", R2: "Sydney."}}]
    specs = field_specs_of(ds)
    records_upsert(dataset=ds, rows=[record_validate(r, specs) for r in rows])
    dataset_publish(dataset=ds)
    for user, order in ((voters[0], (R1, R2)), (voters[1], (R2, R1))):
        for _ in rows:
            record = next_record_for(user, ds)
            record.dataset = ds
            response_upsert(user=user, record=record, values={"ranking": ranking(*order)}, status="submitted")
    return ds


def test_a_reviewer_settles_the_disputed_records(browser, live_server, disputed):
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{base}/login/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", "rita-pass-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.click("a[data-review-link]")
    expect(page.locator("[data-review-queue] tbody tr")).to_have_count(2)
    page.click("text=Review the worst first")
    page.wait_for_url(re.compile(r".*/review/\d+/$"))
    first = page.url
    expect(page.locator("[data-answers]")).to_contain_text(XSS)          # the name as text...
    assert page.evaluate("window.__pwned") is None                        # ...never run
    page.screenshot(path=str(SHOTS / "review-record.png"), full_page=True)
    page.select_option(f"select[name='rank__ranking__{R2}']", "1")
    page.select_option(f"select[name='rank__ranking__{R1}']", "2")
    page.fill("[data-verdict] input[name=note]", "the second answer is right")
    page.click("[data-action=own]")
    page.wait_for_url(lambda url: url != first and re.search(r"/review/\d+/$", url) is not None)
    expect(page.locator(".flash-stack")).to_contain_text("Your verdict is saved")
    page.locator("[data-accept]").first.click()
    page.wait_for_url(f"{base}/datasets/{disputed.pk}/review/")
    expect(page.locator("[data-review-queue]")).to_contain_text("Nothing to review")
    reviews = {r.record.external_id: r for r in Review.objects.select_related("record", "reviewer")}
    assert {k: (r.decision, r.reviewer.username) for k, r in reviews.items()} == {
        "tea": ("own", "rita"), "capital": ("accepted", "rita")}
    settled_first = Record.objects.get(pk=int(first.rstrip("/").rsplit("/", 1)[1]))
    assert reviews[settled_first.external_id].values == {"ranking": ranking(R2, R1)}
    context.close()
