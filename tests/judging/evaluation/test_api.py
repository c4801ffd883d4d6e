"""Evaluation API: a full simulated campaign through the public API, leaderboards,
best-of-n, permissions and bad input."""
import json

import pytest

from annotation.models import Membership, Suggestion
from tests.conftest import client_for
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, UserFactory, WorkspaceFactory
from tests.judging.evaluation.helpers import judge_responder, make_judge


@pytest.fixture
def staff(db):
    return UserFactory(username="staff", is_staff=True)


def test_full_simulated_campaign_through_the_api_ends_with_triplets(staff, llm_server, settings):
    settings.PREFLAB_LLM_BACKOFF = 0.01
    llm_server.responder = judge_responder
    api = client_for(staff)
    ws = api.post("/api/v1/workspaces/", {"name": "sim-campaign"}, format="json")
    assert ws.status_code == 201, ws.content
    ws_id = ws.json()["id"]
    r = api.post("/api/v1/datasets/", {
        "workspace": ws_id, "name": "rehearsal", "min_submitted": 3, "allow_ties": False,
        "fields": [{"name": "prompt", "kind": "text"}, {"name": "response-1", "kind": "markdown"},
                   {"name": "response-2", "kind": "markdown"}],
        "questions": [{"name": "ranking", "kind": "ranking", "options": {"values": ["response-1", "response-2"]}}],
    }, format="json")
    assert r.status_code == 201, r.content
    ds_id = r.json()["id"]
    records = [{"external_id": f"p{i}", "fields": {"prompt": f"Question {i}?",
                                                   "response-1": f"short answer quality={2 + i % 2}",
                                                   "response-2": f"a longer answer quality={4 - (i % 3 == 0) * 3}"},
                "metadata": {"response-1": {"model": "base-7b", "endpoint": "e"},
                             "response-2": {"model": "tuned-7b", "endpoint": "e"}}} for i in range(12)]
    r = api.post(f"/api/v1/datasets/{ds_id}/records/", records, format="json")
    assert r.status_code in (200, 201), r.content
    assert api.post(f"/api/v1/datasets/{ds_id}/publish/").status_code == 200
    r = api.post("/api/v1/endpoints/", {"workspace": ws_id, "name": "judge-llm", "model": "judge-model",
                                        "base_url": llm_server.base_url, "max_retries": 1, "timeout": 5}, format="json")
    assert r.status_code == 201, r.content
    for name, method in (("pairwise-judge", "pairwise"), ("uf-judge", "ultrafeedback")):
        r = api.post("/api/v1/judges/", {"workspace": ws_id, "name": name, "endpoint": "judge-llm", "method": method},
                     format="json")
        assert r.status_code == 201, r.content
    for name, judge, p, seed in (("ann-a", "pairwise-judge", 0.0, 1), ("ann-b", "uf-judge", 0.0, 2),
                                 ("ann-c", "uf-judge", 0.25, 3)):
        r = api.post(f"/api/v1/workspaces/{ws_id}/simulated-annotators/",
                     {"name": name, "judge": judge, "flip_probability": p, "seed": seed}, format="json")
        assert r.status_code == 201, r.content
        assert r.json()["username"] == f"sim-{name}"
    r = api.post(f"/api/v1/datasets/{ds_id}/simulate/", {"wait": True}, format="json")
    assert r.status_code == 200, r.content
    job = r.json()
    assert job["status"] == "succeeded" and job["done"] == 36 and job["failed"] == 0

    # the simulated users are members flagged simulated, and answered like anyone
    r = api.get(f"/api/v1/datasets/{ds_id}/agreement/")
    assert r.status_code == 200
    agreement = r.json()
    assert agreement["submitted_responses"] == 36 and agreement["records"] == 12
    assert {a["username"] for a in agreement["annotators"]} == {"sim-ann-a", "sim-ann-b", "sim-ann-c"}
    assert all(a["simulated"] for a in agreement["annotators"])
    by = {a["username"]: a for a in agreement["annotators"]}
    # a and b have p = 0 and the same preferences: they agree perfectly with each other
    pair = next(p for p in agreement["pairs"] if {p["a"], p["b"]} == {"sim-ann-a", "sim-ann-b"})
    assert pair["value"] == 1.0 and pair["n"] == 12
    assert by["sim-ann-a"]["leave_one_out"]["n"] == 12

    # leaderboard of the two generators from these preferences
    r = api.get(f"/api/v1/datasets/{ds_id}/leaderboard/?reference=base-7b&source=human")
    assert r.status_code == 200, r.content
    rows = {row["model"]: row for row in r.json()["rows"]}
    assert rows["tuned-7b"]["n"] == 12 and rows["base-7b"]["is_reference"]
    csv_resp = api.get(f"/api/v1/datasets/{ds_id}/leaderboard/?reference=base-7b&format=csv")
    assert csv_resp.status_code == 200 and csv_resp["Content-Type"].startswith("text/csv")
    assert b"tuned-7b" in csv_resp.content

    # and the triplets come out of the normal export
    r = api.get(f"/api/v1/datasets/{ds_id}/triplets/?format=jsonl")
    assert r.status_code == 200
    lines = [json.loads(x) for x in b"".join(r.streaming_content).decode().splitlines() if x.strip()]
    assert len(lines) == 12
    for row in lines:
        quality_chosen = int(row["chosen"].rsplit("=", 1)[1])
        quality_rejected = int(row["rejected"].rsplit("=", 1)[1])
        assert quality_chosen > quality_rejected  # majority of 3 with two noiseless annotators = the judge
        assert row["annotators"] == 3


