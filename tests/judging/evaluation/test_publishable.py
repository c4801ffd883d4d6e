"""Issue #14 as users see it: arena ratings (API JSON/CSV, CLI, page), AlpacaEval's length-controlled win rate
with its variant named, difficulty files and gamed annotations, gzip and large uploads with JSON errors."""
import gzip
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from annotation.models import Membership
from tests.conftest import client_for
from tests.factories import (
    DatasetFactory,
    MembershipFactory,
    RecordFactory,
    ResponseFactory,
    UserFactory,
)
from tests.judging.evaluation import alpaca_data

pytestmark = pytest.mark.django_db

MODELS = ("alpha", "beta", "gamma")


def _rank(best, worst):
    return {"ranking": [{"value": best, "rank": 1}, {"value": worst, "rank": 2}]}


@pytest.fixture
def three_model_dataset(workspace):
    """alpha beats beta 3:1, beta beats gamma 3:1, alpha beats gamma 4:0 (one rater per record)."""
    dataset = DatasetFactory(workspace=workspace, name="arena-ds")
    rater = UserFactory(username="rater")
    MembershipFactory(user=rater, workspace=workspace)
    plan = [("alpha", "beta", 3, 1), ("beta", "gamma", 3, 1), ("alpha", "gamma", 4, 0)]
    for a, b, a_wins, b_wins in plan:
        for k in range(a_wins + b_wins):
            rec = RecordFactory(dataset=dataset, metadata={"response-1": {"model": a}, "response-2": {"model": b}})
            best, worst = ("response-1", "response-2") if k < a_wins else ("response-2", "response-1")
            ResponseFactory(record=rec, user=rater, values=_rank(best, worst), display_order=["response-1", "response-2"])
    return dataset


def test_dataset_arena_api_json_csv_and_errors(workspace, admin_user, three_model_dataset):
    api = client_for(admin_user)
    url = f"/api/v1/datasets/{three_model_dataset.pk}/arena/"
    r = api.get(url + "?bootstrap=50")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["method"] == "chatbot_arena_bradley_terry" and body["n_battles"] == 12 and body["source"] == "human"
    assert [row["model"] for row in body["rows"]] == ["alpha", "beta", "gamma"]
    alpha = body["rows"][0]
    assert (alpha["battles"], alpha["wins"], alpha["losses"]) == (8, 7, 1)
    assert alpha["ci_low"] <= alpha["rating"] <= alpha["ci_high"]
    assert 0.5 < body["win_matrix"]["alpha"]["gamma"] < 1 and body["win_matrix"]["alpha"]["alpha"] is None
    csv_text = api.get(url + "?format=csv&bootstrap=0").content.decode()
    assert csv_text.splitlines()[0].startswith("model,rating,ci_low,ci_high,battles,wins,losses,ties,method,anchor,p_vs_alpha")
    for query, field in (("source=robots", "source"), ("bootstrap=-1", "bootstrap"), ("bootstrap=x", "bootstrap"),
                         ("anchor=nobody", "anchor"), ("format=xml", "format"), ("source=suggestions", "battles"),
                         ("seed=-1", "seed")):
        r = api.get(f"{url}?{query}")
        assert r.status_code == 400 and field in r.json(), (query, r.content)


def test_arena_cli_and_page(workspace, admin_user, three_model_dataset, tmp_path, capsys):
    call_command("arena", "--dataset", str(three_model_dataset.pk), "--bootstrap", "20")
    out = capsys.readouterr().out
    assert "chatbot_arena_bradley_terry" in out and out.index("alpha") < out.index("beta") < out.index("gamma")
    call_command("arena", "--dataset", str(three_model_dataset.pk), "--format", "json", "--bootstrap", "0")
    assert json.loads(capsys.readouterr().out)["rows"][0]["model"] == "alpha"
    with pytest.raises(CommandError, match="no comparison"):
        call_command("arena", "--dataset", str(three_model_dataset.pk), "--source", "suggestions")
    records, _ = alpaca_data.annotations(seed=2, n_instructions=10)
    path = tmp_path / "a.json"
    path.write_text(json.dumps(records))
    call_command("arena", "--alpaca-eval", str(path), "--format", "csv", "--bootstrap", "0")
    assert "long_strong" in capsys.readouterr().out
    c = Client()
    c.force_login(admin_user)
    html = c.get(f"/evaluation/datasets/{three_model_dataset.pk}/").content.decode()
    assert 'class="arena-chart"' in html and 'id="arena-matrix"' in html and 'class="interval"' in html


