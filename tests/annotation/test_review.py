"""Review and adjudication: the queue's order and reasons on a hand-built set, the three decisions
and their effect (votes never changed; a record sent back is handed out again), the pages and the
API, and who may do it (reviewers and admins; annotators 403; other workspaces 404)."""
import json

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from annotation.models import Dataset, Membership, Question, Record, Response, Review
from annotation.quality.review import (
    record_review_score,
    review_accept,
    review_clear,
    review_queue,
    review_send_back,
    review_set,
)
from annotation.services import member_add, next_record_for, response_upsert
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

pytestmark = pytest.mark.django_db

R1, R2 = "response-1", "response-2"


def ranking(*order):
    return [{"value": name, "rank": k} for k, name in enumerate(order, start=1)]


@pytest.fixture
def reviewer(workspace):
    user = UserFactory(username="reviewer-1")
    MembershipFactory(user=user, workspace=workspace, role=Membership.Role.REVIEWER)
    return user


@pytest.fixture
def voters(workspace):
    users = [UserFactory(username=f"voter-{c}") for c in "abc"]
    for u in users:
        MembershipFactory(user=u, workspace=workspace)
    return users


@pytest.fixture
def campaign(workspace, voters):
    """Seven records answered by hand: what each should make of the queue is in the test below."""
    ds = DatasetFactory(workspace=workspace, min_submitted=3)
    Question.objects.create(dataset=ds, name="flags", kind="label", required=False, position=1,
                            options={"values": ["harmful", "refusal"], "multiple": True})
    a, b, c = voters
    recs = {name: RecordFactory(dataset=ds, external_id=name) for name in
            ["split", "two-one", "agree", "judge", "flag", "gold", "reviewed"]}

    def vote(rec, user, *order, flags=None):
        values = {"ranking": ranking(*order)}
        if flags:
            values["flags"] = flags
        ResponseFactory(record=recs[rec], user=user, values=values)

    vote("split", a, R1, R2)
    vote("split", b, R2, R1)
    for u in (a, b):
        vote("two-one", u, R1, R2)
    vote("two-one", c, R2, R1)
    for u in (a, b, c):
        vote("agree", u, R1, R2)
    for u in (a, b):
        vote("judge", u, R1, R2)
    SuggestionFactory(record=recs["judge"], value=ranking(R2, R1), agent="gpt-judge", rationale="B is **better**")
    SuggestionFactory(record=recs["agree"], value=ranking(R1, R2), agent="gpt-judge")   # agrees: no reason
    vote("flag", a, R1, R2, flags=["harmful"])
    vote("flag", b, R1, R2)
    Record.objects.filter(pk=recs["gold"].pk).update(is_gold=True, completed=True,
                                                      gold_answer={"ranking": ranking(R1, R2)})
    for u in (a, b):
        vote("gold", u, R1, R2)
    vote("gold", c, R2, R1)
    vote("reviewed", a, R1, R2)
    vote("reviewed", b, R2, R1)
    Review.objects.create(record=recs["reviewed"], dataset=ds, decision=Review.Decision.ACCEPTED,
                          values={"ranking": ranking(R1, R2)})
    return ds, recs


def test_the_queue_puts_the_worst_first_with_its_reasons(campaign):
    ds, recs = campaign
    queue = review_queue(ds)
    got = [(i.external_id, i.score, sorted(r.code for r in i.reasons)) for i in queue.items]
    # split 1-1: no majority (+1) and agreement 0 (+1); 2-1: agreement 1/3 (+2/3); judge against a
    # unanimous 2-0 (+0.5); one of two flagged (+0.25 x 1.5); gold missed by one of three (+1/3).
    # "agree" has no reason; "reviewed" is settled.
    assert got == [("split", 2.0, ["low_agreement", "split"]),
                   ("two-one", round(2 / 3, 6), ["low_agreement"]),
                   ("judge", 0.5, ["judge"]),
                   ("flag", 0.375, ["flag"]),
                   ("gold", round(1 / 3, 6), ["gold_miss"])]
    assert queue.total == 5
    by_name = {i.external_id: i for i in queue.items}
    assert by_name["two-one"].agreement == pytest.approx(1 / 3) and by_name["two-one"].answers == 3
    assert by_name["judge"].reasons[0].text == ("judge disagrees: gpt-judge on ranking: response-2, "
                                                "the majority response-1")
    assert by_name["flag"].reasons[0].text == "flagged by 1 of 2: harmful (1)"
    assert by_name["gold"].reasons[0].text == "1 of 3 answers miss the gold answer"
    assert by_name["gold"].is_gold


