"""Load: N concurrent API annotators doing next+submit against gunicorn + PostgreSQL.

    .venv/bin/python bench/bench_load.py --seconds 180 --annotators 100 --records 20000

Creates (and afterwards drops) a dedicated database, migrates it, loads a published pairwise dataset,
starts gunicorn on 127.0.0.1, and runs one thread per annotator (requests.Session, token auth):
GET /api/v1/datasets/{id}/next/ then POST /api/v1/records/{rid}/responses/ (a ranking, submitted),
until the time is up or nothing is left. Every acknowledged (2xx) submit is remembered; afterwards the
database is checked: 0 lost submissions (acknowledged but not stored), 0 duplicates (a record handed
to the same annotator twice), 0 records over-assigned (more submitted responses than min_submitted).
Prints p50/p95/p99 latency per request kind and the request and annotation rates.
Loopback only; stops by itself; never touches other databases.
"""
from __future__ import annotations

import argparse
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=180.0, help="load duration (default 3 minutes)")
    p.add_argument("--annotators", type=int, default=100)
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--min-submitted", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (gthread)")
    p.add_argument("--port", type=int, default=8107)
    p.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"),
                   help="PostgreSQL server URL (without database name)")
    p.add_argument("--db", default="preflab_bench_load")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--timeout", type=float, default=30.0, help="client timeout per request (s)")
    return p.parse_args(argv)


# --- database and server ---------------------------------------------------------------------------