def test_alpaca_eval_arena_upload_gzip_and_multipart(workspace, admin_user):
    api = client_for(admin_user)
    records, _ = alpaca_data.annotations(seed=5, n_instructions=12)
    body = gzip.compress(json.dumps({"annotations": records, "bootstrap": 10}).encode())
    r = api.generic("POST", "/api/v1/leaderboards/alpaca-eval/arena/", body, content_type="application/json",
                    HTTP_CONTENT_ENCODING="gzip")
    assert r.status_code == 200, r.content
    assert {row["model"] for row in r.json()["rows"]} == {"ref", *alpaca_data.MODELS}
    upload = SimpleUploadedFile("annotations.json.gz", gzip.compress(json.dumps(records).encode()))
    r = api.post("/api/v1/leaderboards/alpaca-eval/?reference=ref&length_controlled=true&bootstrap=5",
                 {"annotations": upload}, format="multipart")
    assert r.status_code == 200, r.content
    assert r.json()["lc_variant"] == "alpaca_eval_length_controlled_noreg"
    assert all(row["lc_standard_error"] is not None for row in r.json()["rows"])


def test_uploads_answer_json_errors(workspace, admin_user, settings):
    api = client_for(admin_user)
    url = "/api/v1/leaderboards/alpaca-eval/?reference=ref"
    r = api.generic("POST", url, b"\x1f\x8b\x08\x00garbage", content_type="application/json",
                    HTTP_CONTENT_ENCODING="gzip")
    assert r.status_code == 400 and r["Content-Type"].startswith("application/json") and "gzip" in r.json()["detail"]
    r = api.generic("POST", url, b'[{"instruction": ', content_type="application/json")
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    settings.PREFLAB_EVAL_UPLOAD_MAX_BYTES = 1000
    r = api.generic("POST", url, gzip.compress(b"[" + b" " * 5000 + b"]"), content_type="application/gzip")
    assert r.status_code == 413 and "PREFLAB_EVAL_UPLOAD_MAX_BYTES" in r.json()["detail"]
    r = api.generic("POST", url, b"[]", content_type="application/json", HTTP_CONTENT_ENCODING="br")
    assert r.status_code == 415 and "br" in r.json()["detail"]


def test_a_50_mb_upload_is_read(workspace, admin_user):
    """AlpacaEval 2's annotations are ~4 MB per model; a 50+ MB body (plain JSON, not gzip) goes through."""
    records, _ = alpaca_data.annotations(seed=6, n_instructions=20, soft=False)
    pad = "x" * 200_000
    big = [{**r, "output_1": r["output_1"] + pad} for r in records]
    body = json.dumps(big).encode()
    assert len(body) > 50 * 1024 * 1024 / 3  # ~20 MB here ...
    body = json.dumps(big * 3).encode()       # ... and over 50 MB here
    assert len(body) > 50 * 1024 * 1024
    r = client_for(admin_user).generic("POST", "/api/v1/leaderboards/alpaca-eval/?reference=ref", body,
                                       content_type="application/json")
    assert r.status_code == 200, r.content[:300]
    assert r.json()["comparisons"] == 3 * len(records)


def test_dataset_leaderboard_post_with_difficulty_file_and_cli_flags(workspace, admin_user, tmp_path, capsys):
    records, difficulty = alpaca_data.annotations(seed=7, n_instructions=12, soft=False)
    api = client_for(admin_user)
    csv_file = SimpleUploadedFile("difficulty.csv", ("instruction_difficulty\n" + "\n".join(
        str(float(d)) for d in difficulty)).encode())
    r = api.post("/api/v1/leaderboards/alpaca-eval/?length_controlled=1&bootstrap=0",
                 {"annotations": SimpleUploadedFile("a.json", json.dumps(records).encode()),
                  "instruction_difficulty": csv_file, "reference": "ref"}, format="multipart")
    assert r.status_code == 200, r.content
    assert r.json()["difficulty_source"] == "supplied"
    a = tmp_path / "a.json"
    a.write_text(json.dumps(records))
    d = tmp_path / "d.json"
    d.write_text(json.dumps({alpaca_data.instruction(i): float(x) for i, x in enumerate(difficulty)}))
    g = tmp_path / "g.json"
    g.write_text(json.dumps(alpaca_data.gamed_annotations(n_instructions=12)))
    call_command("leaderboard", "--alpaca-eval", str(a), "--reference", "ref", "--length-controlled",
                 "--instruction-difficulty", str(d), "--gamed-annotations", str(g), "--bootstrap", "5")
    out = capsys.readouterr().out
    assert "alpaca_eval_length_controlled_v1" in out and "instruction difficulty: supplied" in out
    assert "bootstrap-instructions" in out and "discrete" in out
    d.write_text("[1, 2]")
    with pytest.raises(CommandError, match="instruction_difficulty"):
        call_command("leaderboard", "--alpaca-eval", str(a), "--reference", "ref", "--length-controlled",
                     "--instruction-difficulty", str(d))


