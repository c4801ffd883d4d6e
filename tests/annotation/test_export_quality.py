"""Exports and campaign quality: gold records left out unless asked, excluded annotators' answers left out
unless asked (reversible), and a reviewer's verdict replacing the votes unless reviews=ignore, with the
same columns and types in JSONL, CSV and Parquet."""
import csv
import io

import orjson
import pytest
from django.core.management import call_command

from annotation.exports import responses_export, triplets_export, unpaired_export
from annotation.jobs import job_chunk_execute, job_create
from annotation.models import Job, Response, Review
from annotation.quality.standing import standing_set
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, ResponseFactory, UserFactory

pytestmark = pytest.mark.django_db

R1, R2 = "response-1", "response-2"


def ranking(*order):
    return [{"value": name, "rank": k} for k, name in enumerate(order, start=1)]


def answer(record, *order, user=None, status=Response.Status.SUBMITTED):
    return ResponseFactory(record=record, user=user or UserFactory(), values={"ranking": ranking(*order)}, status=status)


def jsonl(resp) -> list[dict]:
    assert resp.status_code == 200, resp.content
    return [orjson.loads(line) for line in b"".join(resp.streaming_content).splitlines()]


def review(record, *order, reviewer=None, decision=Review.Decision.OWN, accepted=None):
    values = {} if decision == Review.Decision.SENT_BACK else (accepted.values if accepted else {"ranking": ranking(*order)})
    return Review.objects.create(record=record, dataset=record.dataset, reviewer=reviewer, decision=decision,
                                 values=values, accepted_response=accepted)


# --- gold -------------------------------------------------------------------------------------------

def test_gold_records_are_left_out_of_every_export_unless_asked(dataset, admin_client_api):
    plain = RecordFactory(dataset=dataset, external_id="plain")
    gold = RecordFactory(dataset=dataset, external_id="gold", is_gold=True, gold_answer={"ranking": ranking(R1, R2)})
    for rec in (plain, gold):
        answer(rec, R1, R2)
    base = f"/api/v1/datasets/{dataset.pk}"
    assert [r["external_id"] for r in triplets_export(dataset=dataset)] == ["plain"]
    assert [r["external_id"] for r in triplets_export(dataset=dataset, include_gold=True)] == ["plain", "gold"]
    assert [r["external_id"] for r in jsonl(admin_client_api.get(f"{base}/triplets/"))] == ["plain"]
    assert [r["external_id"] for r in jsonl(admin_client_api.get(f"{base}/triplets/?include_gold=true"))] == ["plain", "gold"]
    assert {r["external_id"] for r in jsonl(admin_client_api.get(f"{base}/unpaired/"))} == {"plain"}
    assert {r["external_id"] for r in jsonl(admin_client_api.get(f"{base}/unpaired/?include_gold=1"))} == {"plain", "gold"}
    rows = jsonl(admin_client_api.get(f"{base}/responses-export/"))
    assert [(r["external_id"], r["gold"]) for r in rows] == [("plain", False)]
    rows = jsonl(admin_client_api.get(f"{base}/responses-export/?include_gold=true"))
    assert [(r["external_id"], r["gold"]) for r in rows] == [("plain", False), ("gold", True)]
    resp = admin_client_api.get(f"{base}/triplets/?include_gold=perhaps")
    assert resp.status_code == 400 and "include_gold" in resp.json()


