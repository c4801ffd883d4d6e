"""The import page's mapping step in a real browser: a file of unknown columns is previewed (its
columns and first rows, escaped), its columns are mapped with selects, and the import job takes
the mapping."""
import pytest

from annotation.jobs import job_chunk_execute
from annotation.models import Job, Membership, Record
from annotation.services import member_upsert, workspace_create
from tests.browser.test_annotate_browser import _dataset, _login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_preview_map_and_import_a_file_of_unknown_columns(browser, live_server, tmp_path):
    ws = workspace_create(name="Imports")
    admin = member_upsert(workspace=ws, username="ivy", role=Membership.Role.ADMIN, password="ivy-pass-123")[0].user
    ds = _dataset(ws, admin, "pairs", [], 2)
    path = tmp_path / "pairs.csv"
    path.write_text('question,good,bad\n"<b>2+2?</b>",4,5\n')
    page = _login(browser.new_context(), live_server.url, "ivy", "ivy-pass-123")
    page.goto(f"{live_server.url}/datasets/{ds.pk}/import/")
    page.set_input_files("#id_file", str(path))
    page.select_option("#id_format", "pairs")
    page.click("text=Preview columns and map them")
    page.wait_for_selector("[data-preview-table]")
    _settled(page)
    assert "cannot tell the format" in page.inner_text("[data-preview-error]")
    assert page.inner_text("[data-preview-table] tbody td >> nth=0") == "<b>2+2?</b>"  # shown as text
    for target, column in (("prompt", "question"), ("chosen", "good"), ("rejected", "bad")):
        page.select_option(f"select[name=map-{target}]", column)
        # each choice re-renders the preview with the mapping so far: wait for it
        page.wait_for_selector(f'select[name=map-{target}] option[value="{column}"][selected]', state="attached")
        _settled(page)
    page.wait_for_selector('[data-preview-format="trl"]')
    assert page.locator("[data-preview-error]").count() == 0
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(f"{live_server.url}/jobs/**")
    job = Job.objects.get(dataset=ds, kind="import")
    assert job.params["mapping"] == {"prompt": "question", "chosen": "good", "rejected": "bad"}
    if Job.objects.get(pk=job.pk).status != Job.Status.SUCCEEDED:
        job_chunk_execute(job_id=job.pk, index=0)
    record = Record.objects.get(dataset=ds)
    assert record.fields["prompt"] == "<b>2+2?</b>" and record.fields[record.metadata["original_chosen"]] == "4"


def _settled(page) -> None:
    """Wait until htmx has settled the swapped preview: it binds the new selects' hx-trigger only then (a settle
    task, 20 ms after the swap or later on a busy machine), so a choice made before that sent no request and the
    test waited for a re-render that never came."""
    page.wait_for_selector("#import-preview:not(.htmx-added)", state="attached")
