"""A new annotator's day on the annotate page, in a real browser (Debian's Chromium, Playwright).

What a first user hit, each checked the way they met it: a judge's tie suggestion on a dataset
without ties (the first record could not be submitted with Enter), a half-done ranking lost from
its draft, field names in a judge's rationale beside lettered cards, no progress shown, Submit
below the fold with the guidelines open, a discard with no way back, Enter on a clicked panel
toggle doing nothing, Ctrl+Enter unlisted, the browser's Back leaving the page. Screenshots at
1280x800 and 390x844 go to var/screenshots/.
"""
import re
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
    suggestions_upsert,
    workspace_create,
)
from annotation.validation import field_specs_of, record_validate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


def _dataset(name, items, n_responses, *, allow_ties=False, shuffle=False, extra=(), guidelines=GUIDELINES):
    ws = workspace_create(name=f"ws {name}")
    member_upsert(workspace=ws, username="dana", role=Membership.Role.ANNOTATOR, password="dana-pass-12")
    fields, questions = pairwise_dataset_spec(responses=n_responses, extra=extra)
    ds = dataset_create(workspace=ws, name=name, fields=fields, questions=questions, guidelines=guidelines,
                        min_submitted=1, allow_ties=allow_ties, shuffle_responses=shuffle, show_suggestions=True)
    specs = field_specs_of(ds)
    records_upsert(dataset=ds, rows=[record_validate(r, specs) for r in items])
    dataset_publish(dataset=ds)
    return ds


def _login(browser, base, viewport=(1280, 800)):
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = context.new_page()
    page.goto(f"{base}/login/")
    page.fill("#id_username", "dana")
    page.fill("#id_password", "dana-pass-12")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.js_errors = errors
    return page


def _open(page, base, ds):
    page.goto(f"{base}/datasets/{ds.pk}/annotate/")
    page.wait_for_selector("#annotate-form")
    return int(page.get_attribute("#annotate-form", "data-record"))


def _ranks(record, user="dana"):
    values = Response.objects.get(record_id=record, user__username=user).values
    return {v["value"]: v["rank"] for v in values.get("ranking", [])}


def test_a_tie_suggestion_where_ties_are_not_allowed_asks_to_choose_in_letters(browser, live_server):
    """The judge's tie is not pre-filled into a dataset without ties (it could not be submitted):
    the page says the judge found the two equal and asks for a choice; the rationale names the
    letters on the cards (this annotator's shuffled order), its text escaped."""
    from playwright.sync_api import expect

    items = demo_records(PAIRS[:2])
    items[0]["priority"] = 5.0  # contentious records come first
    ds = _dataset("No ties", items, 2, allow_ties=False, shuffle=True)
    first = Record.objects.get(dataset=ds, external_id=PAIRS[0]["id"])
    suggestions_upsert(dataset=ds, items=[{
        "record": first.pk, "question": "ranking", "agent": "judge-eq", "score": 0.5,
        "value": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 1}],
        "rationale": "response-1 and response-2 are equally good <b>really</b>"}])
    page = _login(browser, live_server.url)
    assert _open(page, live_server.url, ds) == first.pk
    expect(page.locator("[data-suggestion-note]")).to_contain_text("The judge found Response A and Response B equal")
    expect(page.locator("[data-suggestion-note]")).to_contain_text("choose one")
    expect(page.locator('input[name="rank__ranking__response-1"]')).to_have_value("")
    expect(page.locator('input[name="rank__ranking__response-2"]')).to_have_value("")
    expect(page.locator(".annotate-side")).not_to_contain_text("pre-filled by a judge")
    # the rationale speaks of the letters shown on this annotator's cards
    letter = {c.get_attribute("data-field"): c.get_attribute("data-slot")
              for c in page.locator(".response-card").all()}
    assert sorted(letter.values()) == ["A", "B"]
    page.click("details.suggestion > summary")
    rationale = page.inner_text("details.suggestion .md")
    assert rationale == (f"Response {letter['response-1']} and Response {letter['response-2']} "
                         "are equally good <b>really</b>")
    assert "response-1" not in rationale
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.screenshot(path=str(SHOTS / "annotate-tie-suggestion-1280x800.png"))

    # Enter before choosing says what is missing; choosing then Enter submits
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Enter")
    expect(page.locator(f"#qerr-{first.pk}-ranking")).to_contain_text("required")
    page.locator(".response-card").first.focus()
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(page.locator("#annotate-form")).not_to_have_attribute("data-record", str(first.pk))
    answer = Response.objects.get(record=first, user__username="dana")
    assert answer.status == "submitted" and sorted(_ranks(first.pk).values()) == [1, 2]
    assert not page.js_errors, page.js_errors


