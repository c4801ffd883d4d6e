"""Agreement metrics on hand-computed examples (annotation.agreement), and the dashboard built on them."""
import re

import pytest
from django.test import Client
from django.urls import reverse

from annotation.agreement import (
    annotator_pairs,
    dataset_quality,
    krippendorff_alpha_ordinal,
    median,
    overall_agreement,
    ranking_agreement,
    ranks_from_value,
    record_disagreements,
)
from annotation.models import Membership
from annotation.services import response_upsert
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, UserFactory

A_FIRST = {"r1": 1, "r2": 2}
B_FIRST = {"r1": 2, "r2": 1}


def test_ranking_from_value_accepts_the_stored_forms():
    assert ranks_from_value([{"value": "x", "rank": 2}, {"value": "y", "rank": 1}]) == {"x": 2, "y": 1}
    assert ranks_from_value(["y", "x"]) == {"y": 1, "x": 2}
    assert ranks_from_value(None) is None
    assert ranks_from_value([{"value": "x"}]) is None
    assert ranks_from_value(3) is None


def test_ranking_agreement_counts_pairs_in_the_same_order():
    # 3 fields -> 3 pairs: (a,b) same, (a,c) same, (b,c) flipped -> 2/3
    assert ranking_agreement({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 3, "c": 2}) == pytest.approx(2 / 3)
    assert ranking_agreement(A_FIRST, A_FIRST) == 1.0
    assert ranking_agreement(A_FIRST, B_FIRST) == 0.0
    # a tie only agrees with a tie
    assert ranking_agreement({"r1": 1, "r2": 1}, A_FIRST) == 0.0
    assert ranking_agreement({"r1": 1, "r2": 1}, {"r1": 2, "r2": 2}) == 1.0
    assert ranking_agreement({"a": 1}, {"b": 1}) is None


def test_pairwise_agreement_by_hand():
    # ann x and y share records 1, 2, 3 and agree on 1 and 2; x and z share record 1 only, disagree.
    triples = [
        (1, "x", A_FIRST), (1, "y", A_FIRST), (1, "z", B_FIRST),
        (2, "x", B_FIRST), (2, "y", B_FIRST),
        (3, "x", A_FIRST), (3, "y", B_FIRST),
        (4, "y", A_FIRST),  # alone: no pair
    ]
    pairs = {(p.a, p.b): (p.records, p.agreement) for p in annotator_pairs(triples)}
    assert pairs == {("x", "y"): (3, pytest.approx(2 / 3)), ("x", "z"): (1, 0.0), ("y", "z"): (1, 0.0)}
    # weighted by shared records: (2/3*3 + 0 + 0) / 5 = 0.4
    assert overall_agreement(annotator_pairs(triples)) == pytest.approx(0.4)
    assert overall_agreement([]) is None


def test_krippendorff_alpha_two_ranks_by_hand():
    """3 records, 2 annotators, 2 responses; they agree on two records and swap on the third.

    Units (record, field): 6, each with two values. Coincidences: o11 = 4, o22 = 4, o12 = o21 = 2;
    n1 = n2 = 6, n = 12. D_o = 4/12 = 1/3; D_e = 2*n1*n2 / (n(n-1)) = 72/132 = 6/11.
    alpha = 1 - D_o/D_e = 1 - 11/18 = 7/18 (with two values the ordinal metric is a constant).
    """
    triples = [(1, "x", A_FIRST), (1, "y", A_FIRST), (2, "x", A_FIRST), (2, "y", A_FIRST),
               (3, "x", A_FIRST), (3, "y", B_FIRST)]
    assert krippendorff_alpha_ordinal(triples) == pytest.approx(7 / 18)


def test_krippendorff_alpha_ordinal_three_ranks_by_hand():
    """2 annotators rank 3 responses of one record: x = (1, 2, 3), y = (1, 3, 2).

    Values 1, 2, 3 each appear twice (n_1 = n_2 = n_3 = 2, n = 6). Ordinal distances:
    d(1,2) = (n1/2 + n2 + ... )^2 form: delta(c,k) = (sum_{g=c..k} n_g - (n_c + n_k)/2)^2
      d(1,2) = (2+2 - 2)^2 = 4, d(2,3) = 4, d(1,3) = (2+2+2 - 2)^2 = 16.
    Observed: units (a: 1,1), (b: 2,3), (c: 3,2): o23 = o32 = 1 each from b and c -> 2 each.
      D_o = (o23*d23 + o32*d32) / n = (2*4 + 2*4) / 6 = 16/6.
    Expected: D_e = sum_{c!=k} n_c n_k d(c,k) / (n(n-1))
      = 2*(2*2*4 + 2*2*4 + 2*2*16) / 30 = 2*(16+16+64)/30 = 192/30.
    alpha = 1 - (16/6) / (192/30) = 1 - 80/192 = 1 - 5/12 = 7/12.
    """
    triples = [(1, "x", {"a": 1, "b": 2, "c": 3}), (1, "y", {"a": 1, "b": 3, "c": 2})]
    assert krippendorff_alpha_ordinal(triples) == pytest.approx(7 / 12)


def test_krippendorff_alpha_undefined_cases():
    assert krippendorff_alpha_ordinal([]) is None
    assert krippendorff_alpha_ordinal([(1, "x", A_FIRST), (2, "y", A_FIRST)]) is None  # no shared record
    assert krippendorff_alpha_ordinal([(1, "x", {"a": 1, "b": 1}), (1, "y", {"a": 1, "b": 1})]) is None  # one value
    assert krippendorff_alpha_ordinal([(1, "x", A_FIRST), (1, "y", A_FIRST), (2, "x", B_FIRST),
                                       (2, "y", B_FIRST)]) == pytest.approx(1.0)


