"""Benchmark: task distribution (next + submit) with concurrent annotators on PostgreSQL.

    .venv/bin/python bench/bench_distribution.py --records 100000 --annotators 10,50 --seconds 30
    .venv/bin/python bench/bench_distribution.py --records 1000000 --annotators 10,50 --seconds 30

Database: BENCH_DATABASE_URL, else DATABASE_URL's server with the database `preflab_bench`
(created if missing, migrated). A dataset of N pairwise records (min_submitted=2, priorities
0-4) is generated once with COPY and kept for later runs; each run resets its responses and leases.

Mode `http` (default): the web server the image runs, granian (--server granian: WSGI, HTTP/1.1 kept alive,
--workers processes, one per CPU, each with --threads blocking threads running Django, default 1; token auth) on
--port, or gunicorn to compare (--server gunicorn: sync workers, or --worker-class gthread with --threads N);
every annotator is a client thread looping GET /api/v1/datasets/{id}/next/ then POST /api/v1/records/{id}/responses/.
"Server time" is the server's own per-request time from its access log (gunicorn's %(D)s, granian's dt_ms:
from the worker taking the request to the response handed back; time queued before a worker is free is not in
it); the client-observed latency is printed beside it. Mode `service`: the same loop calling
services.next_record_for and services.response_upsert in threads, timed around the calls.

The annotators are lean keep-alive clients (LeanHTTP: one socket each, a few lines of Python per
request), as they share the server's CPUs here; gunicorn's sync workers close the connection after
every response, so with them each request also pays a new TCP connection on both sides.

Prints p50/p95 per call, annotations/s in total, the CPU per annotation of the web server's processes, of
their PostgreSQL backends and of this client, and the number of over-assigned records
(submitted > min_submitted; goal 0). Goals: p95 < 10 ms, >= 300 annotations/s.

Deployment setting: the image runs granian (keep-alive, HTTP parsed in Rust). On the 2-CPU bench host, quiet (load
1.5-2.7), 100k records, 20-30 s runs, annotations/s at 10 / 50 annotators: granian 2 x 1 thread 162.7-180.9 /
145.8-193.8, gunicorn sync x 2 in the same minutes 129.3-133.2 / 146.5-164.5; web CPU per annotation 6.7-7.5 ms
against 9.0-9.4 ms at 10 annotators, client CPU 0.6-0.8 against 1.2-1.3 ms (no new connection per request).
Earlier, on a busy host (load 4-7): gthread 2 x 2 78 / 68 and sync x 3 91 / 48, no better than sync x 2.
With --explain (default on) prints EXPLAIN (ANALYZE, BUFFERS) of next_record_for's record query.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    GranianServer,
    GunicornServer,
    PostgresCpu,
    RssSampler,
    database_prepare,
    database_url,
    django_setup,
    fmt_ms,
    mb,
    summarize,
    tree_cpu_seconds,
)

WORDS = ("a careful answer explains each step states assumptions checks the units and gives a short "
         "example while a weaker answer skips the reasoning repeats the question or invents facts "
         "that a reviewer must catch before the pair is used to train a reward model").split()
WORKSPACE = "bench-distribution"


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def dataset_ensure(n_records: int, *, min_submitted: int, regenerate: bool):
    """The bench dataset with exactly n_records records (generated with COPY when missing)."""
    from django.db import connection, transaction

    from annotation.models import Dataset, Record, Workspace
    from annotation.services import dataset_create, dataset_update

    ws, _ = Workspace.objects.get_or_create(name=WORKSPACE)
    name = f"distribution-{n_records}"
    ds = Dataset.objects.filter(workspace=ws, name=name).first()
    if ds is not None and not regenerate and Record.objects.filter(dataset=ds).count() == n_records:
        if ds.min_submitted != min_submitted:
            dataset_update(dataset=ds, min_submitted=min_submitted)
        return ds
    if ds is not None:
        with connection.cursor() as c:  # a raw delete: the ORM cascade would load every row
            for table in ("annotation_suggestion", "annotation_response", "annotation_lease"):
                c.execute(f"DELETE FROM {table} WHERE record_id IN "
                          f"(SELECT id FROM annotation_record WHERE dataset_id = %s)", [ds.pk])
            c.execute("DELETE FROM annotation_record WHERE dataset_id = %s", [ds.pk])
        ds.delete()
    ds = dataset_create(
        workspace=ws, name=name, min_submitted=min_submitted, shuffle_responses=True,
        fields=[{"name": "prompt"}, {"name": "response-1", "kind": "markdown"},
                {"name": "response-2", "kind": "markdown"}],
        questions=[{"name": "ranking", "kind": "ranking", "options": {"values": ["response-1", "response-2"]}}])
    ds.status = Dataset.Status.PUBLISHED
    ds.save(update_fields=["status"])
    rng = random.Random(7)
    prompts = [_text(rng, 20) for _ in range(997)]
    answers = [_text(rng, 40) for _ in range(1009)]
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as c:
        cols = ("dataset_id, external_id, fields, metadata, priority, submitted_count, leased_count, "
                "completed, created_at, updated_at")
        with c.cursor.copy(f"COPY annotation_record ({cols}) FROM STDIN") as copy:
            for i in range(n_records):
                fields = json.dumps({"prompt": prompts[i % 997], "response-1": answers[i % 1009],
                                     "response-2": answers[(i * 7 + 3) % 1009]})
                meta = '{"source": "bench", "model": "%s"}' % ("a" if i % 2 else "b")
                copy.write_row((ds.pk, f"r{i}", fields, meta, float(i % 5), 0, 0, False, "now", "now"))
                if i and i % 200_000 == 0:
                    print(f"  {i:,} records written", flush=True)
    with connection.cursor() as c:
        c.execute("ANALYZE annotation_record")
    elapsed = time.perf_counter() - started
    print(f"generated {n_records:,} records in {elapsed:.1f} s ({n_records / elapsed:,.0f}/s)", flush=True)
    return ds


def annotators_ensure(ds, n: int) -> list[tuple[object, str]]:
    from annotation.services import member_upsert

    out = []
    for i in range(n):
        membership, token, _ = member_upsert(workspace=ds.workspace, username=f"bench-annotator-{i}",
                                             role="annotator")
        out.append((membership.user, token))
    return out


def state_reset(ds) -> None:
    from django.db import connection

    with connection.cursor() as c:
        c.execute("DELETE FROM annotation_response WHERE dataset_id = %s", [ds.pk])
        c.execute("DELETE FROM annotation_lease WHERE dataset_id = %s", [ds.pk])
        c.execute("UPDATE annotation_record SET submitted_count = 0, leased_count = 0, completed = false "
                  "WHERE dataset_id = %s AND (submitted_count <> 0 OR leased_count <> 0 OR completed)", [ds.pk])
        c.execute("VACUUM ANALYZE annotation_record")


def over_assigned_count(ds) -> int:
    from annotation.models import Record

    return Record.objects.filter(dataset=ds, submitted_count__gt=ds.min_submitted).count()


def twice_to_one_user(ds) -> int:
    """(record, user) pairs with more than one response: impossible by constraint, checked anyway."""
    from django.db.models import Count

    from annotation.models import Response

    return (Response.objects.filter(dataset=ds).values("record_id", "user_id").annotate(n=Count("id"))
            .filter(n__gt=1).count())


# --- load loops --------------------------------------------------------------------------------

class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.annotations = 0
        self.next_ms: list[float] = []
        self.submit_ms: list[float] = []
        self.warnings = 0
        self.empty = 0
        self.errors: list[str] = []


class LeanHTTP:
    """A minimal HTTP/1.1 client on one socket, kept alive while the server allows (gunicorn's sync
    workers close after each response; gthread keeps the connection): the bench shares the server's
    CPUs, so it does little per request (http.client also parses every header through the email
    package). Measured on the shared host: about 2 ms of client CPU per annotation with sync workers
    either way (a new connection per request dominates), 1.1-1.5 ms with gthread's keep-alive.
    Fixed-length bodies only (what the API sends)."""

    def __init__(self, port: int, token: str):
        self.port = port
        self.head = f"Host: 127.0.0.1:{port}\r\nAuthorization: Token {token}\r\nAccept: application/json\r\n"
        self.sock: socket.socket | None = None
        self.buf = b""

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buf = b""
        extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body else ""
        self.sock.sendall(f"{method} {path} HTTP/1.1\r\n{self.head}{extra}\r\n".encode() + body)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._recv()
        head, self.buf = self.buf[:end].lower(), self.buf[end + 4:]
        status = int(head[9:12])
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at + 17)
            length = int(head[at + 17:stop if stop >= 0 else None])
        elif status in (204, 304):
            length = 0
        else:
            raise RuntimeError(f"{method} {path}: a response without Content-Length")
        while len(self.buf) < length:
            self._recv()
        out, self.buf = self.buf[:length], self.buf[length:]
        if b"\r\nconnection: close" in head:
            self.close()
        return status, out

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def http_annotator(port: int, token: str, dataset_id: int, deadline: float, tally: Tally) -> None:
    conn = LeanHTTP(port, token)
    next_path = f"/api/v1/datasets/{dataset_id}/next/"
    next_ms, submit_ms, done, warnings = [], [], 0, 0
    try:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            status, body = conn.request("GET", next_path)
            next_ms.append((time.perf_counter() - t0) * 1000)
            if status == 204:
                with tally.lock:
                    tally.empty += 1
                return
            if status != 200:
                raise RuntimeError(f"next: {status} {body[:200]!r}")
            record = json.loads(body)
            order = record["display_order"]
            payload = json.dumps({"values": {"ranking": [{"value": f, "rank": k + 1} for k, f in enumerate(order)]},
                                  "status": "submitted", "display_order": order, "duration": 2.0}).encode()
            t0 = time.perf_counter()
            status, body = conn.request("POST", f"/api/v1/records/{record['id']}/responses/", payload)
            submit_ms.append((time.perf_counter() - t0) * 1000)
            if status not in (200, 201):
                raise RuntimeError(f"submit: {status} {body[:200]!r}")
            warnings += b'"warnings":[]' not in body and bool(json.loads(body)["warnings"])
            done += 1
    except Exception as exc:  # noqa: BLE001 - counted and printed
        with tally.lock:
            tally.errors.append(repr(exc))
    finally:
        conn.close()
        with tally.lock:
            tally.annotations += done
            tally.next_ms += next_ms
            tally.submit_ms += submit_ms
            tally.warnings += warnings


def service_annotator(user, dataset_id: int, deadline: float, tally: Tally) -> None:
    from django.db import connections

    from annotation.models import Dataset
    from annotation.selectors import ranked_fields
    from annotation.services import display_order_for, next_record_for, response_upsert

    next_ms, submit_ms, done, warnings = [], [], 0, 0
    try:
        ds = Dataset.objects.get(pk=dataset_id)
        names = ranked_fields(ds)
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            record = next_record_for(user, ds)
            next_ms.append((time.perf_counter() - t0) * 1000)
            if record is None:
                with tally.lock:
                    tally.empty += 1
                return
            order = display_order_for(record=record, user_id=user.pk, field_names=names, shuffle=True)
            t0 = time.perf_counter()
            result = response_upsert(user=user, record=record, status="submitted", display_order=order,
                                     values={"ranking": [{"value": f, "rank": k + 1} for k, f in enumerate(order)]})
            submit_ms.append((time.perf_counter() - t0) * 1000)
            warnings += bool(result.warnings)
            done += 1
    except Exception as exc:  # noqa: BLE001
        with tally.lock:
            tally.errors.append(repr(exc))
    finally:
        connections.close_all()
        with tally.lock:
            tally.annotations += done
            tally.next_ms += next_ms
            tally.submit_ms += submit_ms
            tally.warnings += warnings


def run_load(ds, annotators, *, n: int, seconds: float, mode: str, server: GunicornServer | None) -> dict:
    tally = Tally()
    deadline = time.monotonic() + seconds
    if mode == "http":
        threads = [threading.Thread(target=http_annotator, args=(server.port, token, ds.pk, deadline, tally))
                   for _user, token in annotators[:n]]
    else:
        threads = [threading.Thread(target=service_annotator, args=(user, ds.pk, deadline, tally))
                   for user, _token in annotators[:n]]
    mark = server.log_mark() if server else 0
    cpu_before = tree_cpu_seconds(server.pid) if server else 0.0
    client_before = time.process_time()
    # PostgreSQL's CPU sampled through the run: Django replaces a worker's connection once it is CONN_MAX_AGE old,
    # and a backend read only before and after would take its CPU with it when it ends
    pg = PostgresCpu(urlparse(server.database_url).path.lstrip("/"), server.database_url) if server else None
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    out = {"elapsed": elapsed, "tally": tally, "client_cpu_s": time.process_time() - client_before}
    if server is not None:
        out["server_cpu_s"] = tree_cpu_seconds(server.pid) - cpu_before
        out["pg_cpu_s"] = pg.stop()[0]  # the backends (the shared writers apart)
        nxt = server.request_times_ms(method="GET", path_contains="/next/", since=mark)
        sub = server.request_times_ms(method="POST", path_contains="/responses/", since=mark)
        out["server_next"], out["server_submit"], out["server_all"] = summarize(nxt), summarize(sub), summarize(nxt + sub)
    return out


# --- EXPLAIN -----------------------------------------------------------------------------------

def explain_next(ds, user, label: str) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) the record query next_record_for runs for this user now
    (inside a transaction that is rolled back: nothing is leased)."""
    from django.db import connection, transaction

    from annotation.models import Lease
    from annotation.services import next_record_for

    class _Rollback(Exception):
        pass

    try:
        with transaction.atomic():
            Lease.objects.filter(dataset=ds, user=user).delete()  # force the search, not the resume
            # The statements as sent, with their parameters: with server-side binding the logged text keeps
            # $1-style placeholders, which EXPLAIN alone cannot run.
            sent: list[tuple[str, object]] = []

            def keep(execute, sql, params, many, context):
                sent.append((sql, params))
                return execute(sql, params, many, context)

            with connection.execute_wrapper(keep):
                t0 = time.perf_counter()
                next_record_for(user, ds)
                call_ms = (time.perf_counter() - t0) * 1000
            select = [(q, p) for q, p in sent if "FOR UPDATE" in q and "annotation_record" in q]
            print(f"\nEXPLAIN next_record_for ({label}); the call made {len(sent)} queries "
                  f"in {call_ms:.2f} ms", flush=True)
            if select:
                sql, params = select[0]
                with connection.cursor() as c:
                    c.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                    plan = "\n".join(row[0] for row in c.fetchall())
                print(sql)
                print(plan, flush=True)
            raise _Rollback
    except _Rollback:
        pass


