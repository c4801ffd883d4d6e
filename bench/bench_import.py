"""Benchmark: POST N NDJSON records to a real server (granian as in the image, or --server gunicorn; 1 worker) on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/preflab_bench_io \
        .venv/bin/python bench/bench_import.py --records 1000000

Records (~300-character prompt, two ~1,500-character responses) are generated on the fly by a
streaming generator and sent with chunked transfer encoding, so neither side holds the body.
Prints records/s and the server's peak RSS (psutil, sampled every 100 ms). The server writes the
batches on PREFLAB_IMPORT_WRITERS connections (2 by default; `--writers 1` for the single writer of before).
Goals: >= 25,000 records/s at 1,000,000 records, server RSS < 300 MB and the same at 100k and 1M.
The database named in DATABASE_URL is created if missing and migrated; the bench's dataset is
dropped and created again on each run.
"""
from __future__ import annotations

import argparse
import os
import random
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import GranianServer, GunicornServer, PostgresCpu  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/preflab_bench_io"
WORDS = ("the model answer reasons about data quality while a careful reviewer checks every claim "
         "against sources and notes where the reasoning breaks down or where the style could be "
         "clearer for a reader who wants short precise steps with examples and caveats").split()


def database_prepare(url: str) -> None:
    """Create the database if missing, then migrate it."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)


def django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "preflab.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def bench_dataset(name: str):
    """A fresh pairwise dataset in a bench workspace, and an admin token."""
    from annotation.imports import pairs_dataset_create
    from annotation.models import Dataset, Workspace
    from annotation.services import member_upsert

    ws, _ = Workspace.objects.get_or_create(name="bench-io")
    _m, token, _ = member_upsert(workspace=ws, username="bench-io-admin", role="admin")
    old = Dataset.objects.filter(workspace=ws, name=name).first()
    if old is not None:
        from django.db import connection

        with connection.cursor() as c:  # faster than the ORM's cascade for a million rows
            for table in ("annotation_suggestion", "annotation_response", "annotation_lease"):
                c.execute(f"DELETE FROM {table} WHERE record_id IN (SELECT id FROM annotation_record WHERE dataset_id = %s)", [old.pk])
            c.execute("DELETE FROM annotation_record WHERE dataset_id = %s", [old.pk])
        old.delete()
        with connection.cursor() as c:  # the dead rows go now, as autovacuum would: each run writes into the same table
            c.execute("VACUUM annotation_record")
    return pairs_dataset_create(workspace=ws, name=name), token


class TextPool:
    """Varied texts without per-record random generation: slices of a long random word stream."""

    def __init__(self, seed: int = 1, size: int = 400_000):
        rng = random.Random(seed)
        out, n = [], 0
        while n < size:
            w = rng.choice(WORDS)
            out.append(w)
            n += len(w) + 1
        self.text = " ".join(out)
        self.n = len(self.text)

    def get(self, i: int, length: int, salt: int = 0) -> str:
        start = (i * 7919 + salt * 104729) % (self.n - length - 1)
        return self.text[start:start + length]


def ndjson_records(n: int, *, prompt_chars: int = 300, response_chars: int = 1500, start: int = 0,
                   chunk_bytes: int = 1 << 18):
    """Yield NDJSON bytes of n records in ~256 KiB chunks (generated as they are sent).

    The texts are plain words (nothing to escape), so each line is assembled from bytes pieces
    rather than serialised: the client stays cheap and leaves the CPU to the server.
    """
    pool = TextPool()
    text = pool.text.encode()
    span = pool.n - max(prompt_chars, response_chars) - 1
    parts: list[bytes] = []
    size = 0
    for i in range(start, start + n):
        a = (i * 7919) % span
        b = (i * 7919 + 104729) % span
        c = (i * 7919 + 2 * 104729) % span
        line = b"".join((b'{"external_id":"r', str(i).encode(), b'","fields":{"prompt":"', str(i).encode(), b": ",
                         text[a:a + prompt_chars], b'","response-1":"', text[b:b + response_chars],
                         b'","response-2":"', text[c:c + response_chars],
                         b'"},"metadata":{"model-1":"m-a","model-2":"m-b"}}\n'))
        parts.append(line)
        size += len(line)
        if size >= chunk_bytes:
            yield b"".join(parts)
            parts.clear()
            size = 0
    if parts:
        yield b"".join(parts)


class Server:
    """preflab.wsgi served in a subprocess by bench.common's GranianServer (as in the image) or GunicornServer,
    one worker by default; samples the RSS of its worker processes."""

    KINDS = {"granian": GranianServer, "gunicorn": GunicornServer}

    def __init__(self, url: str, port: int, extra_env: dict | None = None, workers: int = 1, server: str = "granian"):
        self.kind = server
        self.web = self.KINDS[server](port=port, database_url=url, workers=workers, timeout=3600,
                                      env={"SECRET_KEY": secrets.token_urlsafe(64), **(extra_env or {})}).start()
        self.proc = self.web.proc
        self.base = f"http://127.0.0.1:{port}"
        self.peak_rss = 0
        self._stop = threading.Event()
        try:
            self._wait_ready()
        except BaseException:
            self.web.stop()
            raise
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _wait_ready(self) -> None:
        import requests

        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited")
            try:
                requests.get(self.base + "/api/v1/datasets/", timeout=30)
                return
            except requests.RequestException:
                time.sleep(0.3)
        raise RuntimeError(f"{self.kind} did not start")

    def _workers(self) -> list:
        """The server's worker processes, looked up again only when one has gone (a look-up scans
        every process on the machine: every 100 ms it cost the client more CPU than the upload)."""
        import psutil

        if not getattr(self, "_worker_procs", None) or not all(w.is_running() for w in self._worker_procs):
            try:
                self._worker_procs = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.Error:
                self._worker_procs = []
        return self._worker_procs

    def rss(self) -> int:
        import psutil

        try:
            return max([c.memory_info().rss for c in self._workers()] or [0])
        except psutil.Error:
            self._worker_procs = []
            return 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self.rss())
            time.sleep(0.1)

    def reset_peak(self) -> None:
        self.peak_rss = self.rss()

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's worker(s) so far."""
        import psutil

        total = 0.0
        for c in self._workers():
            try:
                t = c.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def stop(self) -> None:
        self._stop.set()
        self.web.stop()


