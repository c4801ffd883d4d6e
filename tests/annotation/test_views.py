"""The browser pages (server side): home, the annotate focus view and its htmx endpoints, history."""
import re

import pytest
from django.urls import reverse

from annotation.models import Dataset, Field, Lease, Membership, Question, Record, Response
from annotation.services import response_upsert
from tests.factories import (
    DatasetFactory,
    MembershipFactory,
    QuestionFactory,
    RecordFactory,
    SuggestionFactory,
    UserFactory,
)
from tests.helpers import login

HX = {"HTTP_HX_REQUEST": "true"}



def respond_url(record):
    return reverse("record-respond", args=[record.dataset_id, record.pk])


def ranks(first="response-1", second="response-2"):
    return {f"rank__ranking__{first}": "1", f"rank__ranking__{second}": "2"}


def shown_record_id(html: str) -> int | None:
    m = re.search(r'id="annotate-form"[^>]*data-record="(\d+)"', html, re.S)
    return int(m.group(1)) if m else None


@pytest.mark.django_db
def test_login_page_and_redirect_for_anonymous(client):
    r = client.get("/")
    assert r.status_code == 302 and r["Location"].startswith("/login/")
    r = client.get("/login/")
    assert r.status_code == 200 and b'name="username"' in r.content


@pytest.mark.django_db
def test_login_with_password_then_logout(client, annotator):
    r = client.post("/login/", {"username": "annotator-1", "password": "pw-12345678"})
    assert r.status_code == 302 and r["Location"] == "/"
    assert client.get("/").status_code == 200
    r = client.post("/logout/")
    assert r.status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_home_lists_datasets_of_my_workspaces_with_progress(annotator, dataset, workspace):
    other = DatasetFactory(name="elsewhere")  # another workspace
    draft = DatasetFactory(workspace=workspace, name="not-yet", status=Dataset.Status.DRAFT)
    recs = [RecordFactory(dataset=dataset) for _ in range(3)]
    response_upsert(user=annotator, record=recs[0], values={"ranking": ["response-1", "response-2"]}, status="submitted")
    html = login(annotator).get("/").content.decode()
    assert dataset.name in html
    assert other.name not in html
    assert draft.name not in html  # annotators only see published datasets
    card = html[html.index(f'data-dataset="{dataset.pk}"'):]
    assert re.search(r'class="mine-count">1</strong> / 3 submitted by you', card)
    assert "1 / 3" in card  # dataset completion (min_submitted=1)


@pytest.mark.django_db
def test_annotate_page_shows_prompt_and_responses_in_display_order(annotator, workspace):
    ds = DatasetFactory(workspace=workspace, shuffle_responses=True, responses=3)
    rec = RecordFactory(dataset=ds, fields={"prompt": "What is 2+2?", "response-1": "four", "response-2": "five",
                                            "response-3": "**4**"})
    html = login(annotator).get(reverse("annotate", args=[ds.pk])).content.decode()
    assert "What is 2+2?" in html
    assert "<strong>4</strong>" in html  # markdown rendered
    from annotation.services import display_order_for

    order = display_order_for(record=rec, user_id=annotator.pk, field_names=["response-1", "response-2", "response-3"],
                              shuffle=True)
    cards = re.findall(r'class="response-card[^"]*"[^>]*data-field="([^"]+)"', html)
    assert cards == order
    assert 'data-slot="A"' in html and "Response A" in html
    assert "Keyboard shortcuts" in html and "<kbd>Enter</kbd>" in html


@pytest.mark.django_db
def test_submit_stores_response_with_order_and_time_and_swaps_in_next_record(annotator, dataset):
    first = RecordFactory(dataset=dataset, priority=2)
    second = RecordFactory(dataset=dataset, priority=1)
    c = login(annotator)
    assert shown_record_id(c.get(reverse("annotate", args=[dataset.pk])).content.decode()) == first.pk
    r = c.post(respond_url(first), {"action": "submit", "duration": "12.5", **ranks("response-2", "response-1")}, **HX)
    assert r.status_code == 200
    html = r.content.decode()
    assert "<html" not in html  # a partial, swapped in by htmx
    assert html.lstrip().startswith('<div id="annotate-panel"')
    assert shown_record_id(html) == second.pk
    assert "Submitted" in html
    resp = Response.objects.get(record=first, user=annotator)
    assert resp.status == "submitted"
    assert resp.values["ranking"] == [{"value": "response-2", "rank": 1}, {"value": "response-1", "rank": 2}]
    assert resp.display_order == ["response-1", "response-2"]
    assert resp.duration == pytest.approx(12.5)
    first.refresh_from_db()
    assert first.completed and first.submitted_count == 1
    # durations add up across visits (draft then submit)
    c.post(reverse("record-draft", args=[dataset.pk, second.pk]), {"duration": "4", **ranks()}, **HX)
    c.post(respond_url(second), {"action": "submit", "duration": "6", **ranks()}, **HX)
    assert Response.objects.get(record=second, user=annotator).duration == pytest.approx(10.0)


