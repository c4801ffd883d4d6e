"""`manage.py seed_demo` / `quickstart --no-serve`: the demo workspace, users and datasets, idempotent."""
import io
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from django.conf import settings
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
    assert "Open" not in text and "http://" not in text  # nothing is served: no link to open
    assert text.splitlines()[-1] == "Serve it with: manage.py quickstart"
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


@pytest.mark.django_db
def test_running_it_again_logs_nobody_out_and_keeps_changed_passwords():
    call_command("quickstart", "--no-serve", stdout=io.StringIO())
    alice, bob = Client(), Client()
    assert alice.login(username="alice", password="alice-demo")
    assert bob.login(username="bob", password="bob-demo")
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="bob")
    user.set_password("bob-own-password-1")
    user.save()
    bob = Client()
    assert bob.login(username="bob", password="bob-own-password-1")
    out = io.StringIO()
    call_command("quickstart", "--no-serve", stdout=out)
    for client, name in ((alice, "alice"), (bob, "bob")):
        page = client.get("/")
        assert page.status_code == 200 and name in page.content.decode(), name  # still logged in
    assert authenticate(username="bob", password="bob-own-password-1") is not None
    assert "bob    / (password changed)" in out.getvalue() and "alice  / alice-demo" in out.getvalue()


# --- the served quickstart, as a user starts it ---------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quickstart(tmp_path, *args) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL",
                                                             "ALLOWED_HOSTS", "DEBUG")}
    env["PREFLAB_VAR_DIR"] = str(tmp_path)
    return subprocess.Popen([sys.executable, "manage.py", "quickstart", *args], cwd=settings.BASE_DIR, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _read_until(proc, marker: str, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} not printed; got {lines}")


def _listening_addresses(proc, port: int) -> set[str]:
    import psutil

    found = set()
    for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
        for c in p.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port:
                found.add(c.laddr.ip)
    return found


def _stop(proc) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    return proc.returncode, out, err


def test_quickstart_serves_this_machine_only_and_says_little(tmp_path):
    port = _free_port()
    proc = _quickstart(tmp_path, "--port", str(port))
    try:
        printed = _read_until(proc, f"Open http://127.0.0.1:{port}/")
        assert _listening_addresses(proc, port) == {"127.0.0.1"}
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        code, rest, err = _stop(proc)
    printed += rest.splitlines()
    assert code == 0, err
    assert printed[0].startswith("Database ready") and "admin  / admin-demo" in "\n".join(printed)
    text = "\n".join(printed) + err
    assert "[config]" not in text and "-------------- " not in text and "celery@" not in text  # no Celery banner
    assert "Starting development server" not in text and "Listening on" not in text
    assert len(printed) <= 10, printed


def test_quickstart_public_binds_every_address_and_warns(tmp_path):
    port = _free_port()
    proc = _quickstart(tmp_path, "--port", str(port), "--public", "--no-worker")
    try:
        printed = _read_until(proc, "Listening on 0.0.0.0")
        assert _listening_addresses(proc, port) == {"0.0.0.0"}
    finally:
        code, _, err = _stop(proc)
    assert code == 0, err
    assert f"Open http://127.0.0.1:{port}/" in "\n".join(printed)


def test_a_port_in_use_is_said_first_and_exits_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _quickstart(tmp_path, "--port", str(port))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert out == ""
    assert err.splitlines()[0] == (f"CommandError: port {port} on 127.0.0.1: already in use. Stop what uses it "
                                   f"(another quickstart?) or choose another port: manage.py quickstart --port {port + 1}")
    assert not (tmp_path / "preflab.sqlite3").exists()  # said before anything else was done
