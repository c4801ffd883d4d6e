"""The quality report is kept in the cache: a second load of the page or the API shows the same figures
with the same "computed at" and runs only the few queries that check nothing changed; a new answer, a
changed answer, a standing, a gold record (or its answer), a suggestion or a setting recomputes it."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import Response, Suggestion
from annotation.quality.gold import records_gold_set
from annotation.quality.metrics import dataset_quality_report_cached
from annotation.quality.standing import standing_set
from tests.conftest import client_for
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, ResponseFactory, UserFactory
from tests.helpers import login

pytestmark = pytest.mark.django_db

R1, R2 = "response-1", "response-2"
FIRST = {"ranking": [{"value": R1, "rank": 1}, {"value": R2, "rank": 2}]}
SECOND = {"ranking": [{"value": R2, "rank": 1}, {"value": R1, "rank": 2}]}


@pytest.fixture
def small(workspace):
    """ann and bob answer two ordinary records (bob against ann on both) and one gold record (ann right, bob
    wrong); ann takes 10 s a record, bob 3 s; the too-fast threshold is 5 s."""
    ds = DatasetFactory(workspace=workspace, min_submitted=2, too_fast_seconds=5)
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    for user in (ann, bob):
        MembershipFactory(user=user, workspace=workspace)
    gold = RecordFactory(dataset=ds)
    records_gold_set(dataset=ds, answers={gold.pk: FIRST})
    ordinary = [RecordFactory(dataset=ds), RecordFactory(dataset=ds)]
    for record in [gold, *ordinary]:
        ResponseFactory(record=record, user=ann, values=FIRST, duration=10)
        ResponseFactory(record=record, user=bob, values=SECOND, duration=3)
    return {"dataset": ds, "ann": ann, "bob": bob, "gold": gold, "ordinary": ordinary}


def _rows(body):
    return {a["username"]: a for a in body["annotators"]}


def test_a_second_load_is_served_from_the_cache_and_a_new_answer_recomputes(small, admin_user):
    ds, api = small["dataset"], client_for(admin_user)
    url = f"/api/v1/datasets/{ds.pk}/quality/"
    with CaptureQueriesContext(connection) as first_load:
        first = api.get(url).json()
    with CaptureQueriesContext(connection) as second_load:
        second = api.get(url).json()
    assert first["computed_at"] and second == first                       # the same figures, the same time
    assert len(second_load.captured_queries) < len(first_load.captured_queries)
    assert _rows(first)["ann"]["submitted"] == 3
    third = RecordFactory(dataset=ds)
    ResponseFactory(record=third, user=small["ann"], values=FIRST, duration=10)
    again = api.get(url).json()
    assert _rows(again)["ann"]["submitted"] == 4 and again["computed_at"] > first["computed_at"]


def test_a_changed_answer_a_standing_and_a_setting_recompute(small, admin_user):
    ds, api = small["dataset"], client_for(admin_user)
    url = f"/api/v1/datasets/{ds.pk}/quality/"
    assert _rows(api.get(url).json())["bob"]["agreement"]["value"] == 0.0     # against ann on both records
    answer = Response.objects.get(record=small["ordinary"][0], user=small["bob"])
    answer.values = FIRST
    answer.save()
    rows = _rows(api.get(url).json())
    assert (rows["bob"]["agreement"]["value"], rows["bob"]["agreement"]["n"]) == (0.5, 2)
    standing_set(dataset=ds, user=small["bob"], paused=True, by=admin_user)
    assert _rows(api.get(url).json())["bob"]["paused"] is True
    assert _rows(api.get(url).json())["bob"]["too_fast"] is True               # 3 s < 5 s
    ds.too_fast_seconds = 2
    ds.save()
    assert _rows(api.get(url).json())["bob"]["too_fast"] is False              # 3 s > 2 s


def test_gold_records_their_answers_and_suggestions_recompute(small, admin_user):
    ds = small["dataset"]
    report = dataset_quality_report_cached(dataset=ds)
    bob = {a.username: a for a in report.annotators}["bob"]
    assert (bob.gold.correct, bob.gold.answered, bob.gold_submitted) == (0, 1, 1)
    records_gold_set(dataset=ds, answers={small["gold"].pk: SECOND})          # the known answer changes: bob right
    bob = {a.username: a for a in dataset_quality_report_cached(dataset=ds).annotators}["bob"]
    assert (bob.gold.correct, bob.gold.answered) == (1, 1)
    records_gold_set(dataset=ds, answers={small["ordinary"][0].pk: SECOND})   # one more gold record
    bob = {a.username: a for a in dataset_quality_report_cached(dataset=ds).annotators}["bob"]
    assert (bob.gold.correct, bob.gold.answered, bob.gold_submitted) == (2, 2, 2)
    assert dataset_quality_report_cached(dataset=ds).anchoring.shown.responses == 0
    question = ds.questions.get(name="ranking")
    Suggestion.objects.create(record=small["ordinary"][1], question=question, value=SECOND["ranking"], agent="judge")
    Response.objects.filter(record=small["ordinary"][1]).update(suggestion_shown=True)   # .update() leaves updated_at
    anchoring = dataset_quality_report_cached(dataset=ds).anchoring      # recomputed for the new suggestion
    assert (anchoring.shown.responses, anchoring.shown.judge.value) == (2, 0.5)


def test_the_page_says_when_the_figures_were_computed_and_the_summary_reuses_them(small, admin_user):
    ds = small["dataset"]
    c = login(admin_user)
    html = c.get(reverse("dataset-quality", args=[ds.pk])).content.decode()
    assert "Figures computed" in html and "data-computed-at=" in html
    with CaptureQueriesContext(connection) as summary_load:
        summary = c.get(reverse("dashboard-quality", args=[ds.pk])).content.decode()
    assert "bob" in summary and "computed" in summary                         # bob is too fast
    statements = [q["sql"] for q in summary_load.captured_queries]
    assert not any('"suggestion_shown"' in sql and "SELECT" in sql for sql in statements)   # no pass over the answers
