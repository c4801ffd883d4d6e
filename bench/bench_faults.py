"""Faults: PostgreSQL restarted under load, Redis restarted during a job, an LLM endpoint flapping.

    .venv/bin/python bench/bench_faults.py                      # all three, private servers
    .venv/bin/python bench/bench_faults.py --scenario postgres --shared-postgres

By default the script starts its OWN PostgreSQL (initdb in a temporary directory, port 5507) and its
OWN Redis (port 6407, append-only file), so restarting them disturbs nobody; everything is removed at
the end. --shared-postgres / --shared-redis restart the machine's services instead
(`pg_ctlcluster --skip-systemctl-redirect <ver> main stop`, a pause of --outage seconds, `start`;
Redis `SHUTDOWN SAVE`, the pause, then its own command line again), always bringing them back
(try/finally) and keeping the outage short (--outage, default 3 s, at most 10).

(a) postgres: annotators do next+submit against gunicorn; PostgreSQL restarts mid-load. Requests
    during the outage must fail cleanly (503 with a message, or a refused connection; never a hang
    past the client timeout), the service must recover, and every submit acknowledged (2xx) is
    stored - before the restart and after.
(b) redis: a generation job on a real Celery worker over Redis (LLM test server); Redis restarts
    mid-job. The job must complete with exactly n responses per prompt, no duplicates.
(c) llm: the same job while the LLM endpoint flaps (down: 500/429/hangs, up: healthy). The job must
    complete, and every item that failed for good has its error recorded (done + failed = total,
    one JobError per failed response).
(d) worker: the same job; its worker is SIGKILLed mid-chunk and another started, with Redis'
    visibility timeout at its default (3600 s): the job liveness sweep (annotation.jobs) must re-queue
    the killed chunks (--stall / --sweep / --heartbeat: the PREFLAB_JOB_* settings, defaults as in
    production) and the job complete with exactly n responses per prompt, no duplicates. Prints the
    seconds from the kill to the first re-queue and to the job's end.
Loopback only; bounded in time; prints what happened and a RESULT line per scenario.
"""
from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from argparse import Namespace
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import bench_load  # noqa: E402

DB_NAME = "preflab_bench_faults"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenario", choices=["all", "postgres", "redis", "llm", "worker"], default="all")
    p.add_argument("--stall", type=float, default=90.0, help="(d) PREFLAB_JOB_STALL_SECONDS of the workers")
    p.add_argument("--sweep", type=float, default=30.0, help="(d) PREFLAB_JOB_SWEEP_SECONDS of the workers")
    p.add_argument("--heartbeat", type=float, default=10.0, help="(d) PREFLAB_JOB_HEARTBEAT_SECONDS of the workers")
    p.add_argument("--shared-postgres", action="store_true", help="restart the machine's PostgreSQL cluster")
    p.add_argument("--shared-redis", action="store_true", help="restart the machine's Redis")
    p.add_argument("--pg-port", type=int, default=5507)
    p.add_argument("--redis-port", type=int, default=6407)
    p.add_argument("--port", type=int, default=8107, help="gunicorn port")
    p.add_argument("--annotators", type=int, default=20)
    p.add_argument("--records", type=int, default=5000)
    p.add_argument("--load-seconds", type=float, default=30.0)
    p.add_argument("--prompts", type=int, default=150, help="prompts of the generation job (n=2 each)")
    p.add_argument("--timeout", type=float, default=15.0, help="client timeout per request (s)")
    p.add_argument("--lossy-redis", action="store_true",
                   help="(b) with a Redis that loses its data on restart (no append-only file): shows the job "
                        "stalling and the recovery procedure (cancel + resume). Private Redis only.")
    p.add_argument("--outage", type=float, default=3.0,
                   help="seconds a restarted service stays down between stop and start (kept under 10)")
    return p.parse_args(argv)


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# --- PostgreSQL ----------------------------------------------------------------------------------------