def print_cpu(elapsed: float, items: int, server_cpu: float, pg_cpu: tuple[float, float], client_cpu: float) -> None:
    import psutil

    n = max(items, 1)
    print(f"CPU seconds:       server {server_cpu:.1f}, postgres backends {pg_cpu[0]:.1f} + shared writers "
          f"{pg_cpu[1]:.1f}, client {client_cpu:.1f}")
    print(f"CPU per item:      server {server_cpu / n * 1e6:.0f} us, postgres {sum(pg_cpu) / n * 1e6:.0f} us")
    print(f"machine:           {psutil.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end "
          f"(other work on the machine slows every figure)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--prompt-chars", type=int, default=300)
    parser.add_argument("--response-chars", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=None, help="PREFLAB_IMPORT_BATCH of the server")
    parser.add_argument("--writers", type=int, default=None, help="PREFLAB_IMPORT_WRITERS of the server")
    parser.add_argument("--server", default="granian", choices=sorted(Server.KINDS),
                        help="the web server (default granian, as in the image; one worker)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_DB)
    args = parser.parse_args()
    url = args.database_url
    if not url.startswith("postgres"):
        sys.exit("this bench measures PostgreSQL: set DATABASE_URL=postgres://...")
    import requests

    database_prepare(url)
    django_setup(url)
    dbname = urlparse(url).path.lstrip("/")
    dataset, token = bench_dataset("bench-import")
    extra = {"PREFLAB_IMPORT_BATCH": str(args.batch)} if args.batch else {}
    if args.writers:
        extra["PREFLAB_IMPORT_WRITERS"] = str(args.writers)
    server = Server(url, args.port, extra, server=args.server)
    try:
        server.reset_peak()
        idle_rss = server.peak_rss
        cpu0, client0, pg = server.cpu_seconds(), time.process_time(), PostgresCpu(dbname)
        t0 = time.perf_counter()
        resp = requests.post(f"{server.base}/api/v1/datasets/{dataset.pk}/records/",
                             data=ndjson_records(args.records, prompt_chars=args.prompt_chars,
                                                 response_chars=args.response_chars),
                             headers={"Authorization": f"Token {token}", "Content-Type": "application/x-ndjson"},
                             timeout=3600)
        elapsed = time.perf_counter() - t0
        server_cpu, client_cpu = server.cpu_seconds() - cpu0, time.process_time() - client0
        pg_cpu = pg.stop()
        if resp.status_code != 200:
            sys.exit(f"HTTP {resp.status_code}: {resp.text[:500]}")
        body = resp.json()
        stored = body["created"] + body["updated"]
        print(f"records sent:      {args.records:,} (~{args.prompt_chars}+2x{args.response_chars} chars each)")
        print(f"created/updated:   {body['created']:,} / {body['updated']:,}   rejected: {body['rejected_count']}")
        print(f"elapsed:           {elapsed:.1f} s")
        print(f"records/s:         {stored / elapsed:,.0f}   (goal >= 25,000)")
        print(f"server RSS:        idle {idle_rss / 2**20:.0f} MB, peak {server.peak_rss / 2**20:.0f} MB   (goal < 300 MB)")
        print_cpu(elapsed, stored, server_cpu, pg_cpu, client_cpu)
        if stored != args.records:
            sys.exit("not every record was stored")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
