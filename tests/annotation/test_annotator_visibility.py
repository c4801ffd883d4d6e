"""What annotators may see of a record's metadata: only the keys the dataset declares visible, on
every endpoint and page an annotator can reach; admins (pages, API, exports) keep everything.

The first test lists every URL of the project and fails when one is in none of the lists below: a
new endpoint has to be placed here (and so gets walked by the leak test) before it can land.
"""
from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from annotation.models import Dataset, Field, Membership, Question, Record, Response
from annotation.services import response_upsert
from tests.factories import (
    EndpointFactory,
    JobFactory,
    JudgeFactory,
    RecordFactory,
)

pytestmark = pytest.mark.django_db

HIDDEN = {"original_chosen": "SECRET-ORIGINAL-CHOSEN", "source": "SECRET-SOURCE",
          "generation": {"job": 1, "strategy": "SECRET-GENERATION"},
          "judge": {"model": "SECRET-JUDGE", "score": 0.25}, "gold": "SECRET-GOLD"}
SECRET_MARKERS = ("SECRET-ORIGINAL-CHOSEN", "SECRET-SOURCE", "SECRET-GENERATION", "SECRET-JUDGE", "SECRET-GOLD")
VISIBLE = {"topic": "VISIBLE-TOPIC"}
RANK = {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]}

# Annotator endpoints that show a record: each answers 200 with the visible key and no hidden one.
ANNOTATOR_RECORD_VIEWS = {
    "api-dataset-next", "api-dataset-records", "api-record", "annotate", "history-record",
}
# Annotator endpoints that show no record's metadata (or only write): walked all the same.
ANNOTATOR_OTHER = {
    "home", "login", "logout", "account", "invitation-answer", "workspace-list", "history", "record-respond", "record-draft",
    "record-undo-discard", "api-record-responses", "api-dataset", "api-datasets", "api-workspaces",
    "api-schema", "api-docs", "schema",
}
# Admin (or staff) only: an annotator is refused (403 / 404 / 405 / a redirect to the login).
NOT_FOR_ANNOTATORS = {
    "api-members", "api-member-delete", "api-dataset-publish", "api-dataset-suggestions",
    "api-dataset-import-pairs", "api-dataset-triplets", "api-dataset-unpaired", "api-dataset-responses-export",
    "api-endpoints", "api-endpoint", "api-generation-jobs",
    "api-generation-job", "api-generation-job-cancel", "api-generation-job-resume", "api-judges", "api-judge",
    "api-judge-jobs", "api-judge-job", "api-judge-job-cancel", "api-judge-job-resume", "api-judge-job-outputs",
    "api-dataset-cleaning", "api-dataset-agreement", "api-dataset-leaderboard", "api-dataset-checks",
    "api-dataset-arena", "api-dataset-best-of-n", "api-dataset-simulate", "api-leaderboard-alpaca-eval",
    "api-arena-alpaca-eval", "api-simulated-annotators", "api-annotate-pairs", "api-annotate-samples",
    "generation-home", "generation-endpoint-create", "generation-job-launch", "generation-job",
    "generation-job-progress", "generation-job-cancel", "generation-job-resume", "judging-home",
    "judging-job-launch", "judging-job", "judging-job-progress", "judging-job-cancel", "judging-job-resume",
    "judging-cleaning", "judging-flip-decide", "judging-cleaned-export", "evaluation-home", "evaluation-dataset",
    "evaluation-simulate", "evaluation-simulated-annotators", "evaluation-simulated-annotator-remove",
    "evaluation-alpaca-eval", "dataset-list", "dataset-create", "dashboard", "dashboard-stats", "record-detail",
    "dataset-publish", "dataset-settings", "dataset-status", "dataset-delete", "dataset-import",
    "dataset-import-preview", "dataset-export", "api-dataset-gold", "api-record-gold", "record-gold",
    "dashboard-quality", "dataset-quality", "dataset-quality-standing", "api-dataset-quality", "api-annotator-standing",
    "job-detail", "job-progress", "job-download", "job-cancel", "job-resume", "job-retry", "members",
    "member-remove", "review-queue", "review-record", "api-dataset-review-queue", "api-record-review",
}
# ... of which these are lists of what the caller administers: empty for an annotator.
ADMIN_LISTS = {"api-endpoints", "api-generation-jobs", "api-judges", "api-judge-jobs"}
DJANGO_ADMIN_PREFIX = "admin/"  # Django's admin site: staff only (checked below)


