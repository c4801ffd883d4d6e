"""An admin's day in a real browser (Debian's Chromium driven by Playwright).

The cleaning page: each flip of an imported preference set with its prompt and both answers
(collapsed), the judge's rationale and a link to the record; accept, reject and undo a flip
without a page load; download the cleaned set with the decisions applied. The dashboard: why
agreement is empty, fields named by their titles, archive (with a confirmation), delete (typing
the name). The account page (see and rotate the API token), simulated annotators and members.
Record and judge text carrying <script> and <img onerror> never runs. Screenshots of the cleaning
page and the dashboard go to var/screenshots/.
"""
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from annotation.models import Dataset, Membership, Record
from annotation.services import (
    dataset_create,
    dataset_publish,
    member_upsert,
    pairwise_dataset_spec,
    records_upsert,
    response_upsert,
    workspace_create,
)
from annotation.validation import field_specs_of, record_validate
from judging.models import FlipDecision, SimulatedAnnotator
from judging.services import judge_create
from tests.judging.helpers_cleaning import imported_with_flips

SHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def office():
    ws = workspace_create(name="Admin day")
    member_upsert(workspace=ws, username="boss", role=Membership.Role.ADMIN, password="boss-pass-1")
    member_upsert(workspace=ws, username="anna", role=Membership.Role.ANNOTATOR, password="anna-pass-1")
    member_upsert(workspace=ws, username="ben", role=Membership.Role.ANNOTATOR, password="ben-pass-12")
    return ws