class Postgres:
    def __init__(self, args):
        self.shared = args.shared_postgres
        self.port = 5432 if self.shared else args.pg_port
        self.version = sorted(os.listdir("/etc/postgresql"))[-1] if Path("/etc/postgresql").exists() else "15"
        self.bin = Path(f"/usr/lib/postgresql/{self.version}/bin")
        self.datadir: Path | None = None

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"

    def _as_postgres(self, cmd: list[str], **kw):
        return sh(["runuser", "-u", "postgres", "--", *cmd], **kw)

    def start_private(self) -> None:
        self.datadir = Path(tempfile.mkdtemp(prefix="preflab-faults-pg-"))
        shutil.chown(self.datadir, "postgres", "postgres")
        done = self._as_postgres([str(self.bin / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres",
                                  "--no-sync"])
        if done.returncode:
            raise SystemExit(f"initdb failed: {done.stderr}")
        self._pg_ctl("start")

    def _pg_ctl(self, action: str) -> subprocess.CompletedProcess:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir} -c max_connections=200"
        cmd = [str(self.bin / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.datadir / "log"), "-w", "-t", "30"]
        if action in ("start", "restart"):
            cmd += ["-o", opts]
        if action in ("stop", "restart"):
            cmd += ["-m", "fast"]
        done = self._as_postgres(cmd + [action])
        if done.returncode:
            raise RuntimeError(f"pg_ctl {action} failed: {done.stdout} {done.stderr}")
        return done

    def restart(self, outage: float = 0.0) -> float:
        """Stop (fast: sessions are terminated), stay down `outage` seconds, start; returns the downtime."""
        t0 = time.monotonic()
        try:
            if self.shared:
                done = sh(["pg_ctlcluster", "--skip-systemctl-redirect", "-m", "fast", self.version, "main",
                             "stop"])
                if done.returncode:
                    raise RuntimeError(f"pg_ctlcluster stop failed: {done.stderr}")
            else:
                self._pg_ctl("stop")
            time.sleep(min(outage, 10.0))
        finally:
            if self.shared:
                done = sh(["pg_ctlcluster", "--skip-systemctl-redirect", self.version, "main", "start"])
                if done.returncode:
                    raise RuntimeError(f"pg_ctlcluster start failed: {done.stderr}")
            else:
                self._pg_ctl("start")
        return time.monotonic() - t0

    def ensure_running(self) -> None:
        if sh(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)]).returncode == 0:
            return
        if self.shared:
            sh(["pg_ctlcluster", "--skip-systemctl-redirect", self.version, "main", "start"])
        elif self.datadir is not None:
            self._pg_ctl("start")

    def close(self) -> None:
        if self.shared:
            self.ensure_running()
            return
        if self.datadir is not None:
            try:
                self._pg_ctl("stop")
            except RuntimeError:
                self._as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"])
            shutil.rmtree(self.datadir, ignore_errors=True)


# --- Redis -------------------------------------------------------------------------------------------