def _urls(resolver=None, prefix: str = "") -> list[tuple[str, str | None, URLPattern]]:
    """(route, name, pattern) of every URL of the project."""
    resolver = resolver or get_resolver()
    out = []
    for p in resolver.url_patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            out += _urls(p, route)
        else:
            out.append((route, p.name, p))
    return out


def test_every_url_is_classified():
    unclassified = []
    for route, name, _ in _urls():
        if route.startswith(DJANGO_ADMIN_PREFIX):
            continue
        if name not in ANNOTATOR_RECORD_VIEWS | ANNOTATOR_OTHER | NOT_FOR_ANNOTATORS:
            unclassified.append(f"{route} ({name})")
    assert not unclassified, ("place these URLs in a list of tests/annotation/test_annotator_visibility.py "
                              f"(what may an annotator see there?): {unclassified}")


@pytest.fixture
def world(workspace, admin_user, annotator):
    dataset = Dataset.objects.create(workspace=workspace, name="blind", min_submitted=2, shuffle_responses=False,
                                     status=Dataset.Status.PUBLISHED, visible_metadata=["topic"])
    for i, name in enumerate(["prompt", "response-1", "response-2"]):
        Field.objects.create(dataset=dataset, name=name, kind="text", position=i)
    Question.objects.create(dataset=dataset, name="ranking", kind="ranking",
                            options={"values": ["response-1", "response-2"]})
    meta = {**HIDDEN, **VISIBLE}
    records = [RecordFactory(dataset=dataset, metadata=meta, priority=10 - i) for i in range(5)]
    answered = records[-1]
    response_upsert(user=annotator, record=answered, values=RANK, status="submitted")
    job = JobFactory(workspace=workspace, dataset=dataset)
    return {"dataset": dataset, "records": records, "answered": answered, "job": job,
            "endpoint": EndpointFactory(workspace=workspace), "judge": JudgeFactory(workspace=workspace)}


def _kwargs(pattern: URLPattern, world, admin_user) -> dict:
    values = {"dataset_id": world["dataset"].pk, "record_id": world["answered"].pk,
              "workspace_id": world["dataset"].workspace_id, "job_id": world["job"].pk, "user_id": admin_user.pk,
              "username": admin_user.username, "endpoint_id": world["endpoint"].pk, "judge_id": world["judge"].pk,
              "annotator_id": admin_user.pk, "invitation_id": 1, "action": "accept"}
    return {k: values[k] for k in pattern.pattern.converters}


def _body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def _leaks(text: str) -> list[str]:
    return [m for m in SECRET_MARKERS if m in text]


