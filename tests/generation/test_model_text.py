"""A model answer holding text PostgreSQL cannot store (NUL, a lone surrogate) is stored cleaned, with a
note saying what was removed, and never fails the job (annotation.text)."""
import pytest
from django.urls import reverse

from annotation.jobs import job_run_inline
from annotation.models import Job, JobError, Record
from generation.models import GenerationOutput
from generation.services import generation_job_create
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("dirty,clean,note", [
    ("answer \x00with\x00 NUL", "answer with NUL", {"nul_removed": 2, "surrogates_replaced": 0}),
    ("answer \ud800 lone", "answer \ufffd lone", {"nul_removed": 0, "surrogates_replaced": 1}),
], ids=["NUL", "lone surrogate"])
def test_generation_job_stores_cleaned_answers_with_a_note(workspace, admin_user, client, llm_endpoint, llm_server,
                                                           tmp_path, dirty, clean, note):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "dirty one"}\n{"prompt": "plain one"}\n')
    llm_server.responder = lambda body: dirty if "dirty" in body["messages"][-1]["content"] else "a plain answer"
    target = DatasetFactory(workspace=workspace)
    job = job_run_inline(job=generation_job_create(
        workspace=workspace, dataset=target, endpoints=[llm_endpoint(), llm_endpoint()], n=2, strategy="each",
        prompts_source={"file": str(prompts)}, start=False))
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.done, job.failed) == (4, 0) and not JobError.objects.filter(job=job).exists()
    records = {r.fields["prompt"]: r for r in Record.objects.filter(dataset=target)}
    dirty_record, plain = records["dirty one"], records["plain one"]
    assert dirty_record.fields["response-1"] == dirty_record.fields["response-2"] == clean
    assert dirty_record.metadata["response-1"]["text_cleaned"] == note
    assert "text_cleaned" not in plain.metadata["response-1"]
    outputs = GenerationOutput.objects.filter(job=job, prompt_key__in=[o.prompt_key for o in
                                                                        GenerationOutput.objects.filter(text=clean)])
    assert outputs.count() == 2 and all(o.text_cleaned == note for o in outputs)
    # the record's page says so (the admin's view of the record; annotators never see provenance)
    client.force_login(admin_user)
    page = client.get(reverse("record-detail", args=[target.pk, dirty_record.pk])).content.decode()
    said = "2 NUL characters removed" if note["nul_removed"] else "1 lone surrogate replaced by U+FFFD"
    assert "Model text cleaned" in page and f"response-1: {said}" in page and f"response-2: {said}" in page
    page = client.get(reverse("record-detail", args=[target.pk, plain.pk])).content.decode()
    assert "Model text cleaned" not in page


def test_a_prompt_file_with_nul_is_refused_naming_the_line(tmp_path):
    """Prompts are a person's input: refused (nothing written), not cleaned."""
    from django.core.exceptions import ValidationError

    from generation.services.prompts import prompts_read

    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "fine"}\n{"prompt": "bad \\u0000 prompt"}\n')
    with pytest.raises(ValidationError) as caught:
        prompts_read(path=str(path))
    assert caught.value.message_dict == {"prompts": ["line 2: prompt: contains a NUL character (\\u0000), "
                                                     "which cannot be stored"]}
