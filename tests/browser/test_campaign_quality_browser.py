"""A campaign's quality loop end to end in a real browser (Debian's Chromium driven by Playwright).

An annotator answers in the browser and gets the gold (check) records wrong, which they cannot tell
apart from the others; once they have answered the dataset's minimum number of gold records below its
threshold they are paused with the reason on the page and nothing they submitted is lost. The admin
finds them paused on the quality page. A reviewer opens a record that the paused annotator and a
careful one disagreed on, sets their own verdict, and the triplet export then carries that verdict
(reviewed, reviewed_by) instead of the split vote, with the gold records left out. Screenshots go to
var/screenshots/.
"""
import json
import re
from pathlib import Path

import pytest
from django.conf import settings

from annotation.models import Membership, Record, Response
from annotation.quality.gold import records_gold_set
from annotation.quality.standing import annotator_paused
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
from tests.conftest import client_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
R1, R2 = "response-1", "response-2"
QUESTIONS = [  # (prompt, the right answer, a wrong one)
    ("What is the boiling point of water at sea level?", "100 °C.", "50 °C."),
    ("How many legs does a spider have?", "Eight.", "Six."),
    ("Which planet is closest to the Sun?", "Mercury.", "Venus."),
    ("What is 7 x 8?", "56.", "54."),
    ("Which gas do plants take in for photosynthesis?", "Carbon dioxide.", "Oxygen."),
    ("What is the capital of Canada?", "Ottawa.", "Toronto."),
    ("How many minutes are in an hour?", "60.", "100."),
    ("What is the chemical symbol of gold?", "Au.", "Ag."),
]
GOLD = {"q5", "q6", "q7", "q8"}


def ranking(*order):
    return [{"value": name, "rank": k} for k, name in enumerate(order, start=1)]


@pytest.fixture
def campaign():
    ws = workspace_create(name="Quality loop")
    for name, role in (("ada", Membership.Role.ADMIN), ("bo", Membership.Role.ANNOTATOR),
                       ("cy", Membership.Role.ANNOTATOR), ("rita", Membership.Role.REVIEWER)):
        member_upsert(workspace=ws, username=name, role=role, password=f"{name}-pass-12")
    fields, questions = pairwise_dataset_spec(responses=2)
    ds = dataset_create(workspace=ws, name="Facts", fields=fields, questions=questions, min_submitted=2,
                        allow_ties=False, shuffle_responses=False, show_suggestions=False,
                        gold_rate=0.5, gold_pause_accuracy=0.75, gold_pause_min_answers=2)
    rows = [{"external_id": f"q{i}", "fields": {"prompt": prompt, R1: right, R2: wrong}}
            for i, (prompt, right, wrong) in enumerate(QUESTIONS, start=1)]
    specs = field_specs_of(ds)
    records_upsert(dataset=ds, rows=[record_validate(r, specs) for r in rows])
    records_gold_set(dataset=ds, answers={pk: {"ranking": ranking(R1, R2)} for pk in
                                          Record.objects.filter(dataset=ds, external_id__in=GOLD).values_list("pk", flat=True)})
    dataset_publish(dataset=ds)
    return ds


