"""The annotator and admin screens in a real browser (Debian's Chromium driven by Playwright).

One annotator session: log in, rank two responses by dragging, submit, get the next record
without a page load, discard it, see "all done"; then rank three responses with the keyboard
only. Meanwhile an admin's dashboard shows the progress change live. Record text carrying
<script> and <img onerror> never runs, neither on a full page load nor in an htmx swap.
Screenshots of the annotate page and the dashboard are written to var/screenshots/.
"""
from pathlib import Path

import pytest
from django.conf import settings

from annotation.demo_data import GUIDELINES, PAIRS, TRIPLES, demo_records
from annotation.models import Membership, Record, Response
from annotation.services import (
    dataset_create,
    dataset_publish,
    member_upsert,
    pairwise_dataset_spec,
    records_upsert,
    workspace_create,
)
from annotation.validation import field_specs_of, record_validate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
XSS = ('<script>window.__pwned = "script"; alert(1)</script> '
       '<img src=x onerror="window.__pwned = \'img\'; alert(2)"> '
       '<svg onload="window.__pwned = \'svg\'">')


def _dataset(ws, admin, name, items, n_responses, *, min_submitted=1):
    fields, questions = pairwise_dataset_spec(responses=n_responses)
    ds = dataset_create(workspace=ws, name=name, fields=fields, questions=questions, created_by=admin,
                        guidelines=GUIDELINES, min_submitted=min_submitted, allow_ties=False,
                        shuffle_responses=False, show_suggestions=True)
    specs = field_specs_of(ds)
    records_upsert(dataset=ds, rows=[record_validate(r, specs) for r in items])
    dataset_publish(dataset=ds)
    return ds


@pytest.fixture
def campaign():
    ws = workspace_create(name="Browser test")
    member_upsert(workspace=ws, username="boss", role=Membership.Role.ADMIN, password="boss-pass-1")
    member_upsert(workspace=ws, username="anna", role=Membership.Role.ANNOTATOR, password="anna-pass-1")
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.get(username="boss")
    pair_items = demo_records(PAIRS[:2])
    pair_items[0]["priority"] = 1.0
    pair_items[0]["fields"]["prompt"] += "\n\n" + XSS        # full page load
    pair_items[1]["fields"]["response-2"] += "\n\n" + XSS    # arrives through an htmx swap
    pair_items[1]["fields"]["prompt"] = "Plain text prompt " + XSS
    pairs = _dataset(ws, admin, "Pairs", pair_items, 2, min_submitted=2)
    # another annotator already answered the first record (the other way round): the dashboard will
    # show the two annotators disagreeing on it once anna has answered
    member_upsert(workspace=ws, username="ben", role=Membership.Role.ANNOTATOR, password="ben-pass-12")
    from annotation.services import response_upsert

    ben = get_user_model().objects.get(username="ben")
    response_upsert(user=ben, record=Record.objects.get(dataset=pairs, external_id=PAIRS[0]["id"]),
                    values={"ranking": ["response-1", "response-2"]}, status="submitted", duration=41.0)
    triple = _dataset(ws, admin, "Best of three", demo_records(TRIPLES[:1]), 3)
    return {"pairs": pairs, "triple": triple}


DIALOGS: dict = {}


def _login(context, base, username, password):
    page = context.new_page()
    DIALOGS[page] = []
    page.on("dialog", lambda d: DIALOGS[page].append(d.message) or d.dismiss())
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def _assert_nothing_ran(page):
    assert page.evaluate("window.__pwned") is None
    assert not DIALOGS[page], DIALOGS[page]