def _login(browser, base, username, password):
    """A logged-in page that accepts confirmation dialogs (hx-confirm) and records every dialog."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True).new_page()
    page.dialogs = []
    page.errors = []
    page.on("dialog", lambda d: page.dialogs.append((d.type, d.message)) or
            (d.accept() if d.type == "confirm" else d.dismiss()))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def _nothing_ran(page):
    assert page.evaluate("window.__pwned") is None
    assert not [d for d in page.dialogs if d[0] != "confirm"], page.dialogs
    assert not page.errors, page.errors


def test_cleaning_page_review_decide_and_download(browser, live_server, office):
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    ds = imported_with_flips(office, n=5, flipped=("k0", "k1", "k3"))
    k0, k1, k3 = (Record.objects.get(dataset=ds, external_id=e) for e in ("k0", "k1", "k3"))
    base = live_server.url
    page = _login(browser, base, "boss", "boss-pass-1")
    page.goto(f"{base}/datasets/{ds.pk}/")
    page.click("text=Judge flips (cleaning)")
    page.wait_for_selector("#flips")
    assert page.locator("#flips tbody tr").count() == 3
    row = page.locator(f"#flip-{k0.pk}")
    # collapsed: the full answers show once opened, as text
    chosen = row.locator('details[data-side="chosen"]')
    expect(chosen.locator(".plain")).to_be_hidden()
    expect(chosen.locator("summary")).to_contain_text("Originally chosen (Response ")
    chosen.locator("summary").click()
    expect(chosen.locator(".plain")).to_be_visible()
    expect(chosen.locator(".plain")).to_contain_text('GOOD 0 <script>window.__pwned = "script"</script>')
    row.locator('details[data-side="preferred"] summary').click()
    expect(row.locator('details[data-side="preferred"] .plain')).to_have_text("BAD 0")
    row.locator("details[data-rationale] summary").click()
    expect(row.locator("details[data-rationale] .plain")).to_contain_text("Because k0 <script>")
    expect(row.locator(f'a[href="/datasets/{ds.pk}/records/{k0.pk}/"]')).to_be_visible()
    _nothing_ran(page)

    # decide without a page load (htmx swaps the row): accept k0 and k3, reject k1, then undo k1
    page.evaluate("window.__marker = 7")
    row.locator("text=Accept flip").click()
    expect(page.locator(f"#flip-{k0.pk}")).to_have_attribute("data-decision", "accepted")
    expect(page.locator(f"#flip-{k0.pk}")).to_contain_text("flip accepted: swapped")
    page.locator(f"#flip-{k3.pk} >> text=Accept flip").click()
    expect(page.locator(f"#flip-{k3.pk}")).to_have_attribute("data-decision", "accepted")
    page.locator(f"#flip-{k1.pk} >> text=Reject flip").click()
    expect(page.locator(f"#flip-{k1.pk}")).to_contain_text("flip rejected: original kept")
    page.locator(f"#flip-{k1.pk} >> text=Undo").click()
    expect(page.locator(f"#flip-{k1.pk}")).to_have_attribute("data-decision", "undecided")
    page.locator(f"#flip-{k1.pk} >> text=Reject flip").click()
    expect(page.locator(f"#flip-{k1.pk}")).to_have_attribute("data-decision", "rejected")
    assert page.evaluate("window.__marker") == 7
    assert dict(FlipDecision.objects.values_list("record__external_id", "decision")) == {
        "k0": "accepted", "k1": "rejected", "k3": "accepted"}
    _nothing_ran(page)

    # decisions are kept: a reload shows them
    page.reload()
    expect(page.locator(f"#flip-{k0.pk}")).to_have_attribute("data-decision", "accepted")
    expect(page.locator('[data-decided="accepted"]')).to_have_text("2")
    page.locator(f"#flip-{k0.pk} details").first.locator("summary").click()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / "cleaning.png"), full_page=True)

    # the cleaned set: accepted flips swapped, the rest as imported
    with page.expect_download() as info:
        page.locator("#cleaned-exports a").first.click()
    download = info.value
    assert download.suggested_filename.endswith("-cleaned.jsonl")
    rows = {r["external_id"]: r for r in map(json.loads, Path(download.path()).read_text().splitlines())}
    assert sorted(rows) == ["k0", "k1", "k2", "k3", "k4"]
    assert rows["k0"]["chosen"] == "BAD 0" and rows["k0"]["rejected"].startswith("GOOD 0") and rows["k0"]["flipped"]
    assert rows["k3"]["chosen"] == "BAD 3" and rows["k1"]["chosen"].startswith("GOOD 1")
    assert rows["k2"]["chosen"].startswith("GOOD 2") and not rows["k2"]["flipped"]

    # the record link opens the record
    page.locator(f'#flip-{k0.pk} a[href="/datasets/{ds.pk}/records/{k0.pk}/"]').click()
    page.wait_for_url(f"{base}/datasets/{ds.pk}/records/{k0.pk}/")
    _nothing_ran(page)


def test_dashboard_hint_titles_archive_and_delete(browser, live_server, office):
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    User = get_user_model()
    boss, anna, ben = (User.objects.get(username=u) for u in ("boss", "anna", "ben"))
    fields, questions = pairwise_dataset_spec(responses=2)
    solo = dataset_create(workspace=office, name="Solo", fields=fields, questions=questions, created_by=boss)
    duo = dataset_create(workspace=office, name="Duo <b>bold</b>", fields=fields, questions=questions,
                         created_by=boss, min_submitted=2)
    for ds in (solo, duo):
        specs = field_specs_of(ds)
        records_upsert(dataset=ds, rows=[record_validate({"external_id": f"r{i}", "fields": {
            "prompt": f"Prompt {i}", "response-1": f"A{i}", "response-2": f"B{i}"}}, specs) for i in range(3)])
        dataset_publish(dataset=ds)
    rec = Record.objects.get(dataset=duo, external_id="r0")
    response_upsert(user=anna, record=rec, values={"ranking": ["response-1", "response-2"]}, status="submitted")
    response_upsert(user=ben, record=rec, values={"ranking": ["response-2", "response-1"]}, status="submitted")

    base = live_server.url
    page = _login(browser, base, "boss", "boss-pass-1")
    page.goto(f"{base}/datasets/{solo.pk}/")
    expect(page.locator('[data-stat="agreement"]')).to_have_text("–")
    expect(page.locator('[data-hint="agreement"]')).to_contain_text("the overlap is 1")
    expect(page.locator('[data-hint="agreement"]')).to_be_visible()
    page.screenshot(path=str(SHOTS / "dashboard-empty-agreement.png"))
    # the hint leads to the page where the overlap is set
    page.click('[data-hint="agreement"] >> text=Change the overlap')
    page.fill("#id_min_submitted", "2")
    page.click("#settings-form button[type=submit]")
    expect(page.locator('[data-hint="agreement"]')).to_contain_text("needs records ranked by two annotators (overlap 2)")
    assert Dataset.objects.get(pk=solo.pk).min_submitted == 2

    page.goto(f"{base}/datasets/{duo.pk}/")
    expect(page.locator("h1")).to_contain_text("Duo <b>bold</b>")  # the name as text
    expect(page.locator('[data-stat="agreement"]')).to_have_text("0%")
    expect(page.locator('[data-hint="agreement"]')).to_have_count(0)
    table = page.locator(".card", has_text="Where annotators disagree")
    expect(table).to_contain_text("Response 1 × 1")
    expect(table).to_contain_text("Response 2 × 1")
    expect(table).not_to_contain_text("response-1")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / "dashboard-admin.png"), full_page=True)

    # archive: a confirmation, then the badge says so and annotators no longer get it
    page.click("button[value=archive]")
    expect(page.locator("h1 .badge")).to_have_text("archived")
    assert any("Archive “Duo <b>bold</b>”?" in m for t, m in page.dialogs if t == "confirm")
    assert Dataset.objects.get(pk=duo.pk).status == "archived"

    # delete: a page that counts what goes and wants the name typed
    page.click("text=Delete…")
    expect(page.locator('[data-count="records"]')).to_have_text("3")
    expect(page.locator('[data-count="responses"]')).to_have_text("2")
    page.fill("#confirm-name", "Duo")
    page.click("text=Delete this dataset")
    expect(page.locator(".form-errors")).to_contain_text("nothing was deleted")
    assert Dataset.objects.filter(pk=duo.pk).exists()
    page.fill("#confirm-name", "Duo <b>bold</b>")
    page.click("text=Delete this dataset")
    page.wait_for_url(f"{base}/datasets/")
    expect(page.locator(".flash")).to_contain_text("deleted with its 3 records and 2 answers")
    assert not Dataset.objects.filter(pk=duo.pk).exists() and not Record.objects.filter(dataset_id=duo.pk).exists()
    expect(page.locator("table")).to_contain_text("Solo")
    _nothing_ran(page)


def test_account_token_simulated_annotators_and_members(browser, live_server, office):
    from playwright.sync_api import expect
    from rest_framework.authtoken.models import Token

    from generation.models import Endpoint

    ep = Endpoint.objects.create(workspace=office, name="ep", base_url="http://127.0.0.1:9/v1", model="m")
    judge_create(workspace=office, name="uf", endpoint=ep)
    base = live_server.url
    page = _login(browser, base, "boss", "boss-pass-1")

    # the API token: from the user name in the top bar; rotating it (after a confirmation) replaces it
    page.click(".topbar-user >> text=boss")
    old = page.input_value("#token-key")
    assert old == Token.objects.get(user__username="boss").key
    page.click("#rotate-token")
    expect(page.locator(".flash")).to_contain_text("the old one no longer works")
    new = page.input_value("#token-key")
    assert new != old and new == Token.objects.get(user__username="boss").key

    # simulated annotators: create, then change the noise
    page.goto(f"{base}/evaluation/")
    page.click("text=Simulated annotators")
    page.fill("#id_name", "noisy")
    page.select_option("#id_judge", label="uf")
    page.fill("#id_flip_probability", "0.25")
    page.click("#simulated-create button[type=submit]")
    expect(page.locator('[data-annotator="noisy"]')).to_be_visible()
    page.fill('[aria-label="Flip probability of noisy"]', "0.4")
    page.locator('[data-annotator="noisy"] >> text=Save').click()
    expect(page.locator(".flash")).to_contain_text("p = 0.4")
    assert SimulatedAnnotator.objects.get(name="noisy").flip_probability == 0.4

    # members: make anna an admin with the role menu; the last admin cannot demote themself
    page.click("nav >> text=Members")
    page.select_option('[aria-label="Role of anna"]', "admin")
    expect(page.locator(".flash")).to_contain_text("anna updated as admin")
    assert Membership.objects.get(user__username="anna", workspace=office).role == "admin"
    page.select_option('[aria-label="Role of anna"]', "annotator")
    expect(page.locator(".flash")).to_contain_text("anna updated as annotator")
    page.select_option('[aria-label="Role of boss"]', "annotator")
    expect(page.locator("body")).to_contain_text("is the only admin of Admin day")
    assert Membership.objects.get(user__username="boss", workspace=office).role == "admin"
    _nothing_ran(page)