def test_the_queue_pages_and_reads_in_a_fixed_number_of_queries(campaign, voters):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ds, recs = campaign
    second = review_queue(ds, page=2, page_size=2)
    assert [i.external_id for i in second.items] == ["judge", "flag"] and second.pages == 3 and second.total == 5
    review_send_back(record=recs["two-one"], reviewer=None)
    with CaptureQueriesContext(connection) as small:
        review_queue(ds)
    for i in range(20):   # 20 more split records, each with a judge
        rec = RecordFactory(dataset=ds, external_id=f"more-{i}")
        ResponseFactory(record=rec, user=voters[0], values={"ranking": ranking(R1, R2)})
        ResponseFactory(record=rec, user=voters[1], values={"ranking": ranking(R2, R1)})
        SuggestionFactory(record=rec, value=ranking(R2, R1), agent="gpt-judge")
    review_send_back(record=recs["judge"], reviewer=None)
    with CaptureQueriesContext(connection) as large:
        assert review_queue(ds).total == 5 - 2 + 20
    assert len(large.captured_queries) == len(small.captured_queries) <= 8


def test_an_excluded_annotators_vote_does_not_count(campaign, voters):
    from annotation.quality.standing import standing_set

    ds, recs = campaign
    standing_set(dataset=ds, user=voters[2], excluded=True)       # c made "two-one" a 2-1 and missed the gold
    names = [i.external_id for i in review_queue(ds).items]
    assert names == ["split", "judge", "flag"]
    html = _page_client(UserFactory(username="staff", is_staff=True)).get(
        reverse("review-record", args=[ds.pk, recs["two-one"].pk])).content.decode()
    assert html.count("data-excluded") == 1 and "data-review-reasons" not in html


def test_a_gold_answer_most_miss_is_put_in_doubt():
    q = Question(pk=1, name="ranking", kind="ranking", options={"values": [R1, R2]})
    score = record_review_score(questions=[q], answers=[{"ranking": ranking(R2, R1)}] * 2 + [{"ranking": ranking(R1, R2)}],
                                is_gold=True, gold_answer={"ranking": ranking(R1, R2)})
    assert [(r.code, r.text, round(r.weight, 4)) for r in score.reasons] == [
        ("gold_miss", "2 of 3 answers miss the gold answer (is the gold answer right?)", 0.6667)]


def test_a_split_among_four_outranks_a_three_to_one():
    q = Question(pk=1, name="ranking", kind="ranking", options={"values": [R1, R2]})
    split = record_review_score(questions=[q], answers=[{"ranking": ranking(R1, R2)}] * 2 + [{"ranking": ranking(R2, R1)}] * 2)
    three_one = record_review_score(questions=[q], answers=[{"ranking": ranking(R1, R2)}] * 3 + [{"ranking": ranking(R2, R1)}])
    # 2-2: 2 of 6 pairs agree -> 1 - 1/3 + 1 (split); 3-1: 3 of 6 pairs agree -> 1 - 1/2
    assert (split.score, three_one.score) == (round(1 + 2 / 3, 6), 0.5)


def test_accepting_an_answer_settles_the_record_and_leaves_the_votes(campaign, reviewer):
    ds, recs = campaign
    rec = recs["split"]
    before = list(Response.objects.filter(record=rec).order_by("pk").values_list("pk", "values", "status"))
    chosen = Response.objects.get(record=rec, values__ranking=ranking(R2, R1))
    review = review_accept(record=rec, response=chosen, reviewer=reviewer, note="B answers the question")
    assert (review.decision, review.values, review.accepted_response_id, review.reviewer) == (
        "accepted", {"ranking": ranking(R2, R1)}, chosen.pk, reviewer)
    assert list(Response.objects.filter(record=rec).order_by("pk").values_list("pk", "values", "status")) == before
    assert "split" not in [i.external_id for i in review_queue(ds).items]
    other = Response.objects.filter(record=recs["agree"]).first()
    with pytest.raises(ValidationError) as err:
        review_accept(record=rec, response=other, reviewer=reviewer)
    assert "response" in err.value.message_dict
    assert Review.objects.get(record=rec).accepted_response_id == chosen.pk   # unchanged by the refused one