def recreate_database(pg: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(pg: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_env(args, var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": f"{args.pg}/{args.db}",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PREFLAB_VAR_DIR": str(var_dir),
        "PREFLAB_ENV_FILE": str(var_dir / "none.env"),
        "CACHE_URL": "locmemcache://",
        "LOG_LEVEL": "ERROR",
        "DJANGO_SETTINGS_MODULE": "preflab.settings",
    })
    for key in ("SECURE_SSL_REDIRECT", "BEHIND_PROXY", "STATICFILES_STORAGE"):
        env.pop(key, None)
    return env


def setup_data(args) -> tuple[int, list[tuple[str, str]]]:
    """In-process Django (the bench database): a workspace, annotators with tokens, a dataset."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from rest_framework.authtoken.models import Token

    from annotation import services
    from annotation.models import Dataset, Membership, Record, Workspace

    User = get_user_model()
    ws = Workspace.objects.create(name="bench-load")
    password = make_password(None)
    users = User.objects.bulk_create([User(username=f"load-{i:03d}", password=password)
                                      for i in range(args.annotators)])
    users = list(User.objects.filter(username__startswith="load-").order_by("username"))
    Membership.objects.bulk_create([Membership(user=u, workspace=ws, role="annotator") for u in users])
    Token.objects.bulk_create([Token(user=u, key=secrets.token_hex(20)) for u in users])
    tokens = dict(Token.objects.filter(user__in=users).values_list("user__username", "key"))
    dataset = services.dataset_create(
        workspace=ws, name="load", min_submitted=args.min_submitted,
        fields=[{"name": "prompt", "kind": "text"}, {"name": "response-1", "kind": "markdown"},
                {"name": "response-2", "kind": "markdown"}],
        questions=[{"name": "ranking", "kind": "ranking", "options": {"values": ["response-1", "response-2"]}}])
    rng = random.Random(7)
    batch = []
    for i in range(args.records):
        batch.append(Record(dataset=dataset, external_id=f"r{i}", priority=rng.random(),
                            fields={"prompt": f"Question {i}?", "response-1": f"Answer one to {i}.",
                                    "response-2": f"Answer two to {i}."}))
        if len(batch) == 5000:
            Record.objects.bulk_create(batch)
            batch = []
    Record.objects.bulk_create(batch)
    services.dataset_publish(dataset=dataset)
    Dataset.objects.filter(pk=dataset.pk).update(shuffle_responses=True)
    # Fresh statistics, as autovacuum gives a real deployment shortly after a bulk load: without them
    # the planner takes the new 20k-row table for empty and next_record_for's anti-join goes from
    # ~0.4 ms to ~125 ms.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return dataset.pk, sorted(tokens.items())


def start_gunicorn(args, env, log: Path | None = None) -> subprocess.Popen:
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    cmd = [gunicorn, "preflab.wsgi:application", "--bind", f"127.0.0.1:{args.port}", "--workers",
           str(args.workers), "--worker-class", "gthread", "--threads", str(args.threads), "--timeout", "60",
           "--backlog", "2048", "--log-level", "warning"]
    out = open(log, "ab") if log else None  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, stdout=out, stderr=out)
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{args.port}/healthz", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited during start")
        time.sleep(0.3)
    stop_process(proc)
    raise SystemExit("gunicorn did not become healthy within 60 s")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


# --- the load ------------------------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: Counter = Counter()
        self.acked: list[tuple[str, int]] = []        # (username, record id) acknowledged 2xx submits
        self.handed: dict[str, list[int]] = defaultdict(list)  # username -> records handed by next
        self.errors: Counter = Counter()
        self.over_assigned_flags = 0

    def add(self, kind: str, seconds: float, status: int):
        with self.lock:
            self.latency[kind].append(seconds)
            self.status[(kind, status)] += 1


def annotator(base: str, dataset_id: int, username: str, token: str, deadline: float, stats: Stats,
              timeout: float, done_users: set):
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    rng = random.Random(username)
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            r = session.get(f"{base}/api/v1/datasets/{dataset_id}/next/", timeout=timeout)
        except requests.RequestException as exc:
            stats.errors[f"next: {type(exc).__name__}"] += 1
            time.sleep(0.2)
            continue
        stats.add("next", time.perf_counter() - t0, r.status_code)
        if r.status_code == 204:
            done_users.add(username)
            return
        if r.status_code != 200:
            stats.errors[f"next: HTTP {r.status_code}"] += 1
            time.sleep(0.2)
            continue
        record = r.json()
        rid = record["id"]
        with stats.lock:
            stats.handed[username].append(rid)
        order = record.get("display_order") or ["response-1", "response-2"]
        first = rng.random() < 0.5
        ranking = [{"value": order[0], "rank": 1 if first else 2}, {"value": order[1], "rank": 2 if first else 1}]
        body = {"values": {"ranking": ranking}, "status": "submitted", "display_order": order,
                "duration": round(rng.uniform(2, 30), 2)}
        t0 = time.perf_counter()
        try:
            s = session.post(f"{base}/api/v1/records/{rid}/responses/", json=body, timeout=timeout)
        except requests.RequestException as exc:
            stats.errors[f"submit: {type(exc).__name__}"] += 1
            continue
        stats.add("submit", time.perf_counter() - t0, s.status_code)
        if 200 <= s.status_code < 300:
            with stats.lock:
                stats.acked.append((username, rid))
                if s.json().get("over_assigned"):
                    stats.over_assigned_flags += 1
        else:
            stats.errors[f"submit: HTTP {s.status_code}"] += 1


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process and its children (gunicorn master + workers)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] * 1000


def verify(dataset_id: int, stats: Stats, min_submitted: int) -> dict:
    from django.db.models import Count

    from annotation.models import Response

    stored = set(Response.objects.filter(dataset_id=dataset_id, status="submitted")
                 .values_list("user__username", "record_id"))
    acked = set(stats.acked)
    lost = acked - stored
    dup_handed = sum(len(v) - len(set(v)) for v in stats.handed.values())
    dup_acked = len(stats.acked) - len(acked)
    over = (Response.objects.filter(dataset_id=dataset_id, status="submitted").values("record_id")
            .annotate(n=Count("id")).filter(n__gt=min_submitted).count())
    return {"acked": len(acked), "stored": len(stored), "lost": len(lost), "stored_not_acked": len(stored - acked),
            "duplicates_handed": dup_handed, "duplicate_acks": dup_acked, "over_assigned": over}


def main(argv=None) -> int:
    args = parse_args(argv)
    var_dir = REPO / "var" / "bench_load"
    var_dir.mkdir(parents=True, exist_ok=True)
    env = server_env(args, var_dir)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "PREFLAB_VAR_DIR",
                                           "PREFLAB_ENV_FILE", "CACHE_URL", "LOG_LEVEL", "DJANGO_SETTINGS_MODULE")})
    for key in ("SECURE_SSL_REDIRECT", "BEHIND_PROXY", "STATICFILES_STORAGE"):
        os.environ.pop(key, None)
    print(f"database {args.db}: create + migrate", flush=True)
    recreate_database(args.pg, args.db)
    proc = None
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True)
        t0 = time.monotonic()
        dataset_id, tokens = setup_data(args)
        print(f"loaded {args.records} records, {args.annotators} annotators in {time.monotonic() - t0:.1f} s", flush=True)
        from django.db import connections

        connections.close_all()
        proc = start_gunicorn(args, env)
        print(f"gunicorn -w {args.workers} -k gthread --threads {args.threads} on 127.0.0.1:{args.port}; "
              f"{args.annotators} annotators for {args.seconds:.0f} s", flush=True)
        stats = Stats()
        done_users: set = set()
        base = f"http://127.0.0.1:{args.port}"
        started = time.monotonic()
        server_cpu0 = tree_cpu_seconds(proc.pid)
        client_cpu0 = time.process_time()
        deadline = started + args.seconds
        threads = [threading.Thread(target=annotator, args=(base, dataset_id, u, t, deadline, stats, args.timeout,
                                                             done_users), daemon=True) for u, t in tokens]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()) + args.timeout + 5)
        elapsed = time.monotonic() - started
        server_cpu = tree_cpu_seconds(proc.pid) - server_cpu0
        client_cpu = time.process_time() - client_cpu0
        stop_process(proc)
        proc = None
        result = verify(dataset_id, stats, args.min_submitted)
        total_requests = sum(len(v) for v in stats.latency.values())
        print()
        print(f"elapsed {elapsed:.1f} s, annotators finished (204): {len(done_users)}/{args.annotators}")
        for kind in ("next", "submit"):
            lat = stats.latency[kind]
            print(f"  {kind:7s} n={len(lat):7d}  p50={pct(lat, 50):7.1f} ms  p95={pct(lat, 95):7.1f} ms  "
                  f"p99={pct(lat, 99):7.1f} ms")
        both = stats.latency["next"] + stats.latency["submit"]
        print(f"  all     n={len(both):7d}  p50={pct(both, 50):7.1f} ms  p95={pct(both, 95):7.1f} ms  "
              f"p99={pct(both, 99):7.1f} ms")
        print(f"requests/s {total_requests / elapsed:.1f}   annotations/s {result['acked'] / elapsed:.1f}")
        print(f"server CPU {server_cpu:.1f} s = {1000 * server_cpu / max(1, total_requests):.1f} ms per request; "
              f"load client CPU {client_cpu:.1f} s; machine load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} CPUs")
        print(f"statuses {dict(sorted((f'{k}:{s}', n) for (k, s), n in stats.status.items()))}")
        if stats.errors:
            print(f"errors {dict(stats.errors)}")
        print(f"acknowledged submits {result['acked']}, stored {result['stored']} "
              f"(stored but never acknowledged: {result['stored_not_acked']})")
        print(f"LOST {result['lost']}   DUPLICATES {result['duplicates_handed'] + result['duplicate_acks']}   "
              f"OVER-ASSIGNED {result['over_assigned']} (submits flagged over_assigned: {stats.over_assigned_flags})")
        ok = result["lost"] == 0 and result["duplicates_handed"] == 0 and result["duplicate_acks"] == 0 \
            and result["over_assigned"] == 0
        print("RESULT", "OK" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        if proc is not None:
            stop_process(proc)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001
            pass
        if not args.keep_db:
            drop_database(args.pg, args.db)


if __name__ == "__main__":
    sys.exit(main())