@pytest.mark.django_db
def test_discard_then_all_done(annotator, dataset):
    rec = RecordFactory(dataset=dataset)
    c = login(annotator)
    c.get(reverse("annotate", args=[dataset.pk]))
    r = c.post(respond_url(rec), {"action": "discard", "rank__ranking__response-1": "1"}, **HX)  # half a ranking is fine
    assert r.status_code == 200
    html = r.content.decode()
    assert "data-all-done" in html and "All done" in html
    resp = Response.objects.get(record=rec, user=annotator)
    # what was entered is kept with the discard (an undo restores it)
    assert resp.status == "discarded" and resp.values == {"ranking": [{"value": "response-1", "rank": 1}]}
    assert not Lease.objects.filter(record=rec).exists()


@pytest.mark.django_db
def test_validation_error_answers_422_with_messages_and_stores_nothing(annotator, dataset):
    rec = RecordFactory(dataset=dataset)
    c = login(annotator)
    r = c.post(respond_url(rec), {"action": "submit", "rank__ranking__response-1": "1"}, **HX)
    assert r.status_code == 422
    assert r["HX-Retarget"] == f"#form-errors-{rec.pk}" and r["HX-Reswap"] == "innerHTML"
    body = r.content.decode()
    assert f'id="qerr-{rec.pk}-ranking"' in body and 'hx-swap-oob="true"' in body
    assert "missing from the ranking: Response B" in body  # annotators see slot letters, not field names
    assert not Response.objects.filter(record=rec).exists()
    # ties are refused when the dataset does not allow them
    r = c.post(respond_url(rec), {"action": "submit", "rank__ranking__response-1": "1",
                                  "rank__ranking__response-2": "1"}, **HX)
    assert r.status_code == 422 and "ties are not allowed" in r.content.decode()


@pytest.mark.django_db
def test_validation_error_without_htmx_rerenders_the_form_with_what_was_entered(annotator, workspace):
    ds = DatasetFactory(workspace=workspace)
    QuestionFactory(dataset=ds, name="comment", title="Comment", kind="text", required=False, position=1)
    rec = RecordFactory(dataset=ds)
    r = login(annotator).post(respond_url(rec), {"action": "submit", "rank__ranking__response-1": "2",
                                                  "q__comment": "keep me"})
    assert r.status_code == 422
    html = r.content.decode()
    assert "keep me</textarea>" in html
    assert "missing from the ranking" in html


@pytest.mark.django_db
def test_ties_allowed_when_the_dataset_says_so(annotator, workspace):
    ds = DatasetFactory(workspace=workspace, allow_ties=True)
    rec = RecordFactory(dataset=ds)
    r = login(annotator).post(respond_url(rec), {"action": "submit", "rank__ranking__response-1": "1",
                                                 "rank__ranking__response-2": "1"}, **HX)
    assert r.status_code == 200
    assert Response.objects.get(record=rec).values["ranking"][1]["rank"] == 1


