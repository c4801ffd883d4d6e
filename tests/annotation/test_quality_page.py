"""The quality page and API of a dataset (workspace admins): the figures per annotator, names escaped, the
pause / exclude buttons and the standing API, the dashboard's summary, and query counts that stay flat."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import AnnotatorStanding, Membership, Suggestion
from annotation.quality.gold import records_gold_set
from annotation.quality.standing import annotator_paused, excluded_user_ids
from tests.conftest import client_for
from tests.factories import (
    DatasetFactory,
    MembershipFactory,
    RecordFactory,
    ResponseFactory,
    SuggestionFactory,
    UserFactory,
    WorkspaceFactory,
)
from tests.helpers import login

pytestmark = pytest.mark.django_db

R1, R2 = "response-1", "response-2"
FIRST = {"ranking": [{"value": R1, "rank": 1}, {"value": R2, "rank": 2}]}
SECOND = {"ranking": [{"value": R2, "rank": 1}, {"value": R1, "rank": 2}]}
EVIL = '<script>alert("x")</script>'


def _member(workspace, username, **flags):
    user = UserFactory(username=username)
    MembershipFactory(user=user, workspace=workspace, **flags)
    return user


@pytest.fixture
def campaign(workspace, annotator):
    """Two annotators (one with a hostile name) on 4 gold records and 2 ordinary ones, a 5 s too-fast threshold,
    the pause policy at 50% after 4 gold answers, half the assignments shown the judge's suggestion."""
    ds = DatasetFactory(workspace=workspace, min_submitted=2, too_fast_seconds=5, gold_pause_accuracy=0.5,
                        gold_pause_min_answers=4, suggestion_share=0.5, name="Campaign")
    evil = _member(workspace, EVIL, is_simulated=True)
    golds = [RecordFactory(dataset=ds) for _ in range(4)]
    records_gold_set(dataset=ds, answers={r.pk: FIRST for r in golds})
    for i, record in enumerate(golds):
        ResponseFactory(record=record, user=annotator, values=FIRST, duration=20)                 # 4 of 4
        ResponseFactory(record=record, user=evil, values=FIRST if i == 0 else SECOND, duration=1)  # 1 of 4, 1 s
    question = ds.questions.get(name="ranking")
    for record in (RecordFactory(dataset=ds), RecordFactory(dataset=ds)):
        Suggestion.objects.create(record=record, question=question, value=FIRST["ranking"], agent="judge")
        ResponseFactory(record=record, user=annotator, values=FIRST, duration=30, suggestion_shown=True)
        ResponseFactory(record=record, user=evil, values=SECOND, duration=2, suggestion_shown=False)
    return {"dataset": ds, "evil": evil}


def test_the_page_shows_each_annotators_figures_with_names_escaped(campaign, admin_user, annotator):
    ds = campaign["dataset"]
    html = login(admin_user).get(reverse("dataset-quality", args=[ds.pk])).content.decode()
    assert EVIL not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    row = html.split(f'data-annotator="{annotator.username}"')[1].split("</tr>")[0]
    assert "100%" in row and "4 / 4" in row and "Pause" in row and "Exclude from exports" in row
    assert 'data-flag="too-fast"' not in row
    evil_row = html.split('data-annotator="&lt;script&gt;')[1].split("</tr>")[0]
    assert "25%" in evil_row and "1 / 4" in evil_row               # 1 of 4 gold answers right
    assert 'data-flag="below-gold"' in evil_row and 'data-flag="too-fast"' in evil_row
    assert 'data-kind>simulated<' in evil_row
    assert "0%" in evil_row and "over 2 pairs" in evil_row         # disagrees with the only other annotator twice
    # the anchoring table: shown, the annotator agreed with the judge twice; hidden, the other one never did
    judge_row = html.split('data-row="judge"')[1].split("</tr>")[0]
    assert "<strong>100%</strong>" in judge_row and "<strong>0%</strong>" in judge_row and "+100 pts" in judge_row
    assert "How to read the figures" in html


def test_annotators_and_other_workspaces_are_refused(campaign, annotator):
    ds = campaign["dataset"]
    assert login(annotator).get(reverse("dataset-quality", args=[ds.pk])).status_code == 403
    r = login(annotator).post(reverse("dataset-quality-standing", args=[ds.pk, annotator.pk]), {"action": "resume"})
    assert r.status_code == 403 and annotator_paused(dataset=ds, user=annotator) is None
    stranger = _member(WorkspaceFactory(), "stranger", role=Membership.Role.ADMIN)
    assert login(stranger).get(reverse("dataset-quality", args=[ds.pk])).status_code == 404
    assert client_for(annotator).get(f"/api/v1/datasets/{ds.pk}/quality/").status_code == 403
    assert client_for(stranger).get(f"/api/v1/datasets/{ds.pk}/quality/").status_code == 404
    r = client_for(stranger).post(f"/api/v1/datasets/{ds.pk}/annotators/{annotator.pk}/standing/", {"paused": True},
                                  format="json")
    assert r.status_code == 404 and not AnnotatorStanding.objects.exists()