def test_gold_left_out_of_the_cli_and_the_job_unless_asked(dataset, admin_user, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    answer(RecordFactory(dataset=dataset, external_id="plain"), R2, R1)
    answer(RecordFactory(dataset=dataset, external_id="gold", is_gold=True), R2, R1)
    out = tmp_path / "t.jsonl"
    call_command("export_triplets", dataset.pk, "--out", str(out), "--quiet")
    assert [orjson.loads(x)["external_id"] for x in out.read_bytes().splitlines()] == ["plain"]
    call_command("export_triplets", dataset.pk, "--out", str(out), "--quiet", "--include-gold")
    assert [orjson.loads(x)["external_id"] for x in out.read_bytes().splitlines()] == ["plain", "gold"]
    for params, expected in (({}, ["plain"]), ({"include_gold": True}, ["plain", "gold"])):
        job = job_create(kind="export", workspace=dataset.workspace, dataset=dataset, created_by=admin_user,
                         params={"export": "triplets", **params}, start=False)
        assert job.total == len(expected)  # records walked: gold ones only when asked
        assert job_chunk_execute(job_id=job.pk, index=0) == "ok"
        job.refresh_from_db()
        assert job.status == Job.Status.SUCCEEDED
        with open(job.output_file, "rb") as f:
            assert [orjson.loads(x)["external_id"] for x in f.read().splitlines()] == expected


# --- excluded annotators ------------------------------------------------------------------------------

def test_an_excluded_annotators_votes_flip_the_majority_only_when_included(dataset, admin_user, admin_client_api):
    rec = RecordFactory(dataset=dataset)
    spammer, other, careful = UserFactory(username="spammer"), UserFactory(username="other"), UserFactory(username="careful")
    spam_answer = answer(rec, R2, R1, user=spammer)
    answer(rec, R2, R1, user=other)
    answer(rec, R1, R2, user=careful)
    [row] = triplets_export(dataset=dataset)  # 2 to 1 for response-2
    assert (row["chosen_field"], row["annotators"], row["agreement"]) == (R2, 3, pytest.approx(2 / 3))
    standing_set(dataset=dataset, user=spammer, excluded=True, by=admin_user)
    standing_set(dataset=dataset, user=other, excluded=True, by=admin_user)
    [row] = triplets_export(dataset=dataset)  # only the careful annotator's vote is left
    assert (row["chosen_field"], row["annotators"], row["agreement"], row["vote_margin"]) == (R1, 1, 1.0, 1.0)
    [row] = triplets_export(dataset=dataset, include_excluded=True)
    assert (row["chosen_field"], row["annotators"]) == (R2, 3)
    [row] = jsonl(admin_client_api.get(f"/api/v1/datasets/{dataset.pk}/triplets/?include_excluded=true"))
    assert row["chosen_field"] == R2
    assert [r["user"] for r in responses_export(dataset=dataset)] == ["careful"]
    assert len(list(responses_export(dataset=dataset, include_excluded=True))) == 3
    # reversible: including them again restores the majority; nothing was deleted
    standing_set(dataset=dataset, user=spammer, excluded=False, by=admin_user)
    standing_set(dataset=dataset, user=other, excluded=False, by=admin_user)
    [row] = triplets_export(dataset=dataset)
    assert row["chosen_field"] == R2 and Response.objects.filter(pk=spam_answer.pk).exists()


def test_excluded_annotators_are_left_out_of_the_weighted_vote_and_its_fit(dataset, admin_user):
    careful, spam1, spam2 = UserFactory(), UserFactory(), UserFactory()
    for i in range(4):
        rec = RecordFactory(dataset=dataset, external_id=f"w{i}")
        answer(rec, R1, R2, user=careful)
        answer(rec, R2, R1, user=spam1)
        answer(rec, R2, R1, user=spam2)
    assert {r["chosen_field"] for r in triplets_export(dataset=dataset, resolve="weighted")} == {R2}
    for user in (spam1, spam2):
        standing_set(dataset=dataset, user=user, excluded=True, by=admin_user)
    rows = list(triplets_export(dataset=dataset, resolve="weighted"))
    assert [(r["chosen_field"], r["annotators"]) for r in rows] == [(R1, 1)] * 4


def test_removed_annotators_are_left_out_when_the_dataset_says_so(dataset, workspace):
    rec = RecordFactory(dataset=dataset)
    member, gone = UserFactory(username="member"), UserFactory(username="gone")
    MembershipFactory(user=member, workspace=workspace)
    answer(rec, R1, R2, user=member)
    answer(rec, R2, R1, user=gone)
    answer(rec, R2, R1, user=UserFactory())  # also not a member
    assert [r["chosen_field"] for r in triplets_export(dataset=dataset)] == [R2]
    dataset.exclude_removed_annotators = True
    dataset.save()
    [row] = triplets_export(dataset=dataset)
    assert (row["chosen_field"], row["annotators"]) == (R1, 1)


# --- reviews ------------------------------------------------------------------------------------------

def test_a_reviewed_verdict_overrides_a_two_to_one_majority(dataset, admin_client_api):
    rec = RecordFactory(dataset=dataset, external_id="disputed")
    answer(rec, R2, R1)
    answer(rec, R2, R1)
    answer(rec, R1, R2)
    other = RecordFactory(dataset=dataset, external_id="other")
    answer(other, R2, R1)
    review(rec, R1, R2, reviewer=UserFactory(username="rita"))
    rows = list(triplets_export(dataset=dataset))
    assert [(r["external_id"], r["chosen_field"], r["reviewed"], r["reviewed_by"]) for r in rows] == [
        ("disputed", R1, True, "rita"), ("other", R2, False, None)]
    # the verdict counts as the record's only answer
    assert (rows[0]["annotators"], rows[0]["agreement"], rows[0]["vote_margin"], rows[0]["rank_margin"]) == (1, 1.0, 1.0, 1.0)
    assert rows[0]["chosen"] == rec.fields[R1] and rows[0]["rejected"] == rec.fields[R2]
    [row, _] = triplets_export(dataset=dataset, reviews="ignore")
    assert (row["chosen_field"], row["annotators"], row["agreement"], row["reviewed"], row["reviewed_by"]) == (
        R2, 3, pytest.approx(2 / 3), False, None)
    [row, _] = jsonl(admin_client_api.get(f"/api/v1/datasets/{dataset.pk}/triplets/?reviews=ignore"))
    assert row["chosen_field"] == R2
    resp = admin_client_api.get(f"/api/v1/datasets/{dataset.pk}/triplets/?reviews=sometimes")
    assert resp.status_code == 400 and "reviews" in resp.json()
    # the unpaired (KTO) rows follow the verdict too
    kto = [(r["field"], r["label"], r["reviewed"], r["reviewed_by"]) for r in unpaired_export(dataset=dataset)
           if r["external_id"] == "disputed"]
    assert kto == [(R1, True, True, "rita"), (R2, False, True, "rita")]


def test_accepted_answer_is_the_verdict_and_sent_back_is_ignored(dataset):
    rec = RecordFactory(dataset=dataset)
    answer(rec, R2, R1)
    answer(rec, R2, R1)
    minority = answer(rec, R1, R2)
    decided = review(rec, reviewer=UserFactory(username="rob"), decision=Review.Decision.ACCEPTED, accepted=minority)
    [row] = triplets_export(dataset=dataset)
    assert (row["chosen_field"], row["reviewed"], row["reviewed_by"]) == (R1, True, "rob")
    decided.decision, decided.values, decided.accepted_response = Review.Decision.SENT_BACK, {}, None
    decided.save()
    [row] = triplets_export(dataset=dataset)
    assert (row["chosen_field"], row["annotators"], row["reviewed"], row["reviewed_by"]) == (R2, 3, False, None)


def test_a_verdict_on_a_record_without_votes_and_a_deleted_reviewer(dataset):
    rec = RecordFactory(dataset=dataset)
    reviewer = UserFactory(username="gone")
    review(rec, R2, R1, reviewer=reviewer)
    reviewer.delete()  # the review stays, its reviewer is null
    [row] = triplets_export(dataset=dataset)
    assert (row["chosen_field"], row["reviewed"], row["reviewed_by"], row["annotators"]) == (R2, True, None, 1)
    assert list(triplets_export(dataset=dataset, reviews="ignore")) == []  # no votes to resolve


def test_responses_export_carries_the_review_beside_each_response(dataset, admin_client_api):
    rec = RecordFactory(dataset=dataset, external_id="r")
    first = answer(rec, R2, R1, user=UserFactory(username="a"))
    Response.objects.filter(pk=first.pk).update(suggestion_shown=True)
    answer(rec, R1, R2, user=UserFactory(username="b"))
    answer(RecordFactory(dataset=dataset, external_id="plain"), R1, R2, user=UserFactory(username="c"))
    review(rec, reviewer=UserFactory(username="rita"), decision=Review.Decision.ACCEPTED, accepted=first)
    rows = jsonl(admin_client_api.get(f"/api/v1/datasets/{dataset.pk}/responses-export/"))
    got = [(r["user"], r["review_decision"], r["reviewed_by"], r["review_accepted"]) for r in rows]
    assert [r["suggestion_shown"] for r in rows] == [True, None, None]  # None: not recorded
    assert got == [("a", "accepted", "rita", True), ("b", "accepted", "rita", False), ("c", None, None, False)]
    assert orjson.loads(rows[0]["review_values"]) == {"ranking": ranking(R2, R1)} and rows[2]["review_values"] is None


# --- one schema ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["triplets", "unpaired", "responses-export"])
def test_review_columns_have_the_same_names_and_types_in_jsonl_csv_and_parquet(dataset, admin_client_api, path):
    import pyarrow.parquet as pq

    reviewed = RecordFactory(dataset=dataset, external_id="reviewed")
    answer(reviewed, R2, R1)
    review(reviewed, R1, R2, reviewer=UserFactory(username="rita"))
    answer(RecordFactory(dataset=dataset, external_id="voted"), R2, R1)
    url = f"/api/v1/datasets/{dataset.pk}/{path}/?format="
    rows = jsonl(admin_client_api.get(url + "jsonl"))
    resp = admin_client_api.get(url + "csv")
    table = list(csv.reader(io.StringIO(b"".join(resp.streaming_content).decode())))
    parquet = pq.read_table(io.BytesIO(b"".join(admin_client_api.get(url + "parquet").streaming_content)))
    assert list(rows[0]) == table[0] == parquet.column_names
    names = ("reviewed", "reviewed_by") if path != "responses-export" else ("review_decision", "reviewed_by")
    assert set(names) <= set(table[0])
    by_id = {r["external_id"]: r for r in rows}
    expected = {"reviewed": (True, False), "reviewed_by": ("rita", None), "review_decision": ("own", None)}
    for name in names:
        assert (by_id["reviewed"][name], by_id["voted"][name]) == expected[name]
        column = parquet.column(name).to_pylist()
        ids = parquet.column("external_id").to_pylist()
        assert (column[ids.index("reviewed")], column[ids.index("voted")]) == expected[name]
    schema = {f.name: str(f.type) for f in parquet.schema}
    assert schema["reviewed_by"] == "string"
    assert schema.get("reviewed", "bool") == "bool"


def test_a_graded_verdict_gives_its_own_strength_and_can_call_both_bad():
    from annotation.models import Question
    from annotation.validation import question_specs_validate

    ds = DatasetFactory()
    Question.objects.filter(dataset=ds).delete()
    scale = [{"label": "much better", "value": 3}, {"label": "better", "value": 1}, {"label": "same", "value": 0}]
    [q] = question_specs_validate([{"name": "graded", "title": "Which is better?", "kind": "preference",
                                    "options": {"compares": [R1, R2], "scale": scale, "both_bad": True}}],
                                  {"prompt", R1, R2})
    Question.objects.create(dataset=ds, **q)

    def prefer(rec, field, strength, both_bad=False):
        value = {"preferred": field, "strength": strength, **({"both_bad": True} if both_bad else {})}
        return ResponseFactory(record=rec, user=UserFactory(), values={"graded": value})

    settled, bad = RecordFactory(dataset=ds, external_id="settled"), RecordFactory(dataset=ds, external_id="bad")
    for rec in (settled, bad):
        prefer(rec, R2, 1)
        prefer(rec, R2, 1)
        prefer(rec, R1, 3)
    rita = UserFactory(username="rita")
    Review.objects.create(record=settled, dataset=ds, reviewer=rita, decision=Review.Decision.OWN,
                          values={"graded": {"preferred": R1, "strength": 3}})
    Review.objects.create(record=bad, dataset=ds, reviewer=rita, decision=Review.Decision.OWN,
                          values={"graded": {"preferred": R1, "strength": 1, "both_bad": True}})
    rows = list(triplets_export(dataset=ds, margin_from="strength"))
    assert [(r["external_id"], r["chosen_field"], r["strength_margin"], r["reviewed"]) for r in rows] == [
        ("settled", R1, 3.0, True)]  # the verdict calls "bad" both bad: left out
    rows = list(triplets_export(dataset=ds, margin_from="strength", include_both_bad=True))
    assert [(r["external_id"], r["chosen_field"], r["strength_margin"]) for r in rows] == [
        ("settled", R1, 3.0), ("bad", R1, 1.0)]
    # the votes: response-2 by 2 to 1, strength (1 + 1 - 3) / 3 signed toward response-2
    rows = list(triplets_export(dataset=ds, margin_from="strength", reviews="ignore"))
    assert [(r["external_id"], r["chosen_field"], r["strength_margin"], r["reviewed"]) for r in rows] == [
        ("settled", R2, pytest.approx(-1 / 3), False), ("bad", R2, pytest.approx(-1 / 3), False)]


def test_verdicts_set_through_the_review_services_reach_the_export(dataset):
    from annotation.quality.review import review_accept, review_send_back, review_set

    rec = RecordFactory(dataset=dataset)
    answer(rec, R2, R1)
    answer(rec, R2, R1)
    minority = answer(rec, R1, R2)
    rita = UserFactory(username="rita")
    MembershipFactory(user=rita, workspace=dataset.workspace, role="reviewer")
    review_accept(record=rec, response=minority, reviewer=rita)
    assert [(r["chosen_field"], r["reviewed_by"]) for r in triplets_export(dataset=dataset)] == [(R1, "rita")]
    review_set(record=rec, values={"ranking": ranking(R2, R1)}, reviewer=rita)
    assert [(r["chosen_field"], r["annotators"], r["reviewed"]) for r in triplets_export(dataset=dataset)] == [
        (R2, 1, True)]
    review_send_back(record=rec, reviewer=rita)
    assert [(r["chosen_field"], r["annotators"], r["reviewed"]) for r in triplets_export(dataset=dataset)] == [
        (R2, 3, False)]