@pytest.mark.django_db
def test_draft_autosave_keeps_valid_answers_and_never_downgrades_a_submit(annotator, dataset):
    rec = RecordFactory(dataset=dataset)
    c = login(annotator)
    url = reverse("record-draft", args=[dataset.pk, rec.pk])
    r = c.post(url, {"rank__ranking__response-1": "1"}, **HX)  # half a ranking: saved as entered
    assert r.status_code == 200 and "Draft saved" in r.content.decode()
    draft = Response.objects.get(record=rec)
    assert draft.status == "draft" and draft.values == {"ranking": [{"value": "response-1", "rank": 1}]}
    html = c.get(reverse("annotate", args=[dataset.pk])).content.decode()
    assert re.search(r'name="rank__ranking__response-1" value="1"', html)
    assert re.search(r'name="rank__ranking__response-2" value=""', html)
    c.post(url, ranks("response-2", "response-1"), **HX)
    assert Response.objects.get(record=rec).values["ranking"][0]["value"] == "response-2"
    # the draft is restored when the annotator comes back
    html = c.get(reverse("annotate", args=[dataset.pk])).content.decode()
    assert "draft restored" in html
    assert re.search(r'name="rank__ranking__response-2" value="1"', html)
    c.post(respond_url(rec), {"action": "submit", **ranks()}, **HX)
    r = c.post(url, ranks("response-2", "response-1"), **HX)  # a late auto-save after Submit
    assert "not saved as a draft" in r.content.decode()
    resp = Response.objects.get(record=rec)
    assert resp.status == "submitted" and resp.values["ranking"][0]["value"] == "response-1"


@pytest.mark.django_db
def test_rating_label_and_text_questions_round_trip(annotator, workspace):
    ds = DatasetFactory(workspace=workspace)
    QuestionFactory(dataset=ds, name="better", title="Which is better?", kind="rating", position=1,
                    options={"values": [0, 1, 2], "compares": ["response-1", "response-2"]})
    QuestionFactory(dataset=ds, name="flags", kind="label", required=False, position=2,
                    options={"values": ["harmful", "wrong"], "multiple": True})
    QuestionFactory(dataset=ds, name="note", kind="text", required=False, position=3)
    rec = RecordFactory(dataset=ds)
    c = login(annotator)
    html = c.get(reverse("annotate", args=[ds.pk])).content.decode()
    assert "A is better" in html and "Tie" in html and "B is better" in html
    assert 'type="checkbox" name="q__flags" value="harmful"' in html
    r = c.post(respond_url(rec), {"action": "submit", **ranks(), "q__better": "1", "q__flags": ["harmful", "wrong"],
                                  "q__note": "fine"}, **HX)
    assert r.status_code == 200
    values = Response.objects.get(record=rec).values
    assert values["better"] == 1 and values["flags"] == ["harmful", "wrong"] and values["note"] == "fine"
    r = c.post(respond_url(rec), {"action": "submit", **ranks(), "q__better": "7"}, **HX)
    assert r.status_code == 422 and "is not one of" in r.content.decode()


@pytest.mark.django_db
def test_comparison_buttons_follow_the_shuffled_order(annotator, workspace):
    ds = DatasetFactory(workspace=workspace, shuffle_responses=True)
    q = Question.objects.get(dataset=ds)
    q.delete()
    QuestionFactory(dataset=ds, name="better", kind="rating",
                    options={"values": [0, 1, 2], "compares": ["response-1", "response-2"]})
    from annotation.services import display_order_for

    # find a record shown as B, A (response-2 first) to this annotator
    for _ in range(40):
        rec = RecordFactory(dataset=ds)
        if display_order_for(record=rec, user_id=annotator.pk, field_names=["response-1", "response-2"],
                             shuffle=True)[0] == "response-2":
            break
    else:
        pytest.skip("no swapped order found")
    Record.objects.exclude(pk=rec.pk).delete()
    html = login(annotator).get(reverse("annotate", args=[ds.pk])).content.decode()
    # slot A is response-2, so "A is better" must send 2 (compares[1] better)
    assert re.search(r'value="2"\s*><span>A is better', html)
    assert re.search(r'value="1"\s*><span>B is better', html)


@pytest.mark.django_db
def test_suggestions_prefill_only_when_the_dataset_shows_them(annotator, workspace):
    ds = DatasetFactory(workspace=workspace, show_suggestions=True)
    rec = RecordFactory(dataset=ds)
    q = Question.objects.get(dataset=ds, name="ranking")
    SuggestionFactory(record=rec, question=q, agent="judge-x", score=0.8, rationale="B is *clearer*",
                      value=[{"value": "response-2", "rank": 1}, {"value": "response-1", "rank": 2}])
    c = login(annotator)
    html = c.get(reverse("annotate", args=[ds.pk])).content.decode()
    assert "pre-filled by a judge" in html and "judge-x" in html and "score 0.80" in html
    assert "<em>clearer</em>" in html
    assert re.search(r'name="rank__ranking__response-2" value="1"', html)
    Dataset.objects.filter(pk=ds.pk).update(show_suggestions=False)
    html = c.get(reverse("annotate", args=[ds.pk])).content.decode()
    assert "judge-x" not in html and "pre-filled" not in html
    assert re.search(r'name="rank__ranking__response-2" value=""', html)


