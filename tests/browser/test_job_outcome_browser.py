"""How a job ended, as an admin sees it in the browser: an import where every line was rejected is "failed"
with a red bar (not "succeeded" with a full green one); one where some lines were rejected is "partly
failed" in amber; the job lists say the same. Screenshots go to var/screenshots/."""
from pathlib import Path

import orjson
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.imports import import_file_save
from annotation.jobs import job_create, job_run_inline
from annotation.models import Membership
from annotation.services import member_upsert, workspace_create
from tests.browser.test_annotate_browser import _login
from tests.factories import DatasetFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
GREEN = "rgb(21, 128, 61)"  # the succeeded bar's end colour (#15803d)


def _import(ws, dataset, admin, lines: list[bytes]):
    path = import_file_save(dataset=dataset, uploaded_file=SimpleUploadedFile("recs.jsonl", b"\n".join(lines)))
    return job_run_inline(job=job_create(kind="import", workspace=ws, dataset=dataset, created_by=admin,
                                         input_file=path, start=False))


def test_failed_and_partly_failed_jobs_look_so(browser, live_server):
    ws = workspace_create(name="Outcomes")
    admin = member_upsert(workspace=ws, username="olga", role=Membership.Role.ADMIN, password="olga-pass-12")[0].user
    dataset = DatasetFactory(workspace=ws, name="outcomes")
    good = orjson.dumps({"external_id": "a", "fields": {"prompt": "p", "response-1": "x", "response-2": "y"}})
    failed = _import(ws, dataset, admin, [b"{broken"] * 4)
    partly = _import(ws, dataset, admin, [good, b"{broken"])
    assert (failed.status, partly.status) == ("failed", "partly_failed")

    page = _login(browser.new_context(viewport={"width": 1200, "height": 900}), live_server.url, "olga", "olga-pass-12")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for job, word, tone in ((failed, "failed", "danger"), (partly, "partly failed", "warn")):
        page.goto(f"{live_server.url}/jobs/{job.pk}/")
        progress = page.locator(f"#job-progress-{job.pk}")
        assert progress.locator(".badge").first.inner_text() == word

        bar = progress.locator(".progress > span")
        colour = bar.evaluate("e => getComputedStyle(e).backgroundImage")
        assert GREEN not in colour, colour
        assert f"progress-{tone}" in progress.locator(".progress").get_attribute("class")
        assert page.locator("h3", has_text="Rejected lines").is_visible()
        page.screenshot(path=str(SHOTS / f"job-{job.status}.png"), full_page=True)
    for job, counts in ((failed, "0 lines imported, 4 rejected (of 4)"), (partly, "1 line imported, 1 rejected (of 2)")):
        page.goto(f"{live_server.url}/jobs/{job.pk}/")
        assert page.locator(f"#job-progress-{job.pk} .job-counts").inner_text().endswith(counts)
    page.goto(f"{live_server.url}/datasets/{dataset.pk}/")
    badges = page.locator(".job-progress .badge").all_inner_texts()
    assert sorted(badges) == ["failed", "partly failed"], badges
