"""A graded preference in a real browser (Debian's Chromium driven by Playwright), on a desktop
(1280x800) and a phone-sized (390x844) window: an annotator answers with the keyboard only (a digit
picks the side and the strength, 0 says both are bad, Enter submits), the next record arrives by an
htmx swap, and the export written over the admin's session carries the strength as `margin` when
asked and leaves the both-bad record out unless asked. Screenshots of the annotate page go to
var/screenshots/.
"""
from pathlib import Path

import orjson
import pytest
from django.conf import settings

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
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
XSS = '<img src=x onerror="window.__pwned = 1">'


@pytest.fixture
def graded():
    ws = workspace_create(name="Graded")
    member_upsert(workspace=ws, username="boss", role=Membership.Role.ADMIN, password="boss-pass-1")
    member_upsert(workspace=ws, username="gina", role=Membership.Role.ANNOTATOR, password="gina-pass-1")
    from django.contrib.auth import get_user_model

    fields, questions = pairwise_dataset_spec(responses=2, graded=True)
    ds = dataset_create(workspace=ws, name="Graded pairs", fields=fields, questions=questions,
                        created_by=get_user_model().objects.get(username="boss"),
                        guidelines="Pick the **more helpful** answer, and say by how much.",
                        min_submitted=1, allow_ties=False, shuffle_responses=False, show_suggestions=False)
    rows = [
        {"external_id": "tea", "priority": 2.0, "fields": {
            "prompt": "How long should green tea steep?",
            "response-1": "Boil the leaves for ten minutes so that all the flavour comes out.",
            "response-2": "Two to three minutes at 75-80 °C; longer makes it bitter."}},
        {"external_id": "capital", "priority": 1.0, "fields": {
            "prompt": "What is the capital of Australia? " + XSS,
            "response-1": "Sydney.", "response-2": "Melbourne."}},
    ]
    specs = field_specs_of(ds)
    records_upsert(dataset=ds, rows=[record_validate(r, specs) for r in rows])
    dataset_publish(dataset=ds)
    return ds


def _login(context, base, username, password):
    page = context.new_page()
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def _jsonl(context, url) -> list[dict]:
    resp = context.request.get(url)
    assert resp.status == 200, resp.text()
    return [orjson.loads(line) for line in resp.body().splitlines()]


@pytest.mark.parametrize("screen", list(VIEWPORTS))
def test_annotator_answers_a_graded_question_with_the_keyboard(browser, live_server, graded, screen):
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    tea, capital = (Record.objects.get(dataset=graded, external_id=x) for x in ("tea", "capital"))

    ctx = browser.new_context(viewport=VIEWPORTS[screen])
    page = _login(ctx, base, "gina", "gina-pass-1")
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/datasets/{graded.pk}/annotate/")
    page.wait_for_selector(f'#annotate-form[data-record="{tea.pk}"]')
    question = page.locator('.question[data-kind="preference"]')
    expect(question).to_contain_text("keys 1–8 from Response A to Response B")
    expect(question.locator('[data-key="8"]')).to_contain_text("much better")
    expect(question.locator('[data-key="0"]')).to_contain_text("Both are bad")

    # Enter with nothing chosen: the page says what is missing and nothing is submitted
    page.locator("body").click(position={"x": 2, "y": 2})
    page.keyboard.press("Enter")
    expect(question.locator(".q-error")).to_contain_text("required to submit")
    expect(page.locator("#annotate-form .form-errors")).to_contain_text("fix the answers")
    assert not Response.objects.filter(record=tea, status="submitted").exists()

    # 7 = Response B "better" (strength 2); 3 then 7: the last key wins
    page.keyboard.press("3")
    expect(question.locator('[data-key="3"] input')).to_be_checked()
    page.keyboard.press("7")
    expect(question.locator('[data-key="7"] input')).to_be_checked()
    expect(question.locator('[data-key="3"] input')).not_to_be_checked()
    expect(question.locator(".q-error")).to_have_text("")
    expect(page.locator("#annotate-form .form-errors")).to_have_text("")  # nothing left to fix
    # the choice is auto-saved as a draft (the key fires the change event the auto-save listens for)
    expect(page.locator("#save-state")).to_contain_text("Draft saved", timeout=5_000)
    draft = Response.objects.get(record=tea, user__username="gina")
    assert draft.status == "draft" and draft.values == {"preference": {"preferred": "response-2", "strength": 2}}
    page.mouse.move(0, 0)
    page.screenshot(path=str(SHOTS / f"graded-{screen}.png"), full_page=True)
    page.keyboard.press("Enter")

    # the next record comes by an htmx swap; its record text never runs as HTML
    page.wait_for_selector(f'#annotate-form[data-record="{capital.pk}"]')
    assert page.evaluate("window.__pwned") is None
    # 0 toggles "both are bad" (on, off, on); 2 = Response A "better" as well
    page.keyboard.press("0")
    page.keyboard.press("0")
    expect(question.locator('[data-key="0"] input')).not_to_be_checked()
    page.keyboard.press("0")
    page.keyboard.press("2")
    expect(question.locator('[data-key="0"] input')).to_be_checked()
    expect(question.locator('[data-key="2"] input')).to_be_checked()
    page.mouse.move(0, 0)
    page.screenshot(path=str(SHOTS / f"graded-both-bad-{screen}.png"), full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-all-done]")
    assert not errors, errors

    assert Response.objects.get(record=tea).values == {"preference": {"preferred": "response-2", "strength": 2}}
    assert Response.objects.get(record=capital).values == {
        "preference": {"preferred": "response-1", "strength": 2, "both_bad": True}}

    # the admin: the dashboard counts the both-bad record; the export carries the strength when asked
    admin_ctx = browser.new_context(viewport=VIEWPORTS[screen])
    boss = _login(admin_ctx, base, "boss", "boss-pass-1")
    boss.goto(f"{base}/datasets/{graded.pk}/")
    expect(boss.locator('[data-stat="both-bad"]')).to_have_text("both bad: 1 record")
    api = f"{base}/api/v1/datasets/{graded.pk}/triplets/?format=jsonl"
    [row] = _jsonl(admin_ctx, api)
    assert (row["external_id"], row["chosen"], row["vote_margin"]) == ("tea", tea.fields["response-2"], 1.0)
    [row] = _jsonl(admin_ctx, api + "&margin_from=strength")
    assert (row["external_id"], row["chosen_field"], row["rejected_field"], row["strength_margin"]) == (
        "tea", "response-2", "response-1", 2.0)
    rows = _jsonl(admin_ctx, api + "&margin_from=strength&include_both_bad=true")
    assert [(r["external_id"], r["chosen_field"], r["strength_margin"]) for r in rows] == [
        ("tea", "response-2", 2.0), ("capital", "response-1", 2.0)]
    ctx.close()
    admin_ctx.close()
