"""Helpers shared by the bench/ scripts: a PostgreSQL bench database, Django set-up, a real
gunicorn server, its memory (psutil) and latency percentiles.

    from bench.common import database_prepare, django_setup, GunicornServer, RssSampler, summarize

Nothing here is specific to one benchmark.
"""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BENCH_DB = "postgres://postgres@127.0.0.1:5432/preflab_bench"


# --- database ----------------------------------------------------------------------------------

def database_url(default_name: str = "preflab_bench") -> str:
    """BENCH_DATABASE_URL, else DATABASE_URL with the database name replaced by a bench database
    (never the database tests or the app use), else the local default."""
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url
    base = os.environ.get("DATABASE_URL", "")
    if base.startswith("postgres"):
        return urlparse(base)._replace(path=f"/{default_name}").geturl()
    return urlparse(DEFAULT_BENCH_DB)._replace(path=f"/{default_name}").geturl()


def database_prepare(url: str, *, migrate: bool = True) -> None:
    """Create the PostgreSQL database if missing, then migrate it (in a subprocess)."""
    import psycopg

    parsed = urlparse(url)
    if not parsed.scheme.startswith("postgres"):
        raise SystemExit(f"the benchmarks need PostgreSQL, got {url!r}")
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}", flush=True)
    if migrate:
        env = {**os.environ, "DATABASE_URL": url}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)


def django_setup(url: str) -> None:
    """Point this process at the bench database and set Django up."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "preflab.settings")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# --- a real server -----------------------------------------------------------------------------

def port_wait(port: int, *, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout:.0f} s")


class GunicornServer:
    """gunicorn serving preflab.wsgi against `database_url`, with an access log whose last column
    is the server time of each request in microseconds (gunicorn's %(D)s): time spent in the
    worker, queueing before it excluded.

        with GunicornServer(port=8101, database_url=url, workers=4) as server:
            ...  # server.pid, server.request_times_ms(path_contains="/next/")
    """

    log_time_ms = 0.001  # %(D)s is in microseconds

    def __init__(self, *, port: int, database_url: str, workers: int = 2, threads: int = 1,
                 worker_class: str = "sync", env: dict | None = None, log_dir: Path | None = None,
                 timeout: int = 120):
        self.port = port
        self.database_url = database_url
        self.workers = workers
        self.threads = threads
        self.worker_class = worker_class
        self.extra_env = env or {}
        self.log_dir = Path(log_dir or ROOT / "var" / "bench")
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self.access_log = self.log_dir / f"access-{port}.log"
        self.error_log = self.log_dir / f"error-{port}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    name = "gunicorn"

    def command(self) -> list[str]:
        """The server's command line (the log files exist, empty, when it is called)."""
        return [sys.executable, "-m", "gunicorn", "preflab.wsgi:application",
                "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
                "--worker-class", self.worker_class, "--threads", str(self.threads),
                "--timeout", str(self.timeout), "--backlog", "2048",
                "--access-logfile", str(self.access_log),
                "--access-logformat", '%(m)s %(U)s %(s)s %(D)s',
                "--error-logfile", str(self.error_log)]

    def start(self) -> GunicornServer:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for f in (self.access_log, self.error_log):
            f.write_text("")
        env = {**os.environ, "DATABASE_URL": self.database_url, "DJANGO_SETTINGS_MODULE": "preflab.settings",
               "DEBUG": "false", "SECRET_KEY": "bench-" + "k" * 50, "LOG_LEVEL": "WARNING", **self.extra_env}
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=env)
        try:
            port_wait(self.port)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"{self.name} did not start; see {self.error_log}:\n{self.error_log.read_text()[-2000:]}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> GunicornServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_mark(self) -> int:
        """The access log's current size: pass it to request_times_ms to read only what follows."""
        return self.access_log.stat().st_size if self.access_log.exists() else 0

    def request_times_ms(self, *, method: str | None = None, path_contains: str = "", since: int = 0,
                         statuses: tuple[str, ...] | None = None) -> list[float]:
        """Server times (ms) of the logged requests matching method / path / status."""
        out = []
        with open(self.access_log, "rb") as f:
            f.seek(since)
            for line in f:
                parts = line.decode("utf-8", "replace").split()
                if len(parts) != 4:
                    continue
                m, path, status, micros = parts
                if method and m != method:
                    continue
                if path_contains and path_contains not in path:
                    continue
                if statuses and status not in statuses:
                    continue
                out.append(float(micros) * self.log_time_ms)
        return out