@pytest.mark.django_db
def test_chat_fields_render_as_bubbles(annotator, workspace):
    ds = DatasetFactory(workspace=workspace)
    Field.objects.filter(dataset=ds, name="prompt").update(kind="chat")
    RecordFactory(dataset=ds, fields={"prompt": [{"role": "system", "content": "Be brief"},
                                                 {"role": "user", "content": "Hi **there**"}],
                                      "response-1": "a", "response-2": "b"})
    html = login(annotator).get(reverse("annotate", args=[ds.pk])).content.decode()
    assert 'class="bubble bubble-system"' in html and 'class="bubble bubble-user"' in html
    assert "Hi <strong>there</strong>" in html


@pytest.mark.django_db
def test_history_pages_back_and_edits_a_submitted_response(annotator, dataset):
    recs = [RecordFactory(dataset=dataset) for _ in range(30)]
    for rec in recs:
        response_upsert(user=annotator, record=rec, values={"ranking": ["response-1", "response-2"]}, status="submitted")
    c = login(annotator)
    page1 = c.get(reverse("history", args=[dataset.pk])).content.decode()
    assert "Page 1 of 2" in page1 and recs[-1].external_id in page1
    page2 = c.get(reverse("history", args=[dataset.pk]) + "?page=2").content.decode()
    assert recs[0].external_id in page2
    target = recs[0]
    html = c.get(reverse("history-record", args=[dataset.pk, target.pk])).content.decode()
    assert 'name="mode" value="history"' in html and "Save &amp; submit" in html
    r = c.post(respond_url(target), {"action": "submit", "mode": "history", **ranks("response-2", "response-1")}, **HX)
    assert r.status_code == 200 and r["HX-Location"]
    resp = Response.objects.get(record=target, user=annotator)
    assert resp.values["ranking"][0]["value"] == "response-2"
    target.refresh_from_db()
    assert target.submitted_count == 1  # changing an answer does not count twice
    # a record I did not answer cannot be opened from the history
    fresh = RecordFactory(dataset=dataset)
    assert c.get(reverse("history-record", args=[dataset.pk, fresh.pk])).status_code == 404


@pytest.mark.django_db
def test_annotators_cannot_annotate_an_unpublished_dataset(annotator, workspace):
    ds = DatasetFactory(workspace=workspace, status=Dataset.Status.DRAFT)
    rec = RecordFactory(dataset=ds)
    c = login(annotator)
    assert c.get(reverse("annotate", args=[ds.pk])).status_code == 403
    assert c.post(respond_url(rec), {"action": "submit", **ranks()}, **HX).status_code == 403
    assert not Response.objects.exists()


@pytest.mark.django_db
def test_annotate_page_query_count_is_small_and_constant(annotator, dataset, django_assert_max_num_queries):
    for _ in range(50):
        RecordFactory(dataset=dataset)
    c = login(annotator)
    c.get(reverse("annotate", args=[dataset.pk]))  # warm: session, lease
    with django_assert_max_num_queries(12):
        r = c.get(reverse("annotate", args=[dataset.pk]))
    assert r.status_code == 200
    rec_id = shown_record_id(r.content.decode())
    with django_assert_max_num_queries(30):
        r = c.post(reverse("record-respond", args=[dataset.pk, rec_id]), {"action": "submit", **ranks()}, **HX)
    assert r.status_code == 200 and shown_record_id(r.content.decode()) != rec_id