def test_pause_resume_exclude_include_from_the_page(campaign, admin_user, annotator):
    ds = campaign["dataset"]
    c = login(admin_user)
    url = reverse("dataset-quality-standing", args=[ds.pk, annotator.pk])
    # htmx: the standing cell comes back alone, with the opposite button
    r = c.post(url, {"action": "pause"}, HTTP_HX_REQUEST="true")
    cell = r.content.decode()
    assert r.status_code == 200 and "<html" not in cell and 'data-state="paused"' in cell and ">Resume<" in cell
    assert annotator_paused(dataset=ds, user=annotator) == "An admin of this dataset paused you."
    # a plain form post goes back to the page with a message
    r = c.post(url, {"action": "exclude"}, follow=True)
    assert r.redirect_chain[-1][0] == reverse("dataset-quality", args=[ds.pk])
    assert "excluded: exports leave their responses out" in r.content.decode()
    assert annotator.pk in excluded_user_ids(dataset=ds)
    row = r.content.decode().split(f'data-annotator="{annotator.username}"')[1].split("</tr>")[0]
    assert ">Resume<" in row and ">Include<" in row
    c.post(url, {"action": "resume"}, HTTP_HX_REQUEST="true")
    c.post(url, {"action": "include"}, HTTP_HX_REQUEST="true")
    assert annotator_paused(dataset=ds, user=annotator) is None and annotator.pk not in excluded_user_ids(dataset=ds)
    assert c.post(url, {"action": "delete"}).status_code == 400
    nobody = UserFactory(username="nobody")                        # no membership, no answer here
    assert c.post(reverse("dataset-quality-standing", args=[ds.pk, nobody.pk]), {"action": "pause"}).status_code == 404
    assert ds.responses.count() == 12                              # nothing they did is touched


def test_the_api_returns_figures_anchoring_and_settings(campaign, admin_user, annotator):
    ds = campaign["dataset"]
    body = client_for(admin_user).get(f"/api/v1/datasets/{ds.pk}/quality/").json()
    assert body["settings"]["too_fast_seconds"] == 5 and body["settings"]["gold_pause_accuracy"] == 0.5
    rows = {a["username"]: a for a in body["annotators"]}
    a, e = rows[annotator.username], rows[EVIL]
    assert (a["kind"], e["kind"]) == ("human", "simulated")
    assert a["gold"]["correct"] == 4 and a["gold"]["answered"] == 4 and a["gold"]["accuracy"] == 1.0
    assert (e["gold"]["correct"], e["gold"]["answered"], e["below_gold_threshold"]) == (1, 4, True)
    assert (e["median_seconds"], e["too_fast"], e["too_fast_share"]) == (1.0, True, 1.0)   # 1,1,1,1,2,2 s
    assert (a["median_seconds"], a["too_fast"]) == (20.0, False)                           # 20,20,20,20,30,30 s
    assert a["agreement"]["value"] == 0.0 and a["agreement"]["n"] == 2
    assert body["anchoring"]["shown"]["responses"] == 2 and body["anchoring"]["hidden"]["responses"] == 2
    assert body["anchoring"]["shown"]["median_seconds"] == 30.0
    assert body["anchoring"]["difference"]["agreement_with_judge"]["value"] == 1.0
    assert set(body["rules"]) >= {"gold", "too_fast", "agreement", "anchoring"}
    assert a["competence"] is not None                             # the two share the ordinary records
    quick = client_for(admin_user).get(f"/api/v1/datasets/{ds.pk}/quality/?competence=false").json()
    assert all(row["competence"] is None for row in quick["annotators"])
    assert quick["annotators"][0]["gold"] == body["annotators"][0]["gold"]
    r = client_for(admin_user).get(f"/api/v1/datasets/{ds.pk}/quality/?competence=maybe")
    assert r.status_code == 400 and "competence" in r.json()


def test_the_standing_api(campaign, admin_user, annotator):
    ds, evil = campaign["dataset"], campaign["evil"]
    api = client_for(admin_user)
    url = f"/api/v1/datasets/{ds.pk}/annotators/{evil.pk}/standing/"
    r = api.post(url, {"paused": True, "reason": "too many misses on check records"}, format="json")
    assert r.status_code == 200 and r.json() == {
        "user_id": evil.pk, "username": EVIL, "paused": True, "excluded": False,
        "reason": "too many misses on check records", "changed_by": admin_user.username}
    assert annotator_paused(dataset=ds, user=evil) == "too many misses on check records"
    r = api.post(url, {"excluded": True}, format="json")
    assert r.json()["paused"] is True and r.json()["excluded"] is True                   # paused left as it was
    assert evil.pk in excluded_user_ids(dataset=ds)
    for bad, field in (({}, "paused"), ({"paused": "maybe"}, "paused"), ({"paused": True, "deleted": True}, "deleted")):
        r = api.post(url, bad, format="json")
        assert r.status_code == 400 and field in r.json(), bad
    assert AnnotatorStanding.objects.get(user=evil).paused is True                       # nothing half-written
    assert api.post(f"/api/v1/datasets/{ds.pk}/annotators/999999/standing/", {"paused": True},
                    format="json").status_code == 404
    # a former member who answered here keeps a standing that can be set (their answers may still be exported)
    Membership.objects.filter(user=annotator).delete()
    r = api.post(f"/api/v1/datasets/{ds.pk}/annotators/{annotator.pk}/standing/", {"excluded": True}, format="json")
    assert r.status_code == 200 and annotator.pk in excluded_user_ids(dataset=ds)