def _ws_with_admin():
    ws = WorkspaceFactory()
    admin = UserFactory()
    MembershipFactory(user=admin, workspace=ws, role=Membership.Role.ADMIN)
    return ws, admin


@pytest.mark.django_db
def test_permissions_other_workspace_404_annotator_403():
    ws, admin = _ws_with_admin()
    other_ws, other_admin = _ws_with_admin()
    annotator = UserFactory()
    MembershipFactory(user=annotator, workspace=ws)
    dataset = DatasetFactory(workspace=ws)
    for path in ("agreement", "leaderboard", "best-of-n"):
        url = f"/api/v1/datasets/{dataset.pk}/{path}/"
        assert client_for(other_admin).get(url).status_code == 404
        assert client_for(annotator).get(url).status_code == 403
    assert client_for(other_admin).get(f"/api/v1/workspaces/{ws.pk}/simulated-annotators/").status_code == 404
    assert client_for(other_admin).post(f"/api/v1/datasets/{dataset.pk}/simulate/", {}, format="json").status_code == 404
    assert client_for(annotator).post("/api/v1/leaderboards/alpaca-eval/?reference=x", [], format="json").status_code == 403
    assert client_for(admin).get(f"/api/v1/datasets/{dataset.pk}/agreement/").status_code == 200


@pytest.mark.django_db
def test_alpaca_eval_endpoint_json_csv_and_errors():
    _ws, admin = _ws_with_admin()
    api = client_for(admin)
    items = [{"instruction": "i", "output_1": "aa", "output_2": "bbbb", "generator_1": "ref", "generator_2": "m",
              "preference": p} for p in (2, 1, 1.5, 0, 1.25)]
    r = api.post("/api/v1/leaderboards/alpaca-eval/?reference=ref", items, format="json")
    assert r.status_code == 200, r.content
    row = next(x for x in r.json()["rows"] if x["model"] == "m")
    # scores for m: 1, 0, .5, .5, .25 -> 45%
    assert row["win_rate"] == pytest.approx(45.0) and (row["wins"], row["losses"], row["ties"]) == (1, 2, 2)
    r = api.post("/api/v1/leaderboards/alpaca-eval/?format=csv",
                 {"annotations": items, "reference": "ref", "length_controlled": True}, format="json")
    assert r.status_code == 200 and r.content.decode().splitlines()[0].startswith("model,win_rate")
    bad = items + [{**items[0], "preference": 0.4}]
    r = api.post("/api/v1/leaderboards/alpaca-eval/?reference=ref", bad, format="json")
    assert r.status_code == 400 and "[5].preference" in r.json()
    r = api.post("/api/v1/leaderboards/alpaca-eval/", items, format="json")
    assert r.status_code == 400 and "reference" in r.json()
    r = api.post("/api/v1/leaderboards/alpaca-eval/?reference=ref&format=xml", items, format="json")
    assert r.status_code == 400 and "format" in r.json()