def test_a_draft_keeps_a_partial_ranking_across_a_reload(browser, live_server):
    from playwright.sync_api import expect

    ds = _dataset("Three", demo_records(TRIPLES[:1]), 3)
    page = _login(browser, live_server.url)
    record = _open(page, live_server.url, ds)
    page.locator('.response-card[data-field="response-2"]').focus()
    page.keyboard.press("1")          # one of three ranked
    page.keyboard.press("Control+s")
    expect(page.locator("#save-state")).to_contain_text("Draft saved", timeout=5_000)
    assert _ranks(record) == {"response-2": 1}
    page.reload()
    page.wait_for_selector("#annotate-form")
    expect(page.locator('input[name="rank__ranking__response-2"]')).to_have_value("1")
    expect(page.locator('input[name="rank__ranking__response-1"]')).to_have_value("")
    expect(page.locator('input[name="rank__ranking__response-3"]')).to_have_value("")
    expect(page.locator('.response-card[data-field="response-2"]')).to_have_attribute("data-rank", "1")
    expect(page.locator(".annotate-side .panel").first).to_contain_text("draft restored")
    # a submit still needs the whole ranking
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Enter")
    expect(page.locator(f"#qerr-{record}-ranking")).to_contain_text("missing from the ranking")
    assert Response.objects.get(record_id=record).status == "draft"
    assert not page.js_errors, page.js_errors


def test_progress_undo_of_a_discard_and_back_to_the_record_just_done(browser, live_server):
    from playwright.sync_api import expect

    ds = _dataset("Progress", demo_records(PAIRS[:3]), 2)
    base = live_server.url
    page = _login(browser, base)
    first = _open(page, base, ds)
    progress = page.locator("[data-progress]")
    expect(progress.locator('[data-mine="submitted"]')).to_have_text("0")
    expect(progress.locator('[data-mine="left"]')).to_have_text("3")
    expect(progress.locator("[data-dataset-completion]")).to_have_text("0%")

    page.keyboard.press("2")          # A = 2, so B = 1
    page.keyboard.press("Enter")
    expect(page.locator("#annotate-form")).not_to_have_attribute("data-record", str(first))
    second = int(page.get_attribute("#annotate-form", "data-record"))
    expect(progress.locator('[data-mine="submitted"]')).to_have_text("1")
    expect(progress.locator('[data-mine="left"]')).to_have_text("2")
    expect(progress.locator("[data-dataset-completion]")).to_have_text("33%")

    # Backspace discards, the notice offers to undo it for a few seconds: the record and the answer
    # entered come back
    page.keyboard.press("1")          # A = 1, B = 2
    page.wait_for_timeout(100)
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Backspace")
    expect(page.locator("#annotate-form")).not_to_have_attribute("data-record", str(second))
    toast = page.locator("[data-toast]")
    expect(toast).to_contain_text("Discarded")
    expect(toast.locator("[data-undo]")).to_be_visible()
    assert Response.objects.get(record_id=second).status == "discarded"
    expect(progress.locator('[data-mine="left"]')).to_have_text("1")
    page.keyboard.press("Control+z")
    expect(page.locator("#annotate-form")).to_have_attribute("data-record", str(second))
    expect(page.locator("[data-toast]")).to_contain_text("Discard undone")
    expect(page.locator('input[name="rank__ranking__response-1"]')).to_have_value("1")
    expect(page.locator('input[name="rank__ranking__response-2"]')).to_have_value("2")
    assert Response.objects.get(record_id=second).status == "draft"
    assert _ranks(second) == {"response-1": 1, "response-2": 2}
    expect(progress.locator('[data-mine="left"]')).to_have_text("2")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Enter")
    expect(page.locator("#annotate-form")).not_to_have_attribute("data-record", str(second))
    assert Response.objects.get(record_id=second).status == "submitted"
    third = int(page.get_attribute("#annotate-form", "data-record"))

    # the undo is offered for a few seconds only: once the notice is gone, Ctrl+Z does nothing
    page.keyboard.press("Backspace")
    page.wait_for_selector("[data-all-done]")
    expect(page.locator("[data-toast]")).to_have_class(re.compile("toast-hide"), timeout=9_000)
    page.keyboard.press("Control+z")
    page.wait_for_timeout(300)
    expect(page.locator("[data-all-done]")).to_be_visible()
    assert Response.objects.get(record_id=third).status == "discarded"

    # the browser's Back shows the records just answered, to change them
    page.go_back()
    page.wait_for_url(re.compile(rf"/datasets/{ds.pk}/history/{third}/$"))
    expect(page.locator("h1")).to_have_text("Edit your answer")
    expect(page.locator("#annotate-form")).to_have_attribute("data-record", str(third))
    page.go_back()
    page.wait_for_url(re.compile(rf"/datasets/{ds.pk}/history/{second}/$"))
    expect(page.locator("#annotate-form")).to_have_attribute("data-record", str(second))
    expect(page.locator('input[name="rank__ranking__response-1"]')).to_have_value("1")
    expect(page.locator('input[name="rank__ranking__response-2"]')).to_have_value("2")
    page.go_forward()
    page.wait_for_url(re.compile(rf"/datasets/{ds.pk}/history/{third}/$"))
    expect(page.locator("#annotate-form")).to_have_attribute("data-record", str(third))
    assert not page.js_errors, page.js_errors


