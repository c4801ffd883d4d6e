"""Evaluation pages under /evaluation/ and the CLI commands."""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from annotation.models import Job, Membership, Response
from judging.evaluation.simulation import simulated_annotator_create
from tests.factories import DatasetFactory, MembershipFactory, RecordFactory, ResponseFactory, UserFactory
from tests.judging.evaluation.helpers import judge_responder, make_judge, pair_records


def _login(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def _rank(best, worst):
    return {"ranking": [{"value": best, "rank": 1}, {"value": worst, "rank": 2}]}


@pytest.fixture
def scored_dataset(workspace):
    dataset = DatasetFactory(workspace=workspace, name="eval-ds")
    people = [UserFactory(username=f"p{i}") for i in range(2)]
    for u in people:
        MembershipFactory(user=u, workspace=workspace)
    meta = {"response-1": {"model": "ref-model"}, "response-2": {"model": "<b>evil</b>"}}
    for i in range(4):
        rec = RecordFactory(dataset=dataset, metadata=meta)
        for u in people:
            ResponseFactory(record=rec, user=u, values=_rank("response-2", "response-1") if i < 3 else
                            _rank("response-1", "response-2"), display_order=["response-1", "response-2"])
    return dataset


def test_pages_show_agreement_leaderboard_chart_escaped(workspace, admin_user, annotator, scored_dataset):
    c = _login(admin_user)
    home = c.get("/evaluation/")
    assert home.status_code == 200 and b"eval-ds" in home.content
    page = c.get(f"/evaluation/datasets/{scored_dataset.pk}/?reference=ref-model&source=human")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="agreement-annotators"' in html and "100.0%" in html  # p0 and p1 always agree
    assert "<svg" in html and 'class="error-bar"' in html
    assert "<b>evil</b>" not in html and "&lt;b&gt;evil&lt;/b&gt;" in html
    assert "75.0%" in html  # 3 of 4 records won by the other model
    assert _login(annotator).get("/evaluation/").status_code == 403
    assert _login(annotator).get(f"/evaluation/datasets/{scored_dataset.pk}/").status_code == 403
    stranger = UserFactory(username="stranger")
    MembershipFactory(user=stranger, workspace=DatasetFactory().workspace, role=Membership.Role.ADMIN)
    assert _login(stranger).get(f"/evaluation/datasets/{scored_dataset.pk}/").status_code == 404


def test_alpaca_eval_page_upload_and_errors(workspace, admin_user):
    c = _login(admin_user)
    items = [{"instruction": "i", "output_1": "a", "output_2": "b", "generator_1": "ref", "generator_2": "m",
              "preference": 2}] * 3
    r = c.post("/evaluation/alpaca-eval/", {"reference": "ref", "annotations": SimpleUploadedFile(
        "a.json", json.dumps(items).encode(), content_type="application/json")})
    assert r.status_code == 200 and b"100.0%" in r.content and b"<svg" in r.content
    r = c.post("/evaluation/alpaca-eval/", {"reference": "ref", "annotations_text": "[{\"instruction\": "})
    assert r.status_code == 400 and b"not valid JSON" in r.content
    r = c.post("/evaluation/alpaca-eval/", {"reference": "ref", "annotations_text": json.dumps([{**items[0], "preference": 7}])})
    assert r.status_code == 400 and b"[0].preference" in r.content


def test_simulate_button_starts_a_job(workspace, admin_user, llm_server, llm_endpoint, django_capture_on_commit_callbacks,
                                      monkeypatch):
    llm_server.responder = judge_responder
    dataset = DatasetFactory(workspace=workspace)
    pair_records(dataset, 3)
    simulated_annotator_create(workspace=workspace, name="btn", judge=make_judge(workspace, llm_endpoint()))
    c = _login(admin_user)
    page = c.get(f"/evaluation/datasets/{dataset.pk}/")
    assert b'value="btn"' in page.content
    from annotation import jobs
    from annotation.jobs import job_chunk_execute

    sent = []
    monkeypatch.setattr(jobs, "job_enqueue", lambda *, job: sent.append(job.pk) or 0)
    with django_capture_on_commit_callbacks(execute=True):
        r = c.post(f"/evaluation/datasets/{dataset.pk}/simulate/", {"annotators": ["btn"]})
    job = Job.objects.get(kind="simulation")
    assert r.status_code == 302 and r["Location"] == f"/jobs/{job.pk}/"
    assert sent == [job.pk]
    job_chunk_execute(job_id=job.pk, index=0)
    assert Response.objects.filter(dataset=dataset, status="submitted").count() == 3
    r = c.post(f"/evaluation/datasets/{dataset.pk}/simulate/", {"annotators": ["ghost"]})
    assert r.status_code == 302 and r["Location"] == f"/evaluation/datasets/{dataset.pk}/"


def test_cli_simulate_leaderboard_best_of_n_annotate_pairs(workspace, llm_server, llm_endpoint, tmp_path, capsys):
    llm_server.responder = judge_responder
    make_judge(workspace, llm_endpoint(), name="cli-judge")
    call_command("simulate", "--workspace", str(workspace.pk), "--create", "cli", "--judge", "cli-judge",
                 "--p", "0.25", "--seed", "5")
    call_command("simulate", "--workspace", workspace.name, "--list")
    assert "cli\tuser=sim-cli\tjudge=cli-judge\tp=0.25\tseed=5" in capsys.readouterr().out
    with pytest.raises(CommandError, match="flip_probability"):
        call_command("simulate", "--workspace", str(workspace.pk), "--create", "bad", "--judge", "cli-judge", "--p", "2")
    dataset = DatasetFactory(workspace=workspace)
    pair_records(dataset, 5)
    call_command("simulate", "--dataset", str(dataset.pk), "--quiet")
    assert "cli: 5 submitted" in capsys.readouterr().out
    call_command("simulate", "--dataset", str(dataset.pk), "--enqueue")  # enqueued on commit (not in this test)
    assert "started simulation job" in capsys.readouterr().out
    assert Job.objects.filter(kind="simulation", dataset=dataset).count() == 1

    call_command("leaderboard", "--dataset", str(dataset.pk), "--reference", "base", "--format", "json")
    board = json.loads(capsys.readouterr().out)
    assert board["reference"] == "base" and {r["model"] for r in board["rows"]} == {"new", "base"}

    good = {"instruction": "i", "output_1": "a", "output_2": "b", "generator_1": "ref", "generator_2": "m", "preference": 2}
    jsonl = tmp_path / "ann.jsonl"
    jsonl.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "preference": 9}) + "\n")
    with pytest.raises(CommandError, match=r"line 3: preference"):
        call_command("leaderboard", "--alpaca-eval", str(jsonl), "--reference", "ref")
    broken = tmp_path / "broken.json"
    broken.write_text('[\n{"instruction": "i",\n oops}\n]')
    with pytest.raises(CommandError, match="line 3"):
        call_command("leaderboard", "--alpaca-eval", str(broken), "--reference", "ref")
    jsonl.write_text(json.dumps(good) + "\n" + json.dumps({**good, "preference": 1.5}) + "\n")
    out = tmp_path / "board.csv"
    call_command("leaderboard", "--alpaca-eval", str(jsonl), "--reference", "ref", "--format", "csv", "--out", str(out))
    assert "m,75.0," in out.read_text()

    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps([{"instruction": "q", "output_1": "quality=1", "output_2": "quality=4",
                                  "generator_1": "x", "generator_2": "y"}]))
    annotated = tmp_path / "annotated.json"
    call_command("annotate_pairs", "--workspace", str(workspace.pk), "--input", str(pairs), "--out", str(annotated))
    result = json.loads(annotated.read_text())
    assert result[0]["annotator"] == "cli" and result[0]["preference"] in (1, 2)

    from annotation.models import Suggestion

    q = dataset.questions.get(name="ranking")
    for rec in dataset.records.all():
        Suggestion.objects.create(record=rec, question=q, agent="j", value=[{"value": "response-1", "rank": 1},
                                                                            {"value": "response-2", "rank": 2}],
                                  raw={"ratings": {"response-1": 5, "response-2": 2}})
    sft = tmp_path / "sft.jsonl"
    call_command("best_of_n", str(dataset.pk), "--out", str(sft), "--quiet")
    rows = [json.loads(x) for x in sft.read_text().splitlines()]
    assert len(rows) == 5 and all(r["model"] == "base" and r["score"] == 5 for r in rows)
    with pytest.raises(CommandError, match="min_n"):
        call_command("best_of_n", str(dataset.pk), "--out", str(sft), "--min-n", "0")


def test_the_agreement_card_offers_the_scoring_rules(admin_user, scored_dataset):
    c = _login(admin_user)
    html = c.get(f"/evaluation/datasets/{scored_dataset.pk}/").content.decode()
    assert 'id="scoring-rule-form"' in html
    assert '<option value="preflab" selected>' in html and '<option value="absolute">' in html
    html = c.get(f"/evaluation/datasets/{scored_dataset.pk}/?scoring_rule=absolute").content.decode()
    assert '<option value="absolute" selected>' in html and "<code>absolute</code>:" in html