class GranianServer(GunicornServer):
    """granian (a Rust HTTP server, HTTP/1.1 keep-alive) serving preflab.wsgi: the same interface and access log
    columns as GunicornServer, the server time logged in milliseconds. `threads` is granian's blocking threads
    per worker (the threads that run Django)."""

    log_time_ms = 1.0

    name = "granian"

    def command(self) -> list[str]:
        log_config = self.log_dir / f"granian-log-{self.port}.json"
        log_config.write_text(json.dumps({
            "version": 1, "disable_existing_loggers": False,
            "formatters": {"generic": {"()": "logging.Formatter", "fmt": "[%(levelname)s] %(message)s"},
                           "access": {"()": "logging.Formatter", "fmt": "%(message)s"}},
            "handlers": {"console": {"formatter": "generic", "class": "logging.FileHandler", "filename": str(self.error_log)},
                         "access": {"formatter": "access", "class": "logging.FileHandler", "filename": str(self.access_log)}},
            "loggers": {"_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
                        "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False}}}))
        return [sys.executable, "-m", "granian", "--interface", "wsgi", "preflab.wsgi:application",
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
                "--blocking-threads", str(self.threads), "--backlog", "2048", "--no-ws",
                "--log-config", str(log_config), "--access-log",
                "--access-log-fmt", "%(method)s %(path)s %(status)d %(dt_ms).3f"]


# --- a fresh process's start-up -----------------------------------------------------------------

def bytecode_compile() -> None:
    """Compile the project's modules to bytecode once, as the Docker image does at build: with
    PYTHONDONTWRITEBYTECODE set (this machine, the image) a fresh process would otherwise compile every
    module of the project from source at each start (~0.3 s of CPU), which no deployed process does."""
    import compileall

    for package in ("preflab", "annotation", "generation", "judging"):
        compileall.compile_dir(str(ROOT / package), quiet=1)


def children_cpu_seconds() -> float:
    """CPU (user + system) of this process's children that have ended and been waited for."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# --- PostgreSQL's CPU ----------------------------------------------------------------------------

class PostgresCpu:
    """CPU used by postgres during a run: the backends serving `dbname` (sampled every 0.3 s, as a
    backend's counters vanish when its connection closes) and the shared writer/WAL/checkpoint
    processes. The processes are found through pg_stat_activity (one query per sample) rather
    than by scanning every process of the machine, which cost the client ~4% of a core."""

    SHARED = ("walwriter", "checkpointer", "background writer", "autovacuum launcher", "autovacuum worker")

    def __init__(self, dbname: str, url: str | None = None):
        import psycopg

        self.dbname = dbname
        base = url or os.environ.get("DATABASE_URL") or DEFAULT_BENCH_DB
        self.conn = psycopg.connect(urlparse(base)._replace(path=f"/{dbname}").geturl(), autocommit=True)
        self.own_pid = self.conn.info.backend_pid
        self.procs: dict[int, object] = {}
        self.start: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.shared_pids: set[int] = set()
        self._stop = threading.Event()
        self._scan(initial=True)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _scan(self, initial: bool = False) -> None:
        import psutil

        rows = self.conn.execute("SELECT pid, backend_type, datname = %s FROM pg_stat_activity WHERE pid <> %s "
                                 "AND (datname = %s OR backend_type = ANY(%s))",
                                 [self.dbname, self.own_pid, self.dbname, list(self.SHARED)]).fetchall()
        for pid, backend_type, on_ours in rows:
            shared = backend_type in self.SHARED
            ours = bool(on_ours) and not shared
            proc = self.procs.get(pid)
            try:
                if proc is None:
                    proc = self.procs[pid] = psutil.Process(pid)
                t = proc.cpu_times()
            except psutil.Error:
                continue
            used = t.user + t.system
            if initial:
                self.start[pid] = used
            else:
                self.start.setdefault(pid, 0.0 if ours else used)
            self.last[pid] = used
            if shared:
                self.shared_pids.add(pid)

    def _loop(self) -> None:
        while not self._stop.wait(0.3):
            self._scan()

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._thread.join()
        self._scan()
        self.conn.close()
        used = {pid: self.last[pid] - self.start.get(pid, 0.0) for pid in self.last}
        shared = sum(v for pid, v in used.items() if pid in self.shared_pids)
        return sum(used.values()) - shared, shared


# --- memory ------------------------------------------------------------------------------------

def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its children (a gunicorn master and its workers)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process and its live children."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def max_process_rss_bytes(pid: int) -> int:
    """The largest single process RSS in the tree (one worker's footprint)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    best = 0
    for p in procs:
        try:
            best = max(best, p.memory_info().rss)
        except psutil.NoSuchProcess:
            pass
    return best


class RssSampler:
    """Samples a process tree's RSS in a background thread; .peak_tree / .peak_process in bytes."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid = pid
        self.interval = interval
        self.peak_tree = 0
        self.peak_process = 0
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            tree = tree_rss_bytes(self.pid)
            self.samples.append(tree)
            self.peak_tree = max(self.peak_tree, tree)
            self.peak_process = max(self.peak_process, max_process_rss_bytes(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# --- numbers -----------------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return ordered[int(k)]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "max": max(values) if values else float("nan")}


def fmt_ms(stats: dict[str, float]) -> str:
    return f"p50 {stats['p50']:.2f} ms  p95 {stats['p95']:.2f} ms  p99 {stats['p99']:.2f} ms  (n={stats['n']})"


def mb(n_bytes: int) -> str:
    return f"{n_bytes / 1024 / 1024:.0f} MB"