def test_annotator_ranks_by_drag_and_keyboard_and_admin_sees_progress(browser, live_server, campaign):
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    pairs, triple = campaign["pairs"], campaign["triple"]
    first, second = (Record.objects.get(dataset=pairs, external_id=PAIRS[i]["id"]) for i in (0, 1))

    boss = _login(browser.new_context(viewport={"width": 1400, "height": 1000}), base, "boss", "boss-pass-1")
    boss.goto(f"{base}/datasets/{pairs.pk}/")
    expect(boss.locator('[data-stat="completed"]')).to_have_text("0")

    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = _login(ctx, base, "anna", "anna-pass-1")
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.click(f'[data-dataset="{pairs.pk}"] >> text=Start annotating')
    page.wait_for_selector(f'#annotate-form[data-record="{first.pk}"]')
    page.evaluate("window.__marker = 42")
    _assert_nothing_ran(page)
    assert "<script>window.__pwned" in page.inner_text(".prompt-card")  # shown as text, not run

    # drag response B above response A in the ranking list
    src = page.locator('.rank-item[data-field="response-2"]').bounding_box()
    dst = page.locator('.rank-item[data-field="response-1"]').bounding_box()
    page.mouse.move(src["x"] + src["width"] / 2, src["y"] + src["height"] / 2)
    page.mouse.down()
    page.mouse.move(src["x"] + src["width"] / 2, src["y"] + src["height"] / 2 - 8, steps=4)
    page.mouse.move(dst["x"] + dst["width"] / 2, dst["y"] + 2, steps=12)
    page.mouse.up()
    expect(page.locator('input[name="rank__ranking__response-2"]')).to_have_value("1")
    expect(page.locator('input[name="rank__ranking__response-1"]')).to_have_value("2")
    expect(page.locator(".rank-item").first).to_have_attribute("data-field", "response-2")
    page.wait_for_timeout(300)
    page.click('button[data-action="submit"]')

    # the next record is swapped in by htmx: no page load, the window marker survives
    page.wait_for_selector(f'#annotate-form[data-record="{second.pk}"]')
    assert page.evaluate("window.__marker") == 42
    _assert_nothing_ran(page)
    page.locator("body").click(position={"x": 5, "y": 300})  # focus outside any text box
    page.keyboard.press("Backspace")
    page.wait_for_selector("[data-all-done]")
    assert page.evaluate("window.__marker") == 42
    expect(page.locator("[data-all-done]")).to_contain_text("All done")
    _assert_nothing_ran(page)

    submitted = Response.objects.get(record=first, user__username="anna")
    assert submitted.status == "submitted"
    assert submitted.values["ranking"] == [{"value": "response-2", "rank": 1}, {"value": "response-1", "rank": 2}]
    assert submitted.display_order == ["response-1", "response-2"]
    assert submitted.duration > 0
    assert Response.objects.get(record=second, user__username="anna").status == "discarded"

    # the admin's dashboard picks the change up by itself (htmx polling)
    expect(boss.locator('[data-stat="completed"]')).to_have_text("1", timeout=12_000)
    expect(boss.locator('[data-annotator="anna"] [data-col="submitted"]')).to_have_text("1")
    expect(boss.locator('[data-stat="agreement"]')).to_have_text("0%")  # anna and ben ranked it differently
    expect(boss.locator(f'a[href="/datasets/{pairs.pk}/records/{first.pk}/"]')).to_be_visible()
    boss.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)

    # three responses, keyboard only: A gets 3, B gets 1, C takes the rank left (2)
    page.goto(f"{base}/datasets/{triple.pk}/annotate/")
    page.wait_for_selector("#annotate-form")
    page.keyboard.press("3")
    page.keyboard.press("1")
    expect(page.locator('input[name="rank__ranking__response-1"]')).to_have_value("3")
    expect(page.locator('input[name="rank__ranking__response-2"]')).to_have_value("1")
    expect(page.locator('input[name="rank__ranking__response-3"]')).to_have_value("2")
    # a digit on a ranked response swaps ranks (no ties in this dataset)
    page.locator('.response-card[data-field="response-3"]').focus()
    page.keyboard.press("1")
    expect(page.locator('input[name="rank__ranking__response-3"]')).to_have_value("1")
    expect(page.locator('input[name="rank__ranking__response-2"]')).to_have_value("2")
    page.locator('.response-card[data-field="response-2"]').focus()
    page.keyboard.press("1")
    expect(page.locator('.response-card[data-field="response-2"]')).to_have_attribute("data-rank", "1")
    # the ranking was auto-saved as a draft (htmx POST with the CSRF header from <body hx-headers>)
    expect(page.locator("#save-state")).to_contain_text("Draft saved", timeout=5_000)
    draft = Response.objects.get(record__dataset=triple, user__username="anna")
    assert draft.status == "draft" and draft.values["ranking"]
    page.mouse.move(0, 0)
    page.screenshot(path=str(SHOTS / "annotate.png"), full_page=True)
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-all-done]")
    answer = Response.objects.get(record__dataset=triple, user__username="anna")
    assert answer.status == "submitted"
    assert {v["value"]: v["rank"] for v in answer.values["ranking"]} == {"response-1": 3, "response-2": 1,
                                                                         "response-3": 2}
    assert not errors, errors