class Redis:
    def __init__(self, args):
        self.shared = args.shared_redis
        self.port = 6379 if self.shared else args.redis_port
        self.proc: subprocess.Popen | None = None
        self.dir: Path | None = None
        self.shared_cmd: list[str] | None = None
        self.shared_cwd: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{7 if self.shared else 0}"

    def _private_cmd(self) -> list[str]:
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--appendonly", "yes", "--save", "", "--daemonize", "no"]

    def start_private(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="preflab-faults-redis-"))
        self.proc = subprocess.Popen(self._private_cmd(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_up()

    def _wait_up(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sh(["redis-cli", "-p", str(self.port), "ping"]).stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise RuntimeError(f"redis on port {self.port} did not come up")

    def _get(self, name: str) -> str:
        out = sh(["redis-cli", "-p", str(self.port), "config", "get", name]).stdout.splitlines()
        return out[1] if len(out) > 1 else ""

    def _remember_shared(self) -> None:
        """The running server's settings (its process title hides the command line): restart with them."""
        get = self._get

        cmd = ["redis-server", "--port", str(self.port), "--daemonize", "yes"]
        for name in ("bind", "dir", "dbfilename", "save", "appendonly", "appendfilename", "protected-mode",
                     "maxmemory", "maxmemory-policy", "databases"):
            value = get(name)
            if name == "bind":
                cmd += ["--bind", *value.split()] if value else []
            elif value or name == "save":
                cmd += [f"--{name}", value]
        self.shared_cmd = cmd
        self.shared_cwd = get("dir") or "/"

    def restart(self, outage: float = 0.0, lossy: bool = False) -> float:
        t0 = time.monotonic()
        if lossy and not self.shared:  # a crash of a server without persistence: every queue is gone
            sh(["redis-cli", "-p", str(self.port), "shutdown", "nosave"])
            if self.proc is not None:
                self.proc.wait(timeout=10)
            for item in (self.dir or Path("/nonexistent")).glob("*"):
                shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink()
            time.sleep(min(outage, 10.0))
            self.proc = subprocess.Popen(self._private_cmd(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._wait_up()
            return time.monotonic() - t0
        if self.shared:
            self._remember_shared()
            dump = Path(self.shared_cwd or "/") / (self._get("dbfilename") or "dump.rdb")
            had_dump = dump.exists()
            # SHUTDOWN SAVE writes the dataset (every database: other people's too) and the restart loads it.
            sh(["redis-cli", "-p", str(self.port), "shutdown", "save"])
            try:
                time.sleep(min(outage, 10.0))
            finally:
                self._start_shared()
                self._wait_up()
            if not had_dump and "--save" in (self.shared_cmd or []) and \
                    self.shared_cmd[self.shared_cmd.index("--save") + 1] == "":
                dump.unlink(missing_ok=True)  # loaded again; leave no file a non-persistent server never had
        else:
            sh(["redis-cli", "-p", str(self.port), "shutdown"])  # append-only file is flushed
            try:
                if self.proc is not None:
                    self.proc.wait(timeout=10)
                time.sleep(min(outage, 10.0))
            finally:
                self.proc = subprocess.Popen(self._private_cmd(), stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL)
                self._wait_up()
        return time.monotonic() - t0

    def _start_shared(self) -> None:
        cmd = self.shared_cmd or ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                                  "--appendonly", "no", "--daemonize", "yes"]
        subprocess.run(cmd, cwd=self.shared_cwd or "/", check=False, capture_output=True)

    def ensure_running(self) -> None:
        if sh(["redis-cli", "-p", str(self.port), "ping"]).stdout.strip() == "PONG":
            return
        if self.shared:
            self._start_shared()
        else:
            self.proc = subprocess.Popen(self._private_cmd(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_up()

    def close(self) -> None:
        if self.shared:
            self.ensure_running()
            return
        if self.proc is not None and self.proc.poll() is None:
            sh(["redis-cli", "-p", str(self.port), "shutdown", "nosave"])
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- shared set-up ----------------------------------------------------------------------------------------

def configure_django(pg: Postgres, redis: Redis, var_dir: Path, queue: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": f"{pg.url}/{DB_NAME}?connect_timeout=3",
        "CELERY_BROKER_URL": redis.url, "REDIS_URL": redis.url, "PREFLAB_CPU_QUEUE": queue,
        "CELERY_VISIBILITY_TIMEOUT": "15", "PREFLAB_LLM_BACKOFF": "0.05", "PREFLAB_LLM_BACKOFF_MAX": "0.5",
        "DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PREFLAB_VAR_DIR": str(var_dir), "PREFLAB_ENV_FILE": str(var_dir / "none.env"), "CACHE_URL": "locmemcache://",
        "LOG_LEVEL": "ERROR", "DJANGO_SETTINGS_MODULE": "preflab.settings",
    })
    for key in ("SECURE_SSL_REDIRECT", "BEHIND_PROXY", "STATICFILES_STORAGE", "CELERY_TASK_ALWAYS_EAGER"):
        env.pop(key, None)
        os.environ.pop(key, None)
    os.environ.update({k: v for k, v in env.items() if k in (
        "DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "PREFLAB_CPU_QUEUE", "CELERY_VISIBILITY_TIMEOUT",
        "PREFLAB_LLM_BACKOFF", "PREFLAB_LLM_BACKOFF_MAX", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "PREFLAB_VAR_DIR",
        "PREFLAB_ENV_FILE", "CACHE_URL", "LOG_LEVEL", "DJANGO_SETTINGS_MODULE")})
    return env


def close_db():
    from django.db import connections

    connections.close_all()


# --- (a) PostgreSQL restarted under load ---------------------------------------------------------------

def scenario_postgres(args, pg: Postgres, env: dict) -> bool:
    print("\n== (a) PostgreSQL restarted during next+submit load ==", flush=True)
    load_args = Namespace(annotators=args.annotators, records=args.records, min_submitted=1, port=args.port,
                          workers=2, threads=8)
    dataset_id, tokens = bench_load.setup_data(load_args)
    close_db()
    log = Path(env["PREFLAB_VAR_DIR"]) / "gunicorn.log"
    proc = bench_load.start_gunicorn(load_args, env, log=log)
    print(f"gunicorn log: {log}", flush=True)
    base = f"http://127.0.0.1:{args.port}"
    events: list[tuple[float, float, str, str]] = []   # (start, end, kind, outcome)
    acked: list[tuple[str, int, float]] = []
    bodies_5xx: Counter = Counter()
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + args.load_seconds
    restart_at = started + args.load_seconds / 3
    restart = {}

    def user(username: str, token: str):
        import requests

        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        rng = random.Random(username)
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                r = session.get(f"{base}/api/v1/datasets/{dataset_id}/next/", timeout=args.timeout)
                outcome = str(r.status_code)
            except requests.RequestException as exc:
                r, outcome = None, type(exc).__name__
            with lock:
                events.append((t0, time.monotonic(), "next", outcome))
                if r is not None and r.status_code >= 500:
                    bodies_5xx[(r.status_code, r.text[:120])] += 1
            if r is None or r.status_code != 200:
                time.sleep(0.2)
                continue
            record = r.json()
            order = record.get("display_order") or ["response-1", "response-2"]
            first = rng.random() < 0.5
            body = {"values": {"ranking": [{"value": order[0], "rank": 1 if first else 2},
                                           {"value": order[1], "rank": 2 if first else 1}]},
                    "status": "submitted"}
            t0 = time.monotonic()
            try:
                s = session.post(f"{base}/api/v1/records/{record['id']}/responses/", json=body, timeout=args.timeout)
                outcome = str(s.status_code)
            except requests.RequestException as exc:
                s, outcome = None, type(exc).__name__
            t1 = time.monotonic()
            with lock:
                events.append((t0, t1, "submit", outcome))
                if s is not None and 200 <= s.status_code < 300:
                    acked.append((username, record["id"], t1))
                if s is not None and s.status_code >= 500:
                    bodies_5xx[(s.status_code, s.text[:120])] += 1

    def restarter():
        time.sleep(max(0.0, restart_at - time.monotonic()))
        restart["t0"] = time.monotonic()
        try:
            restart["seconds"] = pg.restart(args.outage)
        except Exception as exc:  # noqa: BLE001
            restart["error"] = str(exc)
        restart["t1"] = time.monotonic()

    threads = [threading.Thread(target=user, args=(u, t), daemon=True) for u, t in tokens]
    killer = threading.Thread(target=restarter, daemon=True)
    try:
        for t in threads:
            t.start()
        killer.start()
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()) + args.timeout + 5)
        killer.join(timeout=60)
    finally:
        bench_load.stop_process(proc)
        pg.ensure_running()
    if "error" in restart:
        print("restart failed:", restart["error"])
        return False
    t0, t1 = restart["t0"], restart["t1"]
    close_db()
    from annotation.models import Response

    stored = set(Response.objects.filter(dataset_id=dataset_id, status="submitted")
                 .values_list("user__username", "record_id"))
    acked_before = {(u, r) for u, r, t in acked if t < t0}
    acked_all = {(u, r) for u, r, _ in acked}
    lost_before = acked_before - stored
    lost_all = acked_all - stored
    during = [e for e in events if e[1] >= t0 and e[0] <= t1 + 1]
    failures = Counter(e[3] for e in events if not e[3].startswith("2"))
    longest = max((e[1] - e[0] for e in events), default=0.0)
    first_ok_after = min((e[1] for e in events if e[0] >= t1 and e[3].startswith("2")), default=None)
    recovery = (first_ok_after - t1) if first_ok_after else None
    hangs = sum(1 for e in events if e[1] - e[0] >= args.timeout or e[3] in ("ReadTimeout", "Timeout"))
    unclean = sum(n for (code, _), n in bodies_5xx.items() if code != 503)
    print(f"PostgreSQL down {restart['seconds']:.1f} s (stop, {args.outage:.0f} s pause, start); "
          f"requests in that window: {len(during)}")
    print(f"failed requests by outcome: {dict(failures)}")
    for (code, text), n in bodies_5xx.most_common(5):
        print(f"  {n} x {code}: {text!r}")
    print(f"longest request {longest:.2f} s (client timeout {args.timeout:.0f} s); hangs: {hangs}")
    print(f"first success {recovery:.2f} s after the restart finished" if recovery is not None else "NEVER recovered")
    print(f"acknowledged submits: {len(acked_before)} before the restart, {len(acked_all)} in all; stored {len(stored)}")
    print(f"lost before the restart: {len(lost_before)}, lost in all: {len(lost_all)}; 5xx other than 503: {unclean}")
    ok = not lost_all and hangs == 0 and recovery is not None and recovery < 15 and unclean == 0
    print("RESULT (a)", "OK" if ok else "FAILED")
    return ok


# --- (b)/(c) generation jobs on a real worker -------------------------------------------------------------

def start_worker(env: dict, queue: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "preflab", "worker", "-Q", queue, "-c", "2", "--pool", "threads",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"faults-{uuid.uuid4().hex[:6]}@%h",
         "-l", "warning"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)


def stop_worker(worker: subprocess.Popen) -> None:
    """Stop a worker started by start_worker: SIGTERM to its process group, SIGKILL after 15 s."""
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


def generation_job(server, prompts: int, queue: str, tag: str, *, timeout: float = 5.0, max_retries: int = 5):
    from annotation.models import Workspace
    from generation.models import Endpoint
    from generation.services import generation_job_create

    ws, _ = Workspace.objects.get_or_create(name="bench-faults")
    pool = [Endpoint.objects.create(workspace=ws, name=f"{tag}-{i}", model=f"{tag}-model-{i}",
                                    base_url=server.base_url, max_concurrency=8, timeout=timeout,
                                    max_retries=max_retries, queue=queue) for i in range(2)]
    path = Path(tempfile.mkdtemp(prefix="preflab-faults-")) / "prompts.jsonl"
    path.write_text("".join(f'{{"prompt": "fault question {i}"}}\n' for i in range(prompts)))
    return generation_job_create(workspace=ws, dataset_name=f"faults-{tag}-{uuid.uuid4().hex[:6]}", endpoints=pool,
                                 n=2, seed=3, chunk_size=10, prompts_source={"file": str(path)}, start=True)


def wait_job(job, timeout: float, until=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            job.refresh_from_db()
        except Exception:  # noqa: BLE001 - keep polling through a database hiccup
            close_db()
            time.sleep(0.5)
            continue
        if (until or (lambda j: not j.is_active))(job):
            return job
        time.sleep(0.3)
    return job


def check_generation(job) -> dict:
    from django.db.models import Count

    from annotation.models import JobError, Record
    from generation.models import GenerationOutput

    outputs = GenerationOutput.objects.filter(job=job)
    per_slot = outputs.values(*[f.name for f in GenerationOutput._meta.concrete_fields
                                if f.name in ("prompt_key", "slot")]).annotate(n=Count("id")).filter(n__gt=1)
    records = Record.objects.filter(dataset=job.dataset)
    complete = sum(1 for r in records if r.fields.get("response-1") and r.fields.get("response-2"))
    chunks = list(job.chunks.values_list("attempts", flat=True))
    seconds = ((job.finished_at or job.updated_at) - (job.started_at or job.created_at)).total_seconds()
    return {"status": job.status, "seconds": round(seconds, 1), "chunks": len(chunks),
            "chunk_runs": sum(chunks), "done": job.done, "failed": job.failed, "total": job.total,
            "outputs": outputs.count(), "duplicate_slots": per_slot.count(), "records": records.count(),
            "complete_records": complete, "errors": JobError.objects.filter(job=job).count(),
            "errors_without_text": JobError.objects.filter(job=job, error="").count()}


def scenario_redis(args, redis: Redis, env: dict, queue: str) -> bool:
    print("\n== (b) Redis restarted during a generation job ==", flush=True)
    from tests.llm_server import LLMTestServer

    server = LLMTestServer(latency=0.1).start()
    worker = start_worker(env, queue)
    try:
        job = generation_job(server, args.prompts, queue, "redis")
        job = wait_job(job, 60, until=lambda j: j.done >= j.total * 0.3 or not j.is_active)
        print(f"job {job.pk}: {job.done}/{job.total} done when Redis restarts", flush=True)
        lossy = args.lossy_redis and not redis.shared
        outage = redis.restart(args.outage, lossy=lossy)
        print(f"Redis down {outage:.1f} s (shutdown{' WITHOUT its data' if lossy else ''}, "
              f"{args.outage:.0f} s pause, start)", flush=True)
        if lossy:
            before = job.done
            job = wait_job(job, 25)
            print(f"25 s later: {job.done}/{job.total} done (was {before}), status {job.status}: the queued "
                  f"chunks went with Redis' data", flush=True)
            if job.is_active:
                from annotation.jobs import job_cancel, job_resume

                job_cancel(job=job)
                job_resume(job=job)
                print("recovery: job_cancel + job_resume re-enqueued the chunks that are not done", flush=True)
        job = wait_job(job, 120)
    finally:
        stop_worker(worker)
        server.stop()
        redis.ensure_running()
    result = check_generation(job)
    print(f"job: {result}; LLM requests served {server.count}")
    ok = (result["status"] == "succeeded" and result["outputs"] == result["total"] == args.prompts * 2
          and result["duplicate_slots"] == 0 and result["complete_records"] == args.prompts)
    print("RESULT (b)", "OK" if ok else "FAILED")
    return ok


def scenario_llm(args, env: dict, queue: str) -> bool:
    print("\n== (c) LLM endpoint flapping during a generation job ==", flush=True)
    from tests.llm_server import LLMTestServer

    server = LLMTestServer(latency=0.05, hang_seconds=30).start()
    stop = threading.Event()
    phases = Counter()

    def flap():
        rng = random.Random(11)
        while not stop.is_set():
            # down: mostly 500s, some 429 with Retry-After, a few hangs past the endpoint timeout
            server.clear_failures()
            server.fail_rate("500", 0.7, seed=rng.randint(0, 1000))
            server.fail("429", times=3, retry_after=0.1)
            server.fail("hang", times=1)
            server.fail("malformed", times=2)
            phases["down"] += 1
            stop.wait(1.5)
            server.clear_failures()  # up
            phases["up"] += 1
            stop.wait(1.5)

    worker = start_worker(env, queue)
    flapper = threading.Thread(target=flap, daemon=True)
    try:
        job = generation_job(server, args.prompts, queue, "flap", timeout=2.0, max_retries=2)
        flapper.start()
        job = wait_job(job, 180)
    finally:
        stop.set()
        flapper.join(timeout=5)
        stop_worker(worker)
        server.stop()
    result = check_generation(job)
    print(f"flapping phases {dict(phases)}; failures served by the server {dict(server.failures_served)}")
    print(f"job: {result}")
    ok = (not job.is_active and result["done"] + result["failed"] == result["total"] == args.prompts * 2
          and result["errors"] >= result["failed"] and result["errors_without_text"] == 0
          and result["duplicate_slots"] == 0 and sum(server.failures_served.values()) > 0)
    print("RESULT (c)", "OK" if ok else "FAILED")
    return ok


def scenario_worker(args, env: dict, queue: str) -> bool:
    print("\n== (d) a worker SIGKILLed mid-chunk, Redis' visibility timeout at its default ==", flush=True)
    from django.utils import timezone

    from annotation.models import JobChunk
    from tests.llm_server import LLMTestServer

    env = {**env, "CELERY_VISIBILITY_TIMEOUT": "3600", "PREFLAB_JOB_STALL_SECONDS": str(args.stall),
           "PREFLAB_JOB_SWEEP_SECONDS": str(args.sweep), "PREFLAB_JOB_HEARTBEAT_SECONDS": str(args.heartbeat)}
    server = LLMTestServer(latency=0.2).start()
    workers = [start_worker(env, queue)]
    killed_at = requeued_at = None
    try:
        job = generation_job(server, args.prompts, queue, "worker")
        job = wait_job(job, 60, until=lambda j: j.done >= j.total * 0.3 or not j.is_active)
        running = sorted(job.chunks.filter(status=JobChunk.Status.RUNNING).values_list("index", flat=True))
        os.killpg(workers[0].pid, signal.SIGKILL)
        workers[0].wait(15)
        killed_at = timezone.now()
        print(f"job {job.pk}: {job.done}/{job.total} done when the worker is killed, chunks {running} running; "
              f"stall {args.stall:g} s, sweep every {args.sweep:g} s, heartbeat every {args.heartbeat:g} s", flush=True)
        workers.append(start_worker(env, queue))
        job = wait_job(job, args.stall + args.sweep + 180)
        first = job.chunks.exclude(requeued_at=None).order_by("requeued_at").first()
        requeued_at = first.requeued_at if first else None
        for chunk in job.chunks.exclude(requeue_note=""):
            print("  " + chunk.requeue_note, flush=True)
    finally:
        for worker in workers:
            stop_worker(worker)
        server.stop()
    result = check_generation(job)
    if killed_at and requeued_at:
        print(f"kill -> first re-queue {(requeued_at - killed_at).total_seconds():.1f} s; kill -> job ended "
              f"{((job.finished_at or timezone.now()) - killed_at).total_seconds():.1f} s", flush=True)
    print(f"job: {result}; LLM requests served {server.count}")
    ok = (result["status"] == "succeeded" and result["outputs"] == result["total"] == args.prompts * 2
          and result["duplicate_slots"] == 0 and result["complete_records"] == args.prompts and requeued_at is not None)
    print("RESULT (d)", "OK" if ok else "FAILED")
    return ok


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0 and not (args.shared_postgres and args.shared_redis):
        raise SystemExit("private PostgreSQL needs root (runuser -u postgres); use --shared-postgres --shared-redis")
    pg, redis = Postgres(args), Redis(args)
    var_dir = REPO / "var" / "bench_faults"
    var_dir.mkdir(parents=True, exist_ok=True)
    queue = f"preflab_faults_{uuid.uuid4().hex[:6]}"
    results = {}
    try:
        if not pg.shared:
            pg.start_private()
        if not redis.shared:
            redis.start_private()
        env = configure_django(pg, redis, var_dir, queue)
        bench_load.recreate_database(pg.url, DB_NAME)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True)
        import django

        django.setup()
        if args.scenario in ("all", "postgres"):
            results["postgres"] = scenario_postgres(args, pg, env)
        if args.scenario in ("all", "redis"):
            results["redis"] = scenario_redis(args, redis, env, queue)
        if args.scenario in ("all", "llm"):
            results["llm"] = scenario_llm(args, env, queue)
        if args.scenario in ("all", "worker"):
            results["worker"] = scenario_worker(args, env, queue)
    finally:
        try:
            close_db()
        except Exception:  # noqa: BLE001
            pass
        pg.ensure_running()
        redis.ensure_running()
        if pg.shared:
            try:
                bench_load.drop_database(pg.url, DB_NAME)
            except Exception as exc:  # noqa: BLE001
                print("could not drop", DB_NAME, exc)
        try:
            import redis as redis_lib

            redis_lib.Redis.from_url(redis.url).delete(queue)
        except Exception:  # noqa: BLE001
            pass
        pg.close()
        redis.close()
    print("\nSUMMARY", {k: "OK" if v else "FAILED" for k, v in results.items()})
    return 0 if results and all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