def test_an_own_verdict_is_checked_like_a_submit_and_replaces_the_review(campaign, reviewer):
    ds, recs = campaign
    rec = recs["two-one"]
    with pytest.raises(ValidationError) as err:
        review_set(record=rec, values={"ranking": ranking(R1)}, reviewer=reviewer)     # not every response ranked
    assert "values.ranking" in err.value.message_dict
    with pytest.raises(ValidationError) as err:
        review_set(record=rec, values={"flags": ["harmful"]}, reviewer=reviewer)       # the ranking is required
    assert "values.ranking" in err.value.message_dict
    with pytest.raises(ValidationError) as err:
        review_set(record=rec, values={"ranking": ranking(R2, R1)}, reviewer=reviewer, note="bad\x00note")
    assert "note" in err.value.message_dict
    assert not Review.objects.filter(record=rec).exists()
    review_set(record=rec, values={"ranking": {"value": ranking(R2, R1)}}, reviewer=reviewer)
    review = Review.objects.get(record=rec)
    assert (review.decision, review.values) == ("own", {"ranking": ranking(R2, R1)})
    review_accept(record=rec, response=Response.objects.filter(record=rec).first(), reviewer=reviewer)
    assert Review.objects.filter(record=rec).count() == 1 and Review.objects.get(record=rec).decision == "accepted"
    assert review_clear(record=rec) is True and review_clear(record=rec) is False
    assert "two-one" in [i.external_id for i in review_queue(ds).items]


def test_sending_back_reopens_the_record_and_it_returns_with_the_new_answer(workspace, voters, reviewer):
    ds = DatasetFactory(workspace=workspace, min_submitted=2)
    rec = RecordFactory(dataset=ds)
    a, b, c = voters
    for user, order in ((a, (R1, R2)), (b, (R2, R1))):
        assert next_record_for(user, ds).pk == rec.pk
        response_upsert(user=user, record=rec, values={"ranking": ranking(*order)}, status="submitted")
    rec.refresh_from_db()
    assert rec.completed and next_record_for(c, ds) is None
    with pytest.raises(ValidationError) as err:
        review_send_back(record=rec, reviewer=reviewer, more=0)
    assert "more" in err.value.message_dict
    review = review_send_back(record=rec, reviewer=reviewer, note="need a tie-breaker")
    rec.refresh_from_db()
    assert (review.decision, review.values, rec.extra_wanted, rec.completed) == ("sent_back", {}, 1, False)
    assert review_queue(ds).total == 0                          # waits for the new answer
    handed = next_record_for(c, ds)
    assert handed is not None and handed.pk == rec.pk           # handed out again
    response_upsert(user=c, record=rec, values={"ranking": ranking(R1, R2)}, status="submitted")
    [item] = review_queue(ds).items
    assert item.record_id == rec.pk and item.sent_back
    assert sorted(r.code for r in item.reasons) == ["answered_again", "low_agreement"]
    assert Response.objects.filter(record=rec).count() == 3


def test_a_gold_record_cannot_be_sent_back(campaign, reviewer):
    _, recs = campaign
    with pytest.raises(ValidationError) as err:
        review_send_back(record=Record.objects.get(pk=recs["gold"].pk), reviewer=reviewer)
    assert "decision" in err.value.message_dict


# --- who may -----------------------------------------------------------------------------------

def _page_client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_annotators_are_refused_and_other_workspaces_do_not_exist(campaign, annotator):
    ds, recs = campaign
    rec = recs["split"]
    outsider = UserFactory(username="outsider")
    MembershipFactory(user=outsider, workspace=WorkspaceFactory(), role=Membership.Role.ADMIN)
    urls = [reverse("review-queue", args=[ds.pk]), reverse("review-record", args=[ds.pk, rec.pk])]
    for user, code in ((annotator, 403), (outsider, 404)):
        page = _page_client(user)
        api = client_for(user)
        assert [page.get(u).status_code for u in urls] == [code, code]
        assert page.post(urls[1], {"action": "send_back"}).status_code == code
        assert api.get(f"/api/v1/datasets/{ds.pk}/review-queue/").status_code == code
        assert api.get(f"/api/v1/records/{rec.pk}/review/").status_code == code
        assert api.put(f"/api/v1/records/{rec.pk}/review/", {"decision": "sent_back"}, format="json").status_code == code
        assert api.delete(f"/api/v1/records/{rec.pk}/review/").status_code == code
    assert not Review.objects.filter(record=rec).exists()
    rec.refresh_from_db()
    assert rec.extra_wanted == 0
    assert "data-review-link" not in _page_client(annotator).get(reverse("home")).content.decode()


