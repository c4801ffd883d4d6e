"""`manage.py seed_demo` / `quickstart --no-serve`: the demo workspace, users and datasets, idempotent."""
import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import Client

from annotation.demo_data import DATASETS
from annotation.models import Dataset, Membership, Record, Workspace


@pytest.mark.django_db
def test_quickstart_no_serve_seeds_the_demo_and_prints_credentials():
    out = io.StringIO()
    call_command("quickstart", "--no-serve", stdout=out)
    text = out.getvalue()
    assert "admin  / admin-demo" in text and "alice  / alice-demo" in text and "bob    / bob-demo" in text
    assert "http://127.0.0.1:8000/" in text
    ws = Workspace.objects.get(name="Demo")
    assert Dataset.objects.filter(workspace=ws, status=Dataset.Status.PUBLISHED).count() == len(DATASETS)
    n_records = Record.objects.filter(dataset__workspace=ws).count()
    assert 25 <= n_records <= 40
    sizes = {len([k for k in r.fields if k.startswith("response-")]) for r in Record.objects.all()}
    assert sizes == {2, 3, 4}
    assert any("```" in v for r in Record.objects.all() for v in r.fields.values())  # code blocks in the demo
    admin = authenticate(username="admin", password="admin-demo")
    assert admin is not None and admin.is_staff
    assert Membership.objects.get(user=admin, workspace=ws).role == "admin"
    for name in ("alice", "bob"):
        user = authenticate(username=name, password=f"{name}-demo")
        assert Membership.objects.get(user=user, workspace=ws).role == "annotator"
    # seeding again changes nothing: no duplicate records, users or datasets
    call_command("seed_demo", stdout=io.StringIO())
    assert Record.objects.filter(dataset__workspace=ws).count() == n_records
    assert Dataset.objects.filter(workspace=ws).count() == len(DATASETS)
    assert Membership.objects.filter(workspace=ws).count() == 3
    # and the demo is usable right away
    c = Client()
    assert c.login(username="alice", password="alice-demo")
    html = c.get("/").content.decode()
    assert all(spec["name"] in html for spec in DATASETS)