def test_submit_in_view_enter_after_a_toggle_ctrl_enter_and_screenshots(browser, live_server):
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    ds = _dataset("Day", demo_records(TRIPLES[:3]), 3, extra=("comment",))
    for rec in Record.objects.filter(dataset=ds):  # the heaviest panel: a judge's suggestion on every record
        suggestions_upsert(dataset=ds, items=[{
            "record": rec.pk, "question": "ranking", "agent": "judge-1", "score": 0.9,
            "value": ["response-1", "response-2", "response-3"], "rationale": "response-1 is correct."}])
    base = live_server.url
    page = _login(browser, base, (1280, 800))
    first = _open(page, base, ds)
    expect(page.locator(".annotate-side")).to_contain_text("pre-filled by a judge")
    # the guidelines are open, and Submit is on screen without scrolling
    assert page.evaluate("document.querySelector('details.guidelines').open") is True
    assert page.evaluate("window.scrollY") == 0
    box = page.locator('button[data-action="submit"]').bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 800, box
    page.mouse.move(0, 0)
    page.screenshot(path=str(SHOTS / "annotate-1280x800.png"))
    page.click(".shortcuts > summary")
    expect(page.locator(".shortcuts dl")).to_contain_text("submit, even while typing")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("1")
    page.keyboard.press("2")

    # a click on a panel toggle leaves focus there: Enter still submits
    page.click("details.guidelines > summary")
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.keyboard.press("Enter")
    expect(page.locator("#annotate-form")).not_to_have_attribute("data-record", str(first))
    assert Response.objects.get(record_id=first).status == "submitted"
    assert _ranks(first) == {"response-1": 1, "response-2": 2, "response-3": 3}
    # the guidelines stayed as the click left them (closed) across the swap; Space on the toggle opens them
    assert page.evaluate("document.querySelector('details.guidelines').open") is False
    page.focus("details.guidelines > summary")
    page.keyboard.press(" ")
    assert page.evaluate("document.querySelector('details.guidelines').open") is True

    # Ctrl+Enter submits while typing a comment
    second = int(page.get_attribute("#annotate-form", "data-record"))
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("3")          # A = 3
    page.keyboard.press("1")          # B = 1, C takes 2
    page.fill('textarea[name="q__comment"]', "B reads best")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#annotate-form")).not_to_have_attribute("data-record", str(second))
    answer = Response.objects.get(record_id=second)
    assert answer.status == "submitted" and answer.values["comment"] == "B reads best"

    phone = _login(browser, base, (390, 844))
    _open(phone, base, ds)
    phone.screenshot(path=str(SHOTS / "annotate-390x844.png"))
    phone.screenshot(path=str(SHOTS / "annotate-390x844-full.png"), full_page=True)
    assert not page.js_errors and not phone.js_errors, (page.js_errors, phone.js_errors)