def test_a_reviewer_reviews_and_annotates_but_does_not_administer(campaign, reviewer):
    ds, recs = campaign
    page = _page_client(reviewer)
    assert page.get(reverse("review-queue", args=[ds.pk])).status_code == 200
    assert page.get(reverse("annotate", args=[ds.pk])).status_code == 200
    home = page.get(reverse("home")).content.decode()
    assert reverse("review-queue", args=[ds.pk]) in home
    for name in ("dashboard", "dataset-settings", "dataset-import"):
        assert page.get(reverse(name, args=[ds.pk])).status_code == 403, name
    assert page.get(reverse("members", args=[ds.workspace_id])).status_code == 403
    api = client_for(reviewer)
    assert api.get(f"/api/v1/workspaces/{ds.workspace_id}/members/").status_code == 403
    assert api.get(f"/api/v1/datasets/{ds.pk}/triplets/").status_code == 403


def test_admins_choose_the_reviewer_role_on_the_members_page_api_and_invitations(workspace, admin_user, voters):
    page = _page_client(admin_user)
    html = page.get(reverse("members", args=[workspace.pk])).content.decode()
    assert '<option value="reviewer"' in html
    r = page.post(reverse("members", args=[workspace.pk]), {"username": "voter-a", "role": "reviewer"})
    assert r.status_code == 302
    assert Membership.objects.get(user=voters[0], workspace=workspace).role == "reviewer"
    api = client_for(admin_user)
    r = api.post(f"/api/v1/workspaces/{workspace.pk}/members/", {"username": "voter-b", "role": "reviewer"}, format="json")
    assert r.status_code == 200, r.content
    assert Membership.objects.get(user=voters[1], workspace=workspace).role == "reviewer"
    added = member_add(actor=admin_user, workspace=workspace, username="someone@example.org", role="reviewer")
    assert added.invited and workspace.invitations.get(invitee="someone@example.org").role == "reviewer"
    dashboard = page.get(reverse("dashboard", args=[DatasetFactory(workspace=workspace).pk])).content.decode()
    assert "data-review-link" in dashboard


# --- pages -------------------------------------------------------------------------------------

def test_the_review_page_shows_answers_escaped_suggestions_and_gold(campaign, reviewer, voters):
    ds, recs = campaign
    voters[0].username = "<b>eve</b>"
    voters[0].save()
    Record.objects.filter(pk=recs["judge"].pk).update(metadata={"source": "SECRET-SOURCE"})   # not for reviewers
    page = _page_client(reviewer)
    html = page.get(reverse("review-record", args=[ds.pk, recs["judge"].pk])).content.decode()
    assert "&lt;b&gt;eve&lt;/b&gt;" in html and "<b>eve</b>" not in html
    assert "gpt-judge" in html and "<strong>better</strong>" in html           # rationale rendered, sanitized
    assert html.count("data-accept=") == 2 and 'data-reason="judge"' in html
    assert 'name="rank__ranking__response-1"' in html                          # the verdict form
    assert "<script>" not in html.split("</head>")[-1] and " onclick=" not in html
    assert "SECRET-SOURCE" not in html
    gold = page.get(reverse("review-record", args=[ds.pk, recs["gold"].pk])).content.decode()
    assert "data-gold-answer" in gold and 'data-gold-match="no"' in gold and "data-send-back" not in gold