def test_ties_ctrl_s_draft_and_remembered_guidelines(browser, live_server):
    from playwright.sync_api import expect

    ws = workspace_create(name="Ties")
    member_upsert(workspace=ws, username="tia", role=Membership.Role.ANNOTATOR, password="tia-pass-12")
    fields, questions = pairwise_dataset_spec(responses=3)
    ds = dataset_create(workspace=ws, name="With ties", fields=fields, questions=questions, guidelines=GUIDELINES,
                        allow_ties=True, shuffle_responses=False)
    specs = field_specs_of(ds)
    records_upsert(dataset=ds, rows=[record_validate(r, specs) for r in demo_records(TRIPLES[1:2])])
    dataset_publish(dataset=ds)

    base = live_server.url
    page = _login(browser.new_context(viewport={"width": 1300, "height": 900}), base, "tia", "tia-pass-12")
    page.goto(f"{base}/datasets/{ds.pk}/annotate/")
    page.wait_for_selector("#annotate-form")
    page.keyboard.press("1")          # A = 1, B is selected next
    page.keyboard.press("1")          # B = 1 too: a tie, nothing swapped
    expect(page.locator('input[name="rank__ranking__response-1"]')).to_have_value("1")
    expect(page.locator('input[name="rank__ranking__response-2"]')).to_have_value("1")
    expect(page.locator('input[name="rank__ranking__response-3"]')).to_have_value("")  # no auto-fill with ties
    page.keyboard.press("2")          # C = 2
    page.keyboard.press("Control+s")  # save the draft now
    expect(page.locator("#save-state")).to_contain_text("Draft saved", timeout=5_000)
    draft = Response.objects.get(record__dataset=ds, user__username="tia")
    assert draft.status == "draft"
    assert {v["value"]: v["rank"] for v in draft.values["ranking"]} == {"response-1": 1, "response-2": 1,
                                                                        "response-3": 2}
    # an htmx POST without any form token: only the X-CSRFToken header (set by the page) proves it
    record_id = page.get_attribute("#annotate-form", "data-record")
    page.evaluate("""([url]) => new Promise(done => htmx.ajax('POST', url, {target: '#save-state', swap: 'outerHTML',
        values: {'rank__ranking__response-1': '3', 'rank__ranking__response-2': '1', 'rank__ranking__response-3': '2'}})
        .then(done))""", [f"/datasets/{ds.pk}/records/{record_id}/draft/"])
    draft.refresh_from_db()
    assert {v["value"]: v["rank"] for v in draft.values["ranking"]} == {"response-1": 3, "response-2": 1,
                                                                        "response-3": 2}
    # guidelines: collapsed once, they stay collapsed on the next visit; the draft comes back
    page.click("details.guidelines > summary")
    expect(page.locator("details.guidelines")).not_to_have_attribute("open", "")
    page.reload()
    page.wait_for_selector("#annotate-form")
    assert page.evaluate("document.querySelector('details.guidelines').open") is False
    expect(page.locator('input[name="rank__ranking__response-2"]')).to_have_value("1")
    expect(page.locator(".annotate-side .panel").first).to_contain_text("draft restored")
