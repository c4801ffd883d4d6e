"""The cleaning page: each flip with its prompt, both answers, the judge's rationale and a link to
the record; accept or reject it (stored, reversible); the cleaned export applies the decisions."""
import json

import pytest
from django.urls import reverse

from annotation.models import Record
from judging.models import FlipDecision
from tests.helpers import login
from tests.judging.helpers_cleaning import imported_with_flips

pytestmark = pytest.mark.django_db



def _export(c, ds, undecided="keep") -> dict:
    r = c.get(reverse("judging-cleaned-export", args=[ds.pk]) + f"?undecided={undecided}")
    assert r.status_code == 200 and r["Content-Type"] == "application/x-ndjson"
    return {row["external_id"]: row for row in map(json.loads, b"".join(r.streaming_content).decode().splitlines())}


def test_page_shows_texts_rationale_and_record_link_escaped(workspace, admin_user):
    ds = imported_with_flips(workspace)
    html = login(admin_user).get(reverse("judging-cleaning", args=[ds.pk])).content.decode()
    k0 = Record.objects.get(dataset=ds, external_id="k0")
    assert reverse("record-detail", args=[ds.pk, k0.pk]) in html
    assert "GOOD 0" in html and "BAD 0" in html and "Question 0" in html and "Because k0" in html
    assert "<details" in html and "Originally chosen</strong> (Response " in html
    assert "<script>" not in html and "<img src=x" not in html and "&lt;script&gt;" in html
    assert f'data-record="{k0.pk}"' in html and "k2" not in html.split('id="flips"')[1]
    assert reverse("judging-cleaned-export", args=[ds.pk]) + "?undecided=keep" in html


def test_accept_reject_undo_and_the_cleaned_export(workspace, admin_user):
    ds = imported_with_flips(workspace)
    c = login(admin_user)
    k0, k1 = (Record.objects.get(dataset=ds, external_id=e) for e in ("k0", "k1"))
    rows = _export(c, ds)
    assert len(rows) == 4 and all(row["chosen"].startswith("GOOD") and not row["flipped"] for row in rows.values())
    assert set(_export(c, ds, "drop")) == {"k2", "k3"}  # undecided flips left out

    url = reverse("judging-flip-decide", args=[ds.pk, k0.pk])
    r = c.post(url, {"decision": "accepted", "agent": "judge-x"}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and 'data-decision="accepted"' in r.content.decode()
    assert "flip accepted" in r.content.decode() and "<script>" not in r.content.decode()
    c.post(reverse("judging-flip-decide", args=[ds.pk, k1.pk]), {"decision": "rejected", "agent": "judge-x"})
    assert dict(FlipDecision.objects.values_list("record__external_id", "decision")) == {
        "k0": "accepted", "k1": "rejected"}
    rows = _export(c, ds)
    assert rows["k0"]["chosen"].startswith("BAD 0") and rows["k0"]["rejected"].startswith("GOOD 0")
    assert rows["k0"]["flipped"] and rows["k0"]["chosen_field"] != k0.metadata["original_chosen"]
    assert rows["k1"]["chosen"].startswith("GOOD 1") and not rows["k1"]["flipped"]
    assert rows["k2"]["chosen"].startswith("GOOD 2")
    assert set(_export(c, ds, "drop")) == {"k0", "k1", "k2", "k3"}  # every flip is decided now

    # reversible: undo brings k0 back to undecided and the original label
    r = c.post(url, {"decision": "undecided", "agent": "judge-x"}, headers={"HX-Request": "true"})
    assert 'data-decision="undecided"' in r.content.decode()
    assert not FlipDecision.objects.filter(record=k0).exists()
    assert _export(c, ds)["k0"]["chosen"].startswith("GOOD 0")


def test_bad_input_is_refused_and_loses_nothing(workspace, admin_user, annotator):
    ds = imported_with_flips(workspace)
    c = login(admin_user)
    k0 = Record.objects.get(dataset=ds, external_id="k0")
    c.post(reverse("judging-flip-decide", args=[ds.pk, k0.pk]), {"decision": "accepted"})
    r = c.post(reverse("judging-flip-decide", args=[ds.pk, k0.pk]), {"decision": "maybe"},
               headers={"HX-Request": "true"})
    assert r.status_code == 400 and "decision" in r.content.decode()
    assert FlipDecision.objects.get(record=k0).decision == "accepted"
    assert c.get(reverse("judging-cleaned-export", args=[ds.pk]) + "?undecided=x").status_code == 400
    assert login(annotator).post(reverse("judging-flip-decide", args=[ds.pk, k0.pk]),
                                 {"decision": "rejected"}).status_code == 403
    assert FlipDecision.objects.get(record=k0).decision == "accepted"