def test_the_dashboard_summarises_and_links_to_the_page(campaign, admin_user, annotator):
    ds = campaign["dataset"]
    c = login(admin_user)
    html = c.get(reverse("dashboard", args=[ds.pk])).content.decode()
    assert reverse("dataset-quality", args=[ds.pk]) in html
    assert f'hx-get="{reverse("dashboard-quality", args=[ds.pk])}" hx-trigger="load"' in html   # loaded after the page
    summary = c.get(reverse("dashboard-quality", args=[ds.pk])).content.decode()
    assert "<html" not in summary and EVIL not in summary
    too_fast = summary.split('data-summary="too-fast"')[1].split("data-summary=")[0]
    assert "<strong>1</strong> of 2" in too_fast and "&lt;script&gt;" in too_fast
    below = summary.split('data-summary="below-gold"')[1].split("data-summary=")[0]
    assert "<strong>1</strong> of 2" in below
    anchoring = summary.split('data-summary="anchoring"')[1]
    assert "<strong>100%</strong> shown vs <strong>0%</strong> hidden" in anchoring and "+100 pts" in anchoring
    assert login(annotator).get(reverse("dashboard-quality", args=[ds.pk])).status_code == 403


def _dataset_with(workspace, n: int):
    ds = DatasetFactory(workspace=workspace, min_submitted=n, too_fast_seconds=3)
    users = [_member(workspace, f"d{ds.pk}-u{i}") for i in range(n)]
    records = [RecordFactory(dataset=ds) for _ in range(3)]
    records_gold_set(dataset=ds, answers={records[0].pk: FIRST})
    for record in records:
        for i, user in enumerate(users):
            ResponseFactory(record=record, user=user, values=FIRST if i % 2 else SECOND, duration=1 + i,
                            suggestion_shown=bool(i % 2))
    return ds


@pytest.mark.parametrize("page", ["dashboard", "dashboard-quality", "dataset-quality"])
def test_pages_take_as_many_queries_for_8_annotators_as_for_2(workspace, admin_user, page):
    small, big = _dataset_with(workspace, 2), _dataset_with(workspace, 8)
    c = login(admin_user)
    c.get(reverse(page, args=[small.pk]))                             # warm the per-process caches alike
    c.get(reverse(page, args=[big.pk]))
    with CaptureQueriesContext(connection) as q_small:
        assert c.get(reverse(page, args=[small.pk])).status_code == 200
    with CaptureQueriesContext(connection) as q_big:
        html = c.get(reverse(page, args=[big.pk])).content.decode()
    assert html.count("data-annotator=") >= 8 or 'data-summary="too-fast"' in html
    assert len(q_small.captured_queries) == len(q_big.captured_queries), (
        [q["sql"][:120] for q in q_big.captured_queries])


def test_anchoring_figures_from_answers_given_through_the_api(workspace, admin_user):
    """End to end: annotators take records through next/submit with half the assignments shown the judge's
    suggestion (the server decides and stores which); they follow it when shown and go the other way when not,
    so the quality API reports 100% agreement with the judge shown, 0% hidden, over the stored split."""
    ds = DatasetFactory(workspace=workspace, min_submitted=3, gold_rate=0.0, suggestion_share=0.5)
    for _ in range(6):
        SuggestionFactory(record=RecordFactory(dataset=ds), agent="judge")   # the judge: response-1 better
    for name in ("ann-x", "ann-y", "ann-z"):
        api = client_for(_member(workspace, name))
        while True:
            r = api.get(f"/api/v1/datasets/{ds.pk}/next/")
            if r.status_code != 200 or not r.json().get("id"):
                break
            body = r.json()
            values = FIRST if body["suggestions"] else SECOND
            assert api.post(f"/api/v1/records/{body['id']}/responses/", {"values": values, "status": "submitted"},
                            format="json").status_code == 201
    shown = ds.responses.filter(suggestion_shown=True).count()
    hidden = ds.responses.filter(suggestion_shown=False).count()
    assert shown + hidden == 18 and shown and hidden
    anchoring = client_for(admin_user).get(f"/api/v1/datasets/{ds.pk}/quality/").json()["anchoring"]
    assert (anchoring["shown"]["responses"], anchoring["hidden"]["responses"], anchoring["left_out"]) == (shown, hidden, 0)
    assert anchoring["shown"]["agreement_with_judge"]["value"] == 1.0
    assert anchoring["hidden"]["agreement_with_judge"]["value"] == 0.0
    assert anchoring["difference"]["agreement_with_judge"]["value"] == 1.0