@pytest.mark.django_db
def test_two_annotators_with_overlap_get_the_same_record_but_never_twice(workspace, dataset):
    Dataset.objects.filter(pk=dataset.pk).update(min_submitted=2)
    rec = RecordFactory(dataset=dataset)
    a, b = UserFactory(), UserFactory()
    for u in (a, b):
        MembershipFactory(user=u, workspace=workspace, role=Membership.Role.ANNOTATOR)
    ca, cb = login(a), login(b)
    assert shown_record_id(ca.get(reverse("annotate", args=[dataset.pk])).content.decode()) == rec.pk
    assert shown_record_id(cb.get(reverse("annotate", args=[dataset.pk])).content.decode()) == rec.pk
    r = ca.post(respond_url(rec), {"action": "submit", **ranks()}, **HX)
    assert "data-all-done" in r.content.decode()
    r = cb.post(respond_url(rec), {"action": "submit", **ranks()}, **HX)
    assert "data-all-done" in r.content.decode()
    rec.refresh_from_db()
    assert rec.submitted_count == 2 and rec.completed


@pytest.mark.django_db
def test_the_order_the_page_showed_is_stored_with_the_response(annotator, dataset):
    rec, other = RecordFactory(dataset=dataset), RecordFactory(dataset=dataset)
    c = login(annotator)
    c.post(respond_url(rec), {"action": "submit", "display_order": "response-2,response-1", **ranks()}, **HX)
    assert Response.objects.get(record=rec).display_order == ["response-2", "response-1"]
    # anything that is not an order of the ranked fields is ignored: the computed order is stored
    c.post(respond_url(other), {"action": "submit", "display_order": "response-2,evil", **ranks()}, **HX)
    assert Response.objects.get(record=other).display_order == ["response-1", "response-2"]
    html = c.get(reverse("history-record", args=[dataset.pk, rec.pk])).content.decode()
    cards = re.findall(r'class="response-card[^"]*"[^>]*data-field="([^"]+)"', html)
    assert cards == ["response-2", "response-1"]  # history shows it as the annotator saw it


@pytest.mark.django_db
def test_a_tie_suggestion_is_not_prefilled_where_ties_are_not_allowed(annotator, workspace):
    ds = DatasetFactory(workspace=workspace, show_suggestions=True, allow_ties=False, shuffle_responses=True)
    rec = RecordFactory(dataset=ds)
    q = Question.objects.get(dataset=ds, name="ranking")
    SuggestionFactory(record=rec, question=q, agent="judge-tie", rationale="response-1 and 'response-2' are equal",
                      value=[{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 1}])
    c = login(annotator)
    html = c.get(reverse("annotate", args=[ds.pk])).content.decode()
    assert re.search(r'name="rank__ranking__response-1" value=""', html)
    assert re.search(r'name="rank__ranking__response-2" value=""', html)
    assert "pre-filled by a judge" not in html
    assert "The judge found Response A and Response B equal" in html and "choose one" in html
    # the rationale speaks of the letters on screen, in this annotator's (shuffled) order
    from annotation.services import display_order_for

    order = display_order_for(record=rec, user_id=annotator.pk, field_names=["response-1", "response-2"], shuffle=True)
    letter = {name: "AB"[i] for i, name in enumerate(order)}
    assert f"Response {letter['response-1']} and Response {letter['response-2']} are equal" in html
    assert "response-1 and" not in html
    # where ties are allowed the same suggestion pre-fills
    Dataset.objects.filter(pk=ds.pk).update(allow_ties=True)
    html = c.get(reverse("annotate", args=[ds.pk])).content.decode()
    assert re.search(r'name="rank__ranking__response-2" value="1"', html) and "pre-filled by a judge" in html


@pytest.mark.django_db
def test_rationale_letters_stay_escaped_and_admins_review_sees_field_names(annotator, admin_user, workspace):
    ds = DatasetFactory(workspace=workspace, show_suggestions=True)
    rec = RecordFactory(dataset=ds)
    q = Question.objects.get(dataset=ds, name="ranking")
    SuggestionFactory(record=rec, question=q, rationale="response-2 <script>alert(1)</script> beats response-1; "
                                                       "response-10 is no field")
    html = login(annotator).get(reverse("annotate", args=[ds.pk])).content.decode()
    assert "Response B &lt;script&gt;alert(1)&lt;/script&gt; beats Response A" in html
    assert "response-10 is no field" in html and "<script>alert(1)" not in html
    review = login(admin_user).get(reverse("record-detail", args=[ds.pk, rec.pk])).content.decode()
    assert "response-2 &lt;script&gt;" in review