@pytest.mark.django_db
def test_leaderboard_bad_source_and_no_models():
    ws, admin = _ws_with_admin()
    dataset = DatasetFactory(workspace=ws)
    RecordFactory(dataset=dataset)
    api = client_for(admin)
    r = api.get(f"/api/v1/datasets/{dataset.pk}/leaderboard/?source=robots")
    assert r.status_code == 400 and "source" in r.json()
    r = api.get(f"/api/v1/datasets/{dataset.pk}/leaderboard/")
    assert r.status_code == 400 and "reference" in r.json()


def test_best_of_n_api_streams_the_judges_best(db):
    ws, admin = _ws_with_admin()
    dataset = DatasetFactory(workspace=ws, responses=3)
    q = dataset.questions.get(name="ranking")
    meta = {f"response-{i}": {"model": f"m{i}"} for i in (1, 2, 3)}
    r1 = RecordFactory(dataset=dataset, metadata=meta,
                       fields={"prompt": "P1", "response-1": "one", "response-2": "two", "response-3": "three"})
    r2 = RecordFactory(dataset=dataset, metadata=meta,
                       fields={"prompt": "P2", "response-1": "uno", "response-2": "dos", "response-3": "tres"})
    r3 = RecordFactory(dataset=dataset, metadata=meta,
                       fields={"prompt": "P3", "response-1": "x", "response-2": "y", "response-3": "z"})
    RecordFactory(dataset=dataset, metadata=meta,
                  fields={"prompt": "P4", "response-1": "a", "response-2": "b", "response-3": "c"})  # not judged
    rank = lambda order: [{"value": f, "rank": k} for f, k in order]  # noqa: E731
    Suggestion.objects.create(record=r1, question=q, agent="uf", score=1.0,
                              value=rank([("response-2", 1), ("response-1", 2), ("response-3", 3)]),
                              raw={"ratings": {"response-1": 3, "response-2": 4, "response-3": 2}})
    # a top tie broken by ratings? no ratings here -> left out unless include_ties
    Suggestion.objects.create(record=r2, question=q, agent="uf", score=0.0,
                              value=rank([("response-1", 1), ("response-3", 1), ("response-2", 2)]))
    # two judges: mean rank picks response-3 (1 and 2) over response-1 (2 and 1)? tie -> ratings break it
    Suggestion.objects.create(record=r3, question=q, agent="uf", value=rank([("response-3", 1), ("response-1", 2), ("response-2", 3)]),
                              raw={"ratings": {"response-1": 4, "response-2": 1, "response-3": 5}})
    Suggestion.objects.create(record=r3, question=q, agent="pw", value=rank([("response-1", 1), ("response-3", 2), ("response-2", 3)]),
                              raw={"ratings": {"response-1": 4, "response-2": 1, "response-3": 4}})
    api = client_for(admin)
    r = api.get(f"/api/v1/datasets/{dataset.pk}/best-of-n/")
    assert r.status_code == 200 and r["Content-Type"] == "application/x-ndjson"
    rows = [json.loads(x) for x in b"".join(r.streaming_content).decode().splitlines()]
    by_prompt = {row["prompt"]: row for row in rows}
    assert set(by_prompt) == {"P1", "P3"}
    assert by_prompt["P1"]["completion"] == "two" and by_prompt["P1"]["model"] == "m2" and by_prompt["P1"]["score"] == 4
    assert by_prompt["P1"]["margin"] == 1 and by_prompt["P1"]["n"] == 3
    assert by_prompt["P3"]["completion"] == "z" and by_prompt["P3"]["score"] == 4.5 and by_prompt["P3"]["agents"] == ["pw", "uf"]
    r = api.get(f"/api/v1/datasets/{dataset.pk}/best-of-n/?include_ties=true&agent=uf&min_score=4.2")
    rows = [json.loads(x) for x in b"".join(r.streaming_content).decode().splitlines()]
    assert [row["prompt"] for row in rows] == ["P3"]  # P1 (4) below min_score, P2 has no rating score
    r = api.get(f"/api/v1/datasets/{dataset.pk}/best-of-n/?min_score=abc")
    assert r.status_code == 400 and "min_score" in r.json()
    r = api.get(f"/api/v1/datasets/{dataset.pk}/best-of-n/?agent=nobody")
    assert r.status_code == 400 and "agent" in r.json()