def test_no_annotator_endpoint_shows_hidden_metadata(world, annotator, admin_user):
    client = Client()
    client.force_login(annotator)
    seen = {}
    for route, name, pattern in _urls():
        if route.startswith(DJANGO_ADMIN_PREFIX) or name in ("logout",):
            continue
        url = reverse(name, kwargs=_kwargs(pattern, world, admin_user))
        response = client.get(url, HTTP_HX_REQUEST="true") if name == "annotate" else client.get(url)
        text = _body(response)
        assert not _leaks(text), f"GET {url} ({name}) shows {_leaks(text)} to an annotator"
        seen[name] = (response.status_code, text)
        if name in NOT_FOR_ANNOTATORS:
            refused = response.status_code in (302, 403, 404, 405)
            assert refused or (name in ADMIN_LISTS and response.json() == []), (name, response.status_code)
    for name in ANNOTATOR_RECORD_VIEWS:
        status, text = seen[name]
        assert status == 200 and "VISIBLE-TOPIC" in text, f"{name}: {status}"

    # the writes an annotator makes answer with the next record (page) or their response (API)
    records = world["records"]
    next_id = client.get(reverse("api-dataset-next", args=[world["dataset"].pk])).json()["id"]
    r = client.post(reverse("api-record-responses", args=[next_id]), json.dumps({"values": RANK, "status": "draft"}),
                    content_type="application/json")
    assert r.status_code in (200, 201) and not _leaks(_body(r))
    html = client.get(reverse("annotate", args=[world["dataset"].pk])).content.decode()
    assert "VISIBLE-TOPIC" in html and not _leaks(html)
    for action in ("submit", "discard"):
        shown = [rec for rec in records if f'data-record="{rec.pk}"' in html][0]
        form = {"action": action, "rank__ranking__response-1": "1", "rank__ranking__response-2": "2"}
        r = client.post(reverse("record-respond", args=[world["dataset"].pk, shown.pk]), form, HTTP_HX_REQUEST="true")
        html = _body(r)
        assert r.status_code == 200 and not _leaks(html), action
    r = client.post(reverse("record-undo-discard", args=[world["dataset"].pk, shown.pk]), HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and not _leaks(_body(r))
    r = client.post(reverse("record-draft", args=[world["dataset"].pk, shown.pk]), form, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and not _leaks(_body(r))
    assert client.get(reverse("history", args=[world["dataset"].pk])).status_code == 200


def test_django_admin_is_for_staff_only(world, annotator):
    client = Client()
    client.force_login(annotator)
    response = client.get(reverse("admin:annotation_record_change", args=[world["answered"].pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_admins_keep_all_metadata(world, admin_user):
    client = Client()
    client.force_login(admin_user)
    rec = world["answered"]
    body = client.get(reverse("api-record", args=[rec.pk])).json()
    assert body["metadata"] == {**HIDDEN, **VISIBLE}
    listed = client.get(reverse("api-dataset-records", args=[world["dataset"].pk])).json()["results"]
    assert all(r["metadata"]["original_chosen"] == "SECRET-ORIGINAL-CHOSEN" for r in listed)
    # an admin may filter on any key
    r = client.get(reverse("api-dataset-records", args=[world["dataset"].pk]), {"metadata.gold": "SECRET-GOLD"})
    assert r.status_code == 200 and len(r.json()["results"]) == len(world["records"])


def test_a_hidden_key_cannot_be_probed_through_the_records_filter(world, annotator):
    client = Client()
    client.force_login(annotator)
    url = reverse("api-dataset-records", args=[world["dataset"].pk])
    for key in ("metadata.original_chosen", "metadata.generation.strategy", "metadata.no_such_key"):
        r = client.get(url, {key: "x"})
        assert r.status_code == 400 and "only the metadata keys" in r.json()[key][0]
    r = client.get(url, {"metadata.topic": "VISIBLE-TOPIC"})
    assert r.status_code == 200 and len(r.json()["results"]) == len(world["records"])


def test_nothing_is_visible_until_the_dataset_declares_it(world, annotator):
    Dataset.objects.filter(pk=world["dataset"].pk).update(visible_metadata=[])
    client = Client()
    client.force_login(annotator)
    body = client.get(reverse("api-record", args=[world["answered"].pk])).json()
    assert body["metadata"] == {}
    html = client.get(reverse("history-record", args=[world["dataset"].pk, world["answered"].pk])).content.decode()
    assert "VISIBLE-TOPIC" not in html and "data-record-metadata" not in html


def test_visible_metadata_setting_api_and_page(world, admin_user):
    client = Client()
    client.force_login(admin_user)
    ds = world["dataset"]
    r = client.patch(reverse("api-dataset", args=[ds.pk]), json.dumps({"visible_metadata": "topic"}),
                     content_type="application/json")
    assert r.status_code == 400 and "visible_metadata" in r.json()
    r = client.patch(reverse("api-dataset", args=[ds.pk]), json.dumps({"visible_metadata": ["topic", "lang"]}),
                     content_type="application/json")
    assert r.status_code == 200 and r.json()["visible_metadata"] == ["topic", "lang"]
    page = client.get(reverse("dataset-settings", args=[ds.pk])).content.decode()
    assert 'value="topic, lang"' in page
    form = {"name": ds.name, "min_submitted": 2, "visible_metadata": " topic ,, gold "}
    assert client.post(reverse("dataset-settings", args=[ds.pk]), form).status_code == 302
    assert Dataset.objects.get(pk=ds.pk).visible_metadata == ["topic", "gold"]
    assert Membership.objects.filter(user=admin_user, role="admin").exists()
    assert Record.objects.filter(dataset=ds).count() == 5 and Response.objects.filter(dataset=ds).exists()