@pytest.mark.django_db
def test_a_submit_still_needs_the_whole_ranking(annotator, dataset):
    rec = RecordFactory(dataset=dataset)
    from django.core.exceptions import ValidationError

    response_upsert(user=annotator, record=rec, values={"ranking": [{"value": "response-2", "rank": 1}]},
                    status="draft")
    assert Response.objects.get(record=rec).values == {"ranking": [{"value": "response-2", "rank": 1}]}
    with pytest.raises(ValidationError, match="missing from the ranking"):
        response_upsert(user=annotator, record=rec, values={"ranking": [{"value": "response-2", "rank": 1}]},
                        status="submitted")
    r = login(annotator).post(respond_url(rec), {"action": "submit", "rank__ranking__response-2": "1"}, **HX)
    assert r.status_code == 422 and "missing from the ranking: Response A" in r.content.decode()
    assert Response.objects.get(record=rec).status == "draft"


@pytest.mark.django_db
def test_undo_of_a_discard_brings_the_record_back_with_its_answer(annotator, dataset):
    rec = RecordFactory(dataset=dataset, priority=2)
    nxt = RecordFactory(dataset=dataset, priority=1)
    c = login(annotator)
    c.get(reverse("annotate", args=[dataset.pk]))
    r = c.post(respond_url(rec), {"action": "discard", **ranks("response-2", "response-1")}, **HX)
    html = r.content.decode()
    undo_url = reverse("record-undo-discard", args=[dataset.pk, rec.pk])
    assert shown_record_id(html) == nxt.pk and f'hx-post="{undo_url}"' in html and "Undo" in html
    assert f'data-done-url="{reverse("history-record", args=[dataset.pk, rec.pk])}"' in html
    r = c.post(undo_url, **HX)
    html = r.content.decode()
    assert r.status_code == 200 and shown_record_id(html) == rec.pk and "Discard undone" in html
    assert re.search(r'name="rank__ranking__response-2" value="1"', html)
    resp = Response.objects.get(record=rec, user=annotator)
    assert resp.status == "draft" and resp.values["ranking"][0] == {"value": "response-2", "rank": 1}
    # the next page view resumes it (drafts first) and a second undo has nothing to undo
    r = c.post(undo_url, **HX)
    assert "Nothing to undo" in r.content.decode()
    assert Response.objects.get(record=rec, user=annotator).status == "draft"
    # a submit is not undone by it
    c.post(respond_url(rec), {"action": "submit", **ranks()}, **HX)
    c.post(undo_url, **HX)
    assert Response.objects.get(record=rec, user=annotator).status == "submitted"


@pytest.mark.django_db
def test_progress_shows_mine_left_for_me_and_the_dataset_completion(annotator, dataset):
    recs = [RecordFactory(dataset=dataset, priority=10 - i) for i in range(4)]
    c = login(annotator)
    html = c.get(reverse("annotate", args=[dataset.pk])).content.decode()
    assert re.search(r'data-mine="submitted">0<', html) and re.search(r'data-mine="left">4<', html)
    assert re.search(r"data-dataset-completion>0%<", html)
    c.post(respond_url(recs[0]), {"action": "submit", **ranks()}, **HX)
    html = c.post(respond_url(recs[1]), {"action": "discard"}, **HX).content.decode()
    # live for my own answers, even within the dataset counts' snapshot
    assert re.search(r'data-mine="submitted">1<', html) and re.search(r'data-mine="left">2<', html)
    assert re.search(r"data-dataset-completion>25%<", html) and "1 discarded" in html


def test_submitting_a_full_record_the_page_did_not_hand_out_is_refused(annotator, dataset):
    rec = RecordFactory(dataset=dataset)
    other = UserFactory()
    MembershipFactory(user=other, workspace=dataset.workspace)
    response_upsert(user=other, record=rec, values={"ranking": [{"value": "response-1", "rank": 1},
                                                                {"value": "response-2", "rank": 2}]},
                    status="submitted")
    r = login(annotator).post(respond_url(rec), {"action": "submit", **ranks()}, **HX)
    assert r.status_code == 422 and "not handed to you" in r.content.decode()
    assert not Response.objects.filter(record=rec, user=annotator).exists()
    assert Record.objects.get(pk=rec.pk).submitted_count == 1