def test_deciding_on_the_page_goes_to_the_next_queued_record(campaign, reviewer):
    ds, recs = campaign
    page = _page_client(reviewer)
    url = reverse("review-record", args=[ds.pk, recs["split"].pk])
    chosen = Response.objects.filter(record=recs["split"]).order_by("pk").first()
    r = page.post(url, {"action": "accept", "response": chosen.pk})
    assert r.status_code == 302 and r["Location"] == reverse("review-record", args=[ds.pk, recs["two-one"].pk])
    assert Review.objects.get(record=recs["split"]).accepted_response_id == chosen.pk
    url = reverse("review-record", args=[ds.pk, recs["two-one"].pk])
    r = page.post(url, {"action": "own", "rank__ranking__response-1": "1"})              # half a ranking
    assert r.status_code == 422 and "values.ranking" in r.content.decode()
    assert not Review.objects.filter(record=recs["two-one"]).exists()
    r = page.post(url, {"action": "own", "rank__ranking__response-1": "2", "rank__ranking__response-2": "1",
                        "note": "B is right"})
    assert r.status_code == 302 and r["Location"] == reverse("review-record", args=[ds.pk, recs["judge"].pk])
    review = Review.objects.get(record=recs["two-one"])
    assert (review.decision, review.values, review.note) == ("own", {"ranking": ranking(R2, R1)}, "B is right")
    r = page.post(reverse("review-record", args=[ds.pk, recs["judge"].pk]), {"action": "send_back", "more": "2"})
    assert r.status_code == 302
    assert Record.objects.get(pk=recs["judge"].pk).extra_wanted == 2    # 2 answers, overlap 3: 1 missing + 2 more
    queue = page.get(reverse("review-queue", args=[ds.pk])).content.decode()
    assert [n for n in ("split", "two-one", "judge", "flag", "gold") if f">{n}<" in queue] == ["flag", "gold"]


# --- API ---------------------------------------------------------------------------------------

def test_the_api_queue_and_decisions(campaign, reviewer):
    ds, recs = campaign
    api = client_for(reviewer)
    body = api.get(f"/api/v1/datasets/{ds.pk}/review-queue/?page_size=2").json()
    assert (body["count"], body["pages"], [i["external_id"] for i in body["results"]]) == (5, 3, ["split", "two-one"])
    assert [r["code"] for r in body["results"][0]["reasons"]] == ["split", "low_agreement"]
    assert api.get(f"/api/v1/datasets/{ds.pk}/review-queue/?page_size=0").json() == {
        "page_size": ["a whole number from 1 to 200"]}
    url = f"/api/v1/records/{recs['split'].pk}/review/"
    assert api.get(url).status_code == 404
    for bad, field in (({"decision": "accepted"}, "response"), ({"decision": "own"}, "values"),
                       ({"decision": "maybe"}, "decision"), ({"decision": "own", "values": {}, "more": 1}, "more"),
                       ({"decision": "accepted", "response": 999999}, "response"),
                       ({"decision": "own", "values": {"ranking": ranking(R1)}}, "values.ranking"),
                       ({"decision": "sent_back", "more": 11}, "more"), ({"decision": "own", "vals": {}}, "vals")):
        r = api.put(url, bad, format="json")
        assert r.status_code == 400 and field in r.json(), (bad, r.content)
    assert not Review.objects.filter(record=recs["split"]).exists()
    r = api.put(url, {"decision": "own", "values": {"ranking": ranking(R2, R1)}, "note": "n"}, format="json")
    assert r.status_code == 200
    assert {k: r.json()[k] for k in ("decision", "values", "reviewer", "note", "accepted_response")} == {
        "decision": "own", "values": {"ranking": ranking(R2, R1)}, "reviewer": "reviewer-1", "note": "n",
        "accepted_response": None}
    assert api.get(url).json()["decision"] == "own"
    assert api.put(url, json.dumps({"decision": "sent_back"}), content_type="application/json").json()["values"] == {}
    assert Record.objects.get(pk=recs["split"].pk).extra_wanted == 1   # 2 answers of 3 wanted, then 1 more
    assert api.delete(url).status_code == 204 and api.delete(url).status_code == 404


def test_the_review_endpoints_are_in_the_schema(admin_client_api):
    resp = admin_client_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    paths = json.loads(resp.content)["paths"]
    assert set(paths["/api/v1/records/{record_id}/review/"]) >= {"get", "put", "delete"}
    assert "get" in paths["/api/v1/datasets/{dataset_id}/review-queue/"]


