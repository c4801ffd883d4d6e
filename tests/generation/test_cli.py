"""manage.py endpoint_add and manage.py generate (in-process, progress bar)."""
import io

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Dataset, Job, Record
from generation.models import Endpoint

pytestmark = pytest.mark.django_db


def test_endpoint_add_and_update(workspace):
    out = io.StringIO()
    call_command("endpoint_add", "--workspace", workspace.name, "--name", "qwen", "--model", "Qwen/Qwen2.5-7B-Instruct",
                 "--base-url", "http://localhost:8000/v1", "--api-key-env", "VLLM_API_KEY",
                 "--param", "temperature=0.7", "--param", "stop=[\"###\"]", "--max-concurrency", "32", stdout=out)
    ep = Endpoint.objects.get(name="qwen")
    assert ep.params == {"temperature": 0.7, "stop": ["###"]} and ep.max_concurrency == 32
    assert "endpoint qwen" in out.getvalue()
    call_command("endpoint_add", "--name", "qwen", "--update", "--max-concurrency", "8", stdout=io.StringIO())
    ep.refresh_from_db()
    assert ep.max_concurrency == 8
    with pytest.raises(CommandError, match="api_key_env: the NAME of an environment variable"):
        call_command("endpoint_add", "--name", "bad", "--model", "m", "--base-url", "http://x/v1",
                     "--api-key-env", "sk-live-0123456789abcdefghijklmnopqrstuv")
    assert not Endpoint.objects.filter(name="bad").exists()


def test_generate_in_process(workspace, llm_endpoint, tmp_path):
    a, b = llm_endpoint(), llm_endpoint()
    path = tmp_path / "p.jsonl"
    path.write_text("".join(f'{{"prompt": "question {i}"}}\n' for i in range(5)))
    out, err = io.StringIO(), io.StringIO()
    call_command("generate", "--workspace", workspace.name, "--endpoint", a.name, "--endpoint", b.name,
                 "--prompts", str(path), "--new-dataset", "cli-ds", "--n", "2", "--seed", "4",
                 "--override", f"{a.name}:temperature=0.1", stdout=out, stderr=err)
    assert "5 records written" in out.getvalue()
    job = Job.objects.get(kind="generation")
    assert out.getvalue().splitlines()[-1] == f"generation job {job.pk} succeeded: 10 responses generated, 0 failed (of 10)"
    assert "10/10" in err.getvalue()  # the progress bar reached the end
    ds = Dataset.objects.get(name="cli-ds")
    assert Record.objects.filter(dataset=ds).count() == 5
    assert job.params["overrides"] == {a.name: {"temperature": 0.1}} and job.params["seed"] == 4


def test_generate_reports_bad_input_with_line(workspace, llm_endpoint, tmp_path):
    ep = llm_endpoint()
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "fine"}\n{"prompt": 5}\n')
    with pytest.raises(CommandError, match="line 2: the prompt must be a non-empty string"):
        call_command("generate", "--endpoint", ep.name, "--prompts", str(path), "--new-dataset", "x",
                     "--strategy", "samples")
    with pytest.raises(CommandError, match="--dataset"):
        call_command("generate", "--endpoint", ep.name, "--prompts", str(path))
    assert not Job.objects.exists()


def test_generate_failures_then_resume(workspace, llm_endpoint, llm_server, tmp_path):
    ep = llm_endpoint(max_retries=0)
    path = tmp_path / "p.csv"
    path.write_text("prompt\nalpha\nbeta\n")
    llm_server.fail("500", times=1)
    out = io.StringIO()
    with pytest.raises(CommandError) as failed:  # exit 1: not every response came
        call_command("generate", "--endpoint", ep.name, "--prompts", str(path), "--new-dataset", "r",
                     "--strategy", "samples", "--temperatures", "0.2,0.9", "--quiet", stdout=out)
    job = Job.objects.get(kind="generation")
    assert str(failed.value) == (f"generation job {job.pk} partly failed: 3 responses generated, 1 failed (of 4); "
                                 f"again with: manage.py generate --resume {job.pk}")
    out = io.StringIO()
    call_command("generate", "--resume", str(job.pk), "--quiet", stdout=out)
    assert "2 records written" in out.getvalue()
    assert f"generation job {job.pk} succeeded: 4 responses generated, 0 failed (of 4)" in out.getvalue()
