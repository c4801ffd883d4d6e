"""The streamed paths against real WSGI servers (granian, which the image runs, and gunicorn): a chunked
NDJSON upload with no Content-Length, and a streamed triplet download."""
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
import requests
from django.db import connection

from annotation.models import Membership, Record, Response
from annotation.services import member_upsert
from tests.factories import DatasetFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"])
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


SERVERS = {
    "granian": lambda port: ["-m", "granian", "--interface", "wsgi", "preflab.wsgi:application", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1", "--no-ws", "--log-level", "warning"],
    "gunicorn": lambda port: ["-m", "gunicorn", "preflab.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "--log-level", "warning"],
}


@pytest.fixture(params=sorted(SERVERS))
def server(request, transactional_db):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": _database_url(), "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(64)}
    proc = subprocess.Popen([sys.executable, *SERVERS[request.param](port)], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                requests.get(base + "/api/v1/datasets/", timeout=10)
                break
            except requests.RequestException:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{request.param} did not start")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_chunked_upload_and_streamed_export(server):
    ds = DatasetFactory()
    _m, token, _ = member_upsert(workspace=ds.workspace, username="io-admin", role=Membership.Role.ADMIN)
    headers = {"Authorization": f"Token {token}"}

    def body():  # a generator: requests sends it with Transfer-Encoding: chunked, no Content-Length
        for i in range(3000):
            line = {"external_id": f"r{i}", "fields": {"prompt": f"p{i}", "response-1": "a", "response-2": "b"}}
            yield orjson.dumps(line) + b"\n"
        yield b'{"external_id": "bad"\n'

    resp = requests.post(f"{server}/api/v1/datasets/{ds.pk}/records/", data=body(),
                         headers={**headers, "Content-Type": "application/x-ndjson"}, timeout=120)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["created"], resp.json()["rejected"][0]["line"]) == (3000, 3001)
    assert Record.objects.filter(dataset=ds).count() == 3000

    user = UserFactory()
    ranking = [{"value": "response-2", "rank": 1}, {"value": "response-1", "rank": 2}]
    Response.objects.bulk_create(Response(record=r, dataset=ds, user=user, values={"ranking": ranking},
                                          status=Response.Status.SUBMITTED)
                                 for r in Record.objects.filter(dataset=ds)[:2500])
    resp = requests.get(f"{server}/api/v1/datasets/{ds.pk}/triplets/", params={"format": "jsonl"},
                        headers=headers, stream=True, timeout=120)
    assert resp.status_code == 200 and "content-length" not in resp.headers
    rows = [orjson.loads(line) for line in resp.iter_lines() if line]
    assert len(rows) == 2500 and rows[0]["chosen"] == "b" and rows[0]["rejected"] == "a"