def _login(browser, base, name):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{base}/login/")
    page.fill("#id_username", name)
    page.fill("#id_password", f"{name}-pass-12")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def test_a_careless_annotator_is_paused_and_a_reviewed_verdict_reaches_the_export(browser, live_server, campaign):
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    base, ds = live_server.url, campaign
    cy = Membership.objects.get(workspace=ds.workspace, user__username="cy").user

    # bo answers in the browser, always preferring the second (wrong) response
    bo = _login(browser, base, "bo")
    bo.goto(f"{base}/datasets/{ds.pk}/annotate/")
    answered = []
    for _ in range(len(QUESTIONS)):
        bo.wait_for_selector("#annotate-form, [data-paused]")
        if bo.locator("[data-paused]").count():
            break
        record_id = int(bo.get_attribute("#annotate-form", "data-record"))
        form_html = bo.inner_html("#annotate-form")
        assert "gold" not in form_html.lower()                             # nothing tells a gold record apart
        bo.locator("body").click(position={"x": 5, "y": 300})
        bo.keyboard.press("2")                                            # response A is second: B is best
        expect(bo.locator(f'input[name="rank__ranking__{R2}"]')).to_have_value("1")
        bo.keyboard.press("Enter")
        bo.wait_for_selector(f'#annotate-form[data-record="{record_id}"]', state="detached")
        answered.append(record_id)
    expect(bo.locator("[data-paused]")).to_contain_text("You are paused on this dataset")
    expect(bo.locator("[data-paused]")).to_contain_text("0 of 2")
    bo.screenshot(path=str(SHOTS / "annotate-paused.png"), full_page=True)
    golds_answered = Record.objects.filter(pk__in=answered, is_gold=True).count()
    assert golds_answered == 2 and 3 <= len(answered) <= 4               # the rate: one gold in every two
    assert Response.objects.filter(user__username="bo", status="submitted").count() == len(answered)  # nothing lost
    assert annotator_paused(dataset=ds, user=Membership.objects.get(user__username="bo").user)

    # cy answers every record correctly through the same services the API uses
    while (record := next_record_for(cy, ds)) is not None:
        record.dataset = ds
        response_upsert(user=cy, record=record, values={"ranking": ranking(R1, R2)}, status="submitted")
    disputed = Record.objects.filter(pk__in=answered, is_gold=False).order_by("pk").first()

    # the admin sees bo paused on the quality page
    ada = _login(browser, base, "ada")
    ada.goto(f"{base}/datasets/{ds.pk}/quality/")
    expect(ada.locator('[data-annotator="bo"] [data-state="paused"]')).to_be_visible()
    expect(ada.locator('[data-annotator="bo"] [data-col="gold"]')).to_contain_text("0 / 2")
    expect(ada.locator('[data-annotator="cy"] [data-state="active"]')).to_be_visible()
    ada.screenshot(path=str(SHOTS / "quality-paused.png"), full_page=True)

    # rita settles the disputed record from the review queue with her own verdict
    rita = _login(browser, base, "rita")
    rita.goto(f"{base}/datasets/{ds.pk}/review/")
    rita.click(f'a[href="/datasets/{ds.pk}/review/{disputed.pk}/"]')
    rita.wait_for_url(re.compile(rf".*/review/{disputed.pk}/$"))
    expect(rita.locator("[data-answers]")).to_contain_text("bo")
    expect(rita.locator("[data-answers]")).to_contain_text("cy")
    rita.select_option(f"select[name='rank__ranking__{R1}']", "1")
    rita.select_option(f"select[name='rank__ranking__{R2}']", "2")
    rita.click("[data-action=own]")
    rita.wait_for_url(lambda url: f"/review/{disputed.pk}/" not in url)
    expect(rita.locator(".flash-stack")).to_contain_text("Your verdict is saved")

    # the export: the reviewed verdict instead of the 1-1 split, gold left out
    resp = client_for(Membership.objects.get(user__username="ada").user).get(
        f"/api/v1/datasets/{ds.pk}/triplets/?format=jsonl&pairs=all")
    assert resp.status_code == 200
    rows = [json.loads(line) for line in b"".join(resp.streaming_content).splitlines()]
    by_id = {row["external_id"]: row for row in rows}
    assert not GOLD & set(by_id)
    row = by_id[disputed.external_id]
    assert (row["reviewed"], row["reviewed_by"]) == (True, "rita")
    assert row["chosen"] == disputed.fields[R1] and row["rejected"] == disputed.fields[R2]
    assert all(r["reviewed"] is False and r["reviewed_by"] is None for r in rows if r["external_id"] != disputed.external_id)