def test_record_disagreements_lowest_first():
    triples = [
        (1, "x", A_FIRST), (1, "y", A_FIRST),                       # agree: not listed
        (2, "x", A_FIRST), (2, "y", B_FIRST),                       # 0.0
        (3, "x", A_FIRST), (3, "y", A_FIRST), (3, "z", B_FIRST),    # pairs: 1, 0, 0 -> 1/3
    ]
    out = record_disagreements(triples)
    assert [d.record for d in out] == [2, 3]
    assert out[0].agreement == 0.0 and out[1].agreement == pytest.approx(1 / 3)
    assert out[1].top_choices == {"r1": 2, "r2": 1}
    assert record_disagreements(triples, limit=1)[0].record == 2


def test_median():
    assert median([]) is None
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4, 1, 3, 2]) == 2.5


RANK = {True: {"ranking": ["response-1", "response-2"]}, False: {"ranking": ["response-2", "response-1"]}}


@pytest.mark.django_db
def test_dataset_quality_in_a_constant_number_of_queries(django_assert_num_queries):
    ds = DatasetFactory(min_submitted=2)
    x, y = UserFactory(username="x"), UserFactory(username="y")
    recs = [RecordFactory(dataset=ds) for _ in range(4)]
    # x and y agree on records 0 and 1, disagree on 2; record 3: x discards, y drafts
    for i, (vx, vy) in enumerate([(True, True), (False, False), (True, False)]):
        response_upsert(user=x, record=recs[i], values=RANK[vx], status="submitted", duration=10 + i)
        response_upsert(user=y, record=recs[i], values=RANK[vy], status="submitted", duration=20)
    response_upsert(user=x, record=recs[3], values={}, status="discarded")
    response_upsert(user=y, record=recs[3], values={}, status="draft")
    with django_assert_num_queries(4):
        q = dataset_quality(ds)
    by_name = {a.username: a for a in q.annotators}
    assert (by_name["x"].submitted, by_name["x"].discarded, by_name["x"].draft) == (3, 1, 0)
    assert (by_name["y"].submitted, by_name["y"].discarded, by_name["y"].draft) == (3, 0, 1)
    assert by_name["x"].median_seconds == 11.0 and by_name["y"].median_seconds == 20.0
    assert q.overall_agreement == pytest.approx(2 / 3)
    assert q.records_with_overlap == 3
    assert [d.record for d in q.disagreements] == [recs[2].pk]
    assert q.alpha == pytest.approx(7 / 18)  # the same data as the two-rank hand example


@pytest.mark.django_db
def test_dashboard_shows_counts_agreement_and_disagreements(workspace, admin_user):
    ds = DatasetFactory(workspace=workspace, min_submitted=2)
    x, y = UserFactory(username="xena"), UserFactory(username="yuri")
    for u in (x, y):
        MembershipFactory(user=u, workspace=workspace, role=Membership.Role.ANNOTATOR)
    recs = [RecordFactory(dataset=ds) for _ in range(5)]
    response_upsert(user=x, record=recs[0], values=RANK[True], status="submitted")
    response_upsert(user=y, record=recs[0], values=RANK[False], status="submitted")
    response_upsert(user=x, record=recs[1], values=RANK[True], status="submitted")
    c = Client()
    c.force_login(admin_user)
    html = c.get(reverse("dashboard", args=[ds.pk])).content.decode()
    assert 'data-stat="records">5<' in html
    assert 'data-stat="completed">1<' in html
    assert 'data-stat="in-progress">1<' in html  # recs[1]: one of two submissions
    assert 'data-annotator="xena"' in html and 'data-annotator="yuri"' in html
    assert re.search(r'xena · yuri</td><td class="num">1</td><td class="num">0%</td>', html)
    assert reverse("record-detail", args=[ds.pk, recs[0].pk]) in html  # disagreement row links to the record
    for fmt in ("jsonl", "csv", "parquet"):
        for style in ("standard", "conversational"):
            assert f'data-export="{fmt}-{style}"' in html
    stats = c.get(reverse("dashboard-stats", args=[ds.pk]))
    assert stats.status_code == 200 and b'id="dashboard-stats"' in stats.content and b"<html" not in stats.content
    detail = c.get(reverse("record-detail", args=[ds.pk, recs[0].pk])).content.decode()
    # rankings read in the fields' titles, as on the rest of the admin pages
    assert "xena" in detail and "Response 1 &gt; Response 2" in detail and "Response 2 &gt; Response 1" in detail


@pytest.mark.django_db
def test_dashboard_says_why_agreement_is_empty_and_names_fields_by_title(workspace, admin_user):
    c = Client()
    c.force_login(admin_user)
    solo = DatasetFactory(workspace=workspace, min_submitted=1)
    html = c.get(reverse("dashboard", args=[solo.pk])).content.decode()
    assert 'data-hint="agreement">No agreement: the overlap is 1, so each record goes to one annotator' in html
    duo = DatasetFactory(workspace=workspace, min_submitted=2)
    html = c.get(reverse("dashboard-stats", args=[duo.pk])).content.decode()
    assert "needs records ranked by two annotators (overlap 2)" in html
    x, y = UserFactory(username="xena"), UserFactory(username="yuri")
    rec = RecordFactory(dataset=duo)
    response_upsert(user=x, record=rec, values=RANK[True], status="submitted")
    response_upsert(user=y, record=rec, values=RANK[False], status="submitted")
    html = c.get(reverse("dashboard-stats", args=[duo.pk])).content.decode()
    assert 'data-hint="agreement"' not in html  # a figure now, no excuse needed
    table = html.split("Where annotators disagree")[1]
    assert "Response 1 × 1" in table and "Response 2 × 1" in table and "response-1" not in table