def test_dataset_leaderboard_post_difficulty_by_external_id(workspace, admin_user):
    dataset = DatasetFactory(workspace=workspace)
    rater = UserFactory()
    MembershipFactory(user=rater, workspace=workspace, role=Membership.Role.ANNOTATOR)
    for i in range(12):
        rec = RecordFactory(dataset=dataset, external_id=f"r{i}",
                            fields={"response-1": "a" * (10 + i), "response-2": "b" * (30 - i)},
                            metadata={"response-1": {"model": "ref"}, "response-2": {"model": "m"}})
        best, worst = ("response-2", "response-1") if i % 3 else ("response-1", "response-2")
        ResponseFactory(record=rec, user=rater, values=_rank(best, worst), display_order=["response-1", "response-2"])
    api = client_for(admin_user)
    url = f"/api/v1/datasets/{dataset.pk}/leaderboard/?reference=ref&length_controlled=true&bootstrap=0"
    r = api.post(url, {"instruction_difficulty": {f"r{i}": i / 10 for i in range(12)}}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["difficulty_source"] == "supplied" and r.json()["lc_variant"].startswith("alpaca_eval_length")
    r = api.post(url, {"instruction_difficulty": {"r0": 1}}, format="json")
    assert r.status_code == 400 and "instruction_difficulty" in r.json()
    r = api.post(url, {"bogus": 1}, format="json")
    assert r.status_code == 400 and "bogus" in r.json()
    page = api.get(f"/api/v1/datasets/{dataset.pk}/leaderboard/?reference=ref&format=csv")
    assert "discrete_win_rate" in page.content.decode().splitlines()[0]


def test_length_and_position_checks_show_a_length_biased_judge(workspace, admin_user):
    from annotation.models import Question, Suggestion

    dataset = DatasetFactory(workspace=workspace)
    question = Question.objects.get(dataset=dataset, kind=Question.Kind.RANKING)
    rater = UserFactory()
    MembershipFactory(user=rater, workspace=workspace)
    for i in range(20):
        long_first = i % 2 == 0
        rec = RecordFactory(dataset=dataset, fields={"response-1": "x" * (200 if long_first else 20),
                                                     "response-2": "y" * (20 if long_first else 200)})
        longer, shorter = ("response-1", "response-2") if long_first else ("response-2", "response-1")
        human_best = longer if i % 4 < 2 and i < 10 else shorter  # humans: 6 longer, 14 shorter
        ResponseFactory(record=rec, user=rater, values=_rank(human_best, longer if human_best == shorter else shorter),
                        display_order=["response-1", "response-2"])
        Suggestion.objects.create(record=rec, question=question, agent="verbose-judge",
                                  value=[{"value": longer, "rank": 1}, {"value": shorter, "rank": 2}])
    r = client_for(admin_user).get(f"/api/v1/datasets/{dataset.pk}/checks/")
    assert r.status_code == 200, r.content
    length = r.json()["length"]
    assert length["human"]["longer_wins"] == 0.3 and length["human"]["n"] == 20
    judge = length["judges"][0]
    assert judge["agent"] == "verbose-judge" and judge["longer_wins"] == 1.0 and judge["ci_low"] > 0.8
    assert r.json()["position"]["human"]["choices"] == 20
    c = Client()
    c.force_login(admin_user)
    html = c.get(f"/evaluation/datasets/{dataset.pk}/").content.decode()
    assert 'id="length-bias"' in html and "verbose-judge" in html and "100.0%" in html
