"""Benchmark: database round trips and CPU per annotation on the API hot path (PostgreSQL).

    .venv/bin/python bench/bench_hotpath_api.py --records 100000 --requests 300
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/mine .venv/bin/python bench/bench_hotpath_api.py

The two calls every API annotator makes, with token authentication, through Django's test Client
in this process (full middleware stack, DEBUG off, no web server, no network):
  * GET  /api/v1/datasets/{id}/next/          (a record is leased to the caller)
  * POST /api/v1/records/{rid}/responses/     (a submitted ranking)
Several annotators take turns on one pairwise dataset (the records of bench_annotate_page, written
once with COPY into the database `preflab_bench_api` unless BENCH_DATABASE_URL names another).

Prints per call: database round trips (counted by preflab.pgbackend.roundtrips: every time psycopg
sends and waits for an answer, so BEGIN, COMMIT and Django's connection health check count, not only
the ORM's queries, and a pipelined batch counts once; as on a real server, each
request starts with Django's close_old_connections, which the test Client leaves out), the web process's CPU from
Django's request_started to request_finished (thread CPU time), the PostgreSQL backend's CPU per
annotation (from /proc of the backend process: the server must run on this machine, else n/a),
and the load average.
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import database_prepare, database_url, django_setup, summarize  # noqa: E402


def backend_cpu_s(pid: int) -> float | None:
    """utime + stime of a local process, in seconds (None when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300, help="measured annotations (next + submit)")
    parser.add_argument("--annotators", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--ab-prepared", action="store_true",
                        help="also measure with psycopg's prepared statements off, in alternating blocks of 20 "
                             "annotations (the same load for both), and print both")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also print cProfile's N costliest functions (own CPU time) over the measured annotations "
                             "(the profiler slows the calls, so the CPU figures of that run are not comparable)")
    args = parser.parse_args()

    url = database_url("preflab_bench_api")
    database_prepare(url)
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(64))
    django_setup(url)

    from django.conf import settings
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections, connection
    from django.test import Client

    from annotation.services import api_token_get, member_upsert
    from bench.bench_annotate_page import dataset_ensure, state_reset
    from preflab.pgbackend.roundtrips import round_trips

    settings.ALLOWED_HOSTS = ["*"]
    ds = dataset_ensure(args.records, regenerate=args.regenerate)
    state_reset(ds)
    clients = []
    for i in range(args.annotators):
        membership, _, _ = member_upsert(workspace=ds.workspace, username=f"bench-api-{i}", role="annotator")
        token = api_token_get(user=membership.user)
        clients.append(Client(HTTP_AUTHORIZATION=f"Token {token.key}"))

    # Round trips: counted at psycopg's level (preflab.pgbackend.roundtrips), for the whole run.
    counting = round_trips()
    trips = counting.__enter__()
    cpu = {"start": 0.0, "last": 0.0}

    def _started(**kwargs):
        cpu["start"] = time.thread_time()
        # what a real server does at each request (the test Client leaves it out): the persistent
        # connection's age and health are checked again (CONN_MAX_AGE, CONN_HEALTH_CHECKS)
        close_old_connections()

    def _finished(**kwargs):
        cpu["last"] = time.thread_time() - cpu["start"]

    request_started.connect(_started)
    request_finished.connect(_finished)

    def annotate(i: int) -> tuple[tuple[int, float], tuple[int, float]] | None:
        c = clients[i % len(clients)]
        before = trips.count
        r = c.get(f"/api/v1/datasets/{ds.pk}/next/")
        got = (trips.count - before, cpu["last"])
        if r.status_code != 200:
            raise SystemExit(f"next answered {r.status_code}: {r.content[:300]!r}")
        body = r.json()
        ranking = [{"value": name, "rank": k + 1} for k, name in enumerate(body["display_order"])]
        before = trips.count
        r = c.post(f"/api/v1/records/{body['id']}/responses/",
                   {"values": {"ranking": ranking}, "status": "submitted", "duration": 3.5},
                   content_type="application/json")
        if r.status_code not in (200, 201):
            raise SystemExit(f"submit answered {r.status_code}: {r.content[:300]!r}")
        return got, (trips.count - before, cpu["last"])

    for i in range(args.warmup):
        annotate(i)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]
    variants = {"prepared": 5, "unprepared": None} if args.ab_prepared else {"": connection.connection.prepare_threshold}
    runs = {name: {"next": [], "submit": [], "pg": 0.0, "wall": 0.0} for name in variants}
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile(time.thread_time)  # CPU, not the waits for the database
        profiler.enable()
    for i in range(args.requests * len(variants)):
        name = list(variants)[(i // 20) % len(variants)]
        run = runs[name]
        connection.connection.prepare_threshold = variants[name]
        pg_before, wall = backend_cpu_s(backend), time.perf_counter()
        a, b = annotate(i)
        run["wall"] += time.perf_counter() - wall
        pg_after = backend_cpu_s(backend)
        if pg_before is not None and pg_after is not None:
            run["pg"] += pg_after - pg_before
        else:
            run["pg"] = None
        run["next"].append(a)
        run["submit"].append(b)
    counting.__exit__(None, None, None)
    if profiler is not None:
        import pstats

        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(args.profile)
        stats.sort_stats("cumulative").print_stats(args.profile)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_prepared_statements")
        prepared = cur.fetchone()[0]

    def line(label, rows):
        t = sorted({n for n, _ in rows})
        s = summarize([ms * 1000 for _, ms in rows])
        return (f"{label:<8} round trips {t[0]}" + (f"-{t[-1]}" if len(t) > 1 else "") +
                f"   web CPU p50 {s['p50']:.2f} ms  p95 {s['p95']:.2f} ms  mean {sum(ms for _, ms in rows) * 1000 / len(rows):.2f} ms")

    load = os.getloadavg()
    print(f"records {args.records:,}  annotators {args.annotators}  annotations {args.requests}  "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}  (CPUs {os.cpu_count()})  "
          f"statements prepared on the connection: {prepared}")
    for name, run in runs.items():
        n = len(run["next"])
        if name:
            print(f"--- {name}")
        print(line("next", run["next"]))
        print(line("submit", run["submit"]))
        web = sum(ms for _, ms in run["next"] + run["submit"]) * 1000 / n
        pg = run["pg"] * 1000 / n if run["pg"] is not None else None
        print(f"per annotation: web CPU {web:.2f} ms + PostgreSQL CPU " + (f"{pg:.2f} ms = {web + pg:.2f} ms" if pg is not None
              else "n/a (backend not on this machine)") + f"   ({n / run['wall']:.0f} annotations/s, one client, serial)")
    state_reset(ds)


if __name__ == "__main__":
    main()