def test_an_archived_dataset_is_still_reviewable(campaign, reviewer):
    ds, _ = campaign
    Dataset.objects.filter(pk=ds.pk).update(status=Dataset.Status.ARCHIVED)
    assert _page_client(reviewer).get(reverse("review-queue", args=[ds.pk])).status_code == 200


def test_the_next_record_skips_what_was_settled_since_the_queue_was_read(campaign, reviewer):
    from annotation.quality.review import review_queue_next

    ds, recs = campaign
    assert review_queue_next(ds) == recs["split"].pk                  # reads the queue, keeps its order
    review_set(record=recs["two-one"], values={"ranking": ranking(R1, R2)}, reviewer=reviewer)   # someone else
    assert review_queue_next(ds, after=recs["split"].pk) == recs["judge"].pk
    review_send_back(record=recs["judge"], reviewer=reviewer)
    review_accept(record=recs["flag"], response=Response.objects.filter(record=recs["flag"]).first(), reviewer=reviewer)
    assert review_queue_next(ds, after=recs["split"].pk) == recs["gold"].pk


def test_a_graded_preference_is_voted_by_side_and_settled_on_the_page(workspace, voters, reviewer):
    from annotation.validation import question_specs_validate

    ds = DatasetFactory(workspace=workspace, min_submitted=2)
    Question.objects.filter(dataset=ds).delete()
    scale = [{"label": "much better", "value": 2}, {"label": "slightly better", "value": 1}]
    [spec] = question_specs_validate([{"name": "graded", "kind": "preference",
                                       "options": {"compares": [R1, R2], "scale": scale, "both_bad": True}}],
                                     {"prompt", R1, R2})
    Question.objects.create(dataset=ds, **spec)
    same_side, split = RecordFactory(dataset=ds, external_id="same-side"), RecordFactory(dataset=ds, external_id="split")
    a, b, _ = voters
    ResponseFactory(record=same_side, user=a, values={"graded": {"preferred": R1, "strength": 2}})
    ResponseFactory(record=same_side, user=b, values={"graded": {"preferred": R1, "strength": 1}})   # strength not a vote
    ResponseFactory(record=split, user=a, values={"graded": {"preferred": R1, "strength": 2}})
    ResponseFactory(record=split, user=b, values={"graded": {"both_bad": True}})
    [item] = review_queue(ds).items
    assert item.external_id == "split" and [r.code for r in item.reasons] == ["split", "low_agreement"]
    assert item.reasons[0].text == "split vote, graded: both bad (1) vs response-1 (1)"
    page = _page_client(reviewer)
    url = reverse("review-record", args=[ds.pk, split.pk])
    html = page.get(url).content.decode()
    assert f'value="{R2}:1"' in html and 'name="q__graded__both_bad"' in html
    r = page.post(url, {"action": "own", "q__graded": f"{R2}:1", "q__graded__both_bad": "1"})
    assert r.status_code == 302
    assert Review.objects.get(record=split).values == {"graded": {"preferred": R2, "strength": 1, "both_bad": True}}
    html = page.get(url).content.decode()
    assert f'value="{R2}:1" checked' in html                                   # the verdict is shown back


def test_the_review_page_reads_a_fixed_number_of_queries_whatever_the_answers(workspace, reviewer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ds = DatasetFactory(workspace=workspace, min_submitted=2)
    few, many = RecordFactory(dataset=ds), RecordFactory(dataset=ds)
    for i in range(6):
        user = UserFactory(username=f"many-{i}")
        MembershipFactory(user=user, workspace=workspace)
        for rec in ([few, many] if i < 2 else [many]):
            ResponseFactory(record=rec, user=user, values={"ranking": ranking(R1, R2) if i % 2 else ranking(R2, R1)})
        SuggestionFactory(record=many, value=ranking(R1, R2), agent=f"judge-{i}")
    page = _page_client(reviewer)
    counts = []
    for rec in (few, many):
        page.get(reverse("review-record", args=[ds.pk, rec.pk]))   # warm the per-process caches
        with CaptureQueriesContext(connection) as ctx:
            html = page.get(reverse("review-record", args=[ds.pk, rec.pk])).content.decode()
        counts.append(len(ctx.captured_queries))
    assert html.count("data-accept=") == 6 and counts[0] == counts[1]
