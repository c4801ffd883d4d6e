"""The dashboard's export buttons in a real browser: each download arrives under a name that says what it
holds (dataset, style, source, date), so a standard and a conversational export no longer overwrite each other."""
import pytest
from django.utils import timezone

from annotation.demo_data import PAIRS, demo_records
from annotation.models import Membership
from annotation.services import member_upsert, workspace_create
from tests.browser.test_annotate_browser import _dataset, _login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_export_buttons_download_distinct_descriptive_files(browser, live_server, tmp_path):
    ws = workspace_create(name="Downloads")
    admin = member_upsert(workspace=ws, username="dora", role=Membership.Role.ADMIN, password="dora-pass-12")[0].user
    ds = _dataset(ws, admin, "Helpfulness / v2", demo_records(PAIRS[:2]), 2)
    page = _login(browser.new_context(accept_downloads=True), live_server.url, "dora", "dora-pass-12")
    page.goto(f"{live_server.url}/datasets/{ds.pk}/")
    today = timezone.localdate().isoformat()
    names = []
    for button in ("jsonl-standard", "jsonl-conversational", "csv-conversational"):
        with page.expect_download() as info:
            page.click(f'[data-export="{button}"]')
        download = info.value
        names.append(download.suggested_filename)
        download.save_as(tmp_path / download.suggested_filename)
    assert names == [f"helpfulness-v2-triplets-standard-human-{today}.jsonl",
                     f"helpfulness-v2-triplets-conversational-human-{today}.jsonl",
                     f"helpfulness-v2-triplets-conversational-human-{today}.csv"]
    assert len(list(tmp_path.iterdir())) == 3  # three files side by side, none overwritten