def test_annotate_pairs_api(workspace, admin_user, llm_server, llm_endpoint):
    llm_server.responder = judge_responder
    from judging.evaluation.simulation import simulated_annotator_create

    judge = make_judge(workspace, llm_endpoint(), method="pairwise")
    simulated_annotator_create(workspace=workspace, name="solo", judge=judge)
    api = client_for(admin_user)
    pairs = [{"instruction": "x", "output_1": "quality=5", "output_2": "quality=1", "generator_1": "a",
              "generator_2": "b"}]
    r = api.post(f"/api/v1/workspaces/{workspace.pk}/annotate-pairs/", {"pairs": pairs}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["annotations"][0]["preference"] == 1 and r.json()["annotations"][0]["annotator"] == "solo"
    r = api.post(f"/api/v1/workspaces/{workspace.pk}/annotate-pairs/", {"pairs": [{"output_1": "a"}]}, format="json")
    assert r.status_code == 400 and "[0].instruction" in r.json()
    r = api.post(f"/api/v1/workspaces/{workspace.pk}/annotate-samples/",
                 {"samples": [{"instruction": "s", "outputs": ["quality=1", "quality=3"]}], "seed": 4}, format="json")
    assert r.status_code == 200 and r.json()["annotated"] == 1
    r = api.post(f"/api/v1/workspaces/{workspace.pk}/annotate-pairs/", {"pairs": pairs, "annotators": ["ghost"]},
                 format="json")
    assert r.status_code == 400 and "annotators" in r.json()
    # the answer waits for the LLM calls: more pairs than API_MAX_PAIRS are sent to the CLI
    from judging.evaluation.apis import API_MAX_PAIRS

    r = api.post(f"/api/v1/workspaces/{workspace.pk}/annotate-pairs/", {"pairs": pairs * (API_MAX_PAIRS + 1)},
                 format="json")
    assert r.status_code == 400 and "manage.py annotate_pairs" in r.json()["pairs"][0]
    samples = [{"instruction": "s", "outputs": ["a", "b", "c"]}] * (API_MAX_PAIRS // 2 + 1)
    r = api.post(f"/api/v1/workspaces/{workspace.pk}/annotate-samples/",
                 {"samples": samples, "pairs_per_instruction": 2}, format="json")
    assert r.status_code == 400 and "annotate_pairs --samples" in r.json()["samples"][0]


def test_annotate_pairs_and_samples_name_an_api_key_variable_the_web_process_lacks(workspace, admin_user, llm_server,
                                                                                   llm_endpoint, monkeypatch):
    """These two answer in the request, so the LLM is called by the web process: a key variable set only
    in the workers' environment (as the README recommends) is a 400 naming it, and nothing is written."""
    from annotation.models import Dataset
    from judging.evaluation.simulation import simulated_annotator_create

    monkeypatch.delenv("PREFLAB_TEST_WORKER_ONLY_KEY", raising=False)
    llm_server.responder = judge_responder
    judge = make_judge(workspace, llm_endpoint(api_key_env="PREFLAB_TEST_WORKER_ONLY_KEY"), method="pairwise")
    simulated_annotator_create(workspace=workspace, name="keyless", judge=judge)
    datasets = Dataset.objects.count()
    api = client_for(admin_user)
    pairs = [{"instruction": "x", "output_1": "quality=5", "output_2": "quality=1"}]
    r = api.post(f"/api/v1/workspaces/{workspace.pk}/annotate-pairs/", {"pairs": pairs}, format="json")
    assert r.status_code == 400, r.content
    assert "PREFLAB_TEST_WORKER_ONLY_KEY" in r.json()["annotators"][0] and "keyless" in r.json()["annotators"][0]
    r = api.post(f"/api/v1/workspaces/{workspace.pk}/annotate-samples/",
                 {"samples": [{"instruction": "s", "outputs": ["quality=1", "quality=3"]}]}, format="json")
    assert r.status_code == 400 and "PREFLAB_TEST_WORKER_ONLY_KEY" in r.json()["annotators"][0]
    assert Dataset.objects.count() == datasets and llm_server.count == 0
    # with the variable set here too, the same call answers
    monkeypatch.setenv("PREFLAB_TEST_WORKER_ONLY_KEY", "sk-test")
    r = api.post(f"/api/v1/workspaces/{workspace.pk}/annotate-pairs/", {"pairs": pairs}, format="json")
    assert r.status_code == 200 and r.json()["annotations"][0]["preference"] == 1