# --- main --------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000, help="records in the bench dataset (default 20,000)")
    parser.add_argument("--annotators", default="10,50", help="comma-separated concurrency levels")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each run")
    parser.add_argument("--mode", choices=["http", "service"], default="http")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="web server worker processes (http mode; default: one per CPU)")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"],
                        help="gunicorn's worker class (--server gunicorn; default sync)")
    parser.add_argument("--server", default="granian", choices=["granian", "gunicorn"],
                        help="the web server (http mode; default granian, as in the image)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker running Django (granian; gunicorn gthread)")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--min-submitted", type=int, default=2)
    parser.add_argument("--regenerate", action="store_true", help="drop and generate the dataset again")
    parser.add_argument("--no-explain", action="store_true")
    args = parser.parse_args()
    levels = [int(x) for x in args.annotators.split(",") if x.strip()]

    url = database_url("preflab_bench")
    database_prepare(url)
    django_setup(url)
    from django.db import connection

    ds = dataset_ensure(args.records, min_submitted=args.min_submitted, regenerate=args.regenerate)
    annotators = annotators_ensure(ds, max(levels))
    print(f"dataset {ds.pk}: {args.records:,} records, min_submitted={ds.min_submitted}, mode={args.mode}, "
          f"PostgreSQL {connection.cursor().connection.info.server_version}", flush=True)

    server = None
    if args.mode == "http":
        if args.server == "granian":
            server = GranianServer(port=args.port, database_url=url, workers=args.workers, threads=args.threads).start()
            print(f"granian on :{args.port}, {args.workers} workers x {args.threads} blocking threads", flush=True)
        else:
            server = GunicornServer(port=args.port, database_url=url, workers=args.workers,
                                    worker_class=args.worker_class, threads=args.threads).start()
            print(f"gunicorn on :{args.port}, {args.workers} {args.worker_class} workers"
                  + (f" x {args.threads} threads" if args.worker_class == "gthread" else ""), flush=True)
    try:
        for n in levels:
            state_reset(ds)
            connection.close()
            if server is not None:
                # warm every worker (imports, DB connection) before measuring
                run_load(ds, annotators, n=min(n, 8), seconds=2, mode="http", server=server)
                state_reset(ds)
                with RssSampler(server.pid) as rss:
                    result = run_load(ds, annotators, n=n, seconds=args.seconds, mode="http", server=server)
            else:
                result = run_load(ds, annotators, n=n, seconds=args.seconds, mode="service", server=None)
                rss = None
            t = result["tally"]
            rate = t.annotations / result["elapsed"]
            print(f"\n== {n} concurrent annotators, {args.records:,} records, {result['elapsed']:.1f} s "
                  f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs) ==")
            print(f"annotations: {t.annotations:,}  ->  {rate:,.1f} annotations/s (goal >= 300)")
            if server is not None:
                print(f"server time  next   : {fmt_ms(result['server_next'])}")
                print(f"server time  submit : {fmt_ms(result['server_submit'])}")
                print(f"server time  all    : {fmt_ms(result['server_all'])}   (goal p95 < 10 ms)")
                print(f"client latency next : {fmt_ms(summarize(t.next_ms))}")
                print(f"client latency submit: {fmt_ms(summarize(t.submit_ms))}")
                requests = result["server_all"]["n"]
                if requests:
                    print(f"server CPU ({args.server} processes, user+sys): {result['server_cpu_s'] * 1000 / requests:.2f} ms "
                          f"per request; PostgreSQL's CPU not included")
                if t.annotations and result["pg_cpu_s"] is not None:
                    web = result["server_cpu_s"] * 1000 / t.annotations
                    pg = result["pg_cpu_s"] * 1000 / t.annotations
                    print(f"CPU per annotation: web {web:.2f} ms + PostgreSQL {pg:.2f} ms = {web + pg:.2f} ms "
                          "(the backends of the workers' connections)")
                if t.annotations:
                    print(f"client CPU (this process, all annotator threads): "
                          f"{result['client_cpu_s'] * 1000 / t.annotations:.2f} ms per annotation")
                print(f"server RSS peak: {mb(rss.peak_tree)} all processes, {mb(rss.peak_process)} largest process")
            else:
                print(f"service time next   : {fmt_ms(summarize(t.next_ms))}")
                print(f"service time submit : {fmt_ms(summarize(t.submit_ms))}")
                print(f"service time all    : {fmt_ms(summarize(t.next_ms + t.submit_ms))}   (goal p95 < 10 ms)")
            print(f"over-assigned records: {over_assigned_count(ds)} (goal 0); submit warnings: {t.warnings}; "
                  f"same record twice to one user: {twice_to_one_user(ds)}; 204 (nothing left): {t.empty}")
            if t.errors:
                print(f"ERRORS ({len(t.errors)}): {t.errors[:3]}")
        if not args.no_explain:
            busiest = annotators[0][0]
            explain_next(ds, busiest, f"annotator with {ds.responses.filter(user=busiest).count()} responses, "
                                      f"after the last run")
            from annotation.services import member_upsert

            fresh, _tok, _ = member_upsert(workspace=ds.workspace, username="bench-fresh", role="annotator")
            explain_next(ds, fresh.user, "an annotator with no responses")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
