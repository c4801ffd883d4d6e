"""Side by side: preflab against Label Studio and distilabel on the same machine, the same data, the same server.

    .venv/bin/python bench/bench_peers.py --quick                  # a few minutes: LS 10k, 2 annotators x 20 s, 200 judged
    .venv/bin/python bench/bench_peers.py                          # PEERS.md's sizes: 100k tasks, 10 annotators x 60 s, 1,000
    .venv/bin/python bench/bench_peers.py --sizes tasks=20000,annotators=10,seconds=30,judge=1000 --only import,annotate

Each peer is its own released package from PyPI, installed in its own virtual environment under
var/peers/ (--peers-dir), and re-used when it is there: label-studio==1.23.2 and distilabel[openai]==1.5.3.
preflab runs as the other bench scripts run it (on PostgreSQL, database `peers_bench` on the
server of --pg), through their own code: bench_import.py, bench_export.py and bench_judge.py in
subprocesses, and bench_distribution.py's load loop (run_load) in this process.

Measurements, each interleaved (peer, preflab, peer, preflab, ... --rounds times):
  import    N tasks (a ~300-char prompt, two ~1,500-char responses: bench_import's generator for both
            sides) in one POST: records/s and the server's peak RSS. Label Studio gets them as one JSON
            list, preflab as chunked NDJSON.
  annotate  K concurrent annotators (one user and token each), next + submit for T seconds on the
            project/dataset just imported, one annotation wanted per task: annotations/s, client
            p50/p95 of next and submit (preflab: the web server's own p95 too), tasks over-assigned
            (more annotations than wanted) during the round.
  export    N tasks with one annotation each: rows/s, first byte, the server's peak RSS
            (Label Studio: JSON export; preflab: JSONL triplets).
  judge     UltraFeedback ratings of two responses for M records against the OpenAI-compatible test
            server of tests/llm_server.py at 200 ms per answer: distilabel's UltraFeedback task with
            OpenAILLM at input_batch_size 50 (its default) and 200 (the best found, HTTP logging
            silenced), preflab's judge job (bench_judge.py) at 64 and 256 in flight.
            records/s over the whole run (distilabel: pipeline.run(), preflab: the whole job), CPU
            per record, ratings parsed.

Prints every run with the load average before/after, then a table: each side's median (and range),
and the ratio preflab / peer. Every server this script starts is stopped on exit (atexit, SIGINT,
SIGTERM). A bench, not a test: it asserts nothing; a peer that fails to install or start is a clear error.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
for p in (str(ROOT), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

LS_SPEC = ("label-studio==1.23.2",)
# distilabel.models imports requests, which its [openai] extra does not pull in
DL_SPEC = ("distilabel[openai]==1.5.3", "requests")
LS_CONFIG = """<View>
  <Header value="Prompt"/>
  <Text name="prompt" value="$prompt"/>
  <Header value="Which response is better?"/>
  <Text name="answer1" value="$answer1"/>
  <Text name="answer2" value="$answer2"/>
  <Pairwise name="comparison" toName="answer1,answer2"/>
</View>"""

SIZES = {"tasks": 100_000, "annotators": 10, "seconds": 60.0, "export": 100_000, "judge": 1000}
QUICK = {"tasks": 10_000, "annotators": 2, "seconds": 20.0, "export": 10_000, "judge": 200}
MEASUREMENTS = ("import", "annotate", "export", "judge")


# --- processes this script starts, stopped on any exit ---------------------------------------------

_CHILDREN: list[subprocess.Popen] = []


def spawn(cmd: list[str], **kw) -> subprocess.Popen:
    """Popen in its own process group (so a server's workers stop with it), remembered for cleanup."""
    proc = subprocess.Popen(cmd, start_new_session=True, **kw)
    _CHILDREN.append(proc)
    return proc


def stop(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        leader = os.getpgid(proc.pid) == proc.pid  # spawned here: its workers stop with its group
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        try:
            if leader:
                os.killpg(proc.pid, sig)
            else:  # started by a helper of bench/common.py: the server's master stops its workers
                proc.send_signal(sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _cleanup() -> None:
    while _CHILDREN:
        stop(_CHILDREN.pop(), timeout=10)


def _on_signal(signum, _frame) -> None:
    _cleanup()
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


# --- peers: install and re-use ---------------------------------------------------------------------

def peer_venv(peers_dir: Path, name: str, spec: tuple[str, ...], check: str) -> Path:
    """A virtual environment with the packages of `spec` installed (re-used when `check` runs in it); its python."""
    venv = peers_dir / name
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", check], capture_output=True, timeout=120).returncode == 0:
        return python
    print(f"installing {' '.join(spec)} into {venv} (a few minutes) ...", flush=True)
    peers_dir.mkdir(parents=True, exist_ok=True)
    log = peers_dir / f"{name}-install.log"
    with open(log, "wb") as out:
        steps = [[sys.executable, "-m", "venv", str(venv)], [str(python), "-m", "pip", "install", "-q", *spec]]
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=1800).returncode != 0:
                tail = log.read_text(errors="replace")[-3000:]
                raise SystemExit(f"could not install {' '.join(spec)} ({' '.join(step[:3])} failed); {log}:\n{tail}")
    if subprocess.run([str(python), "-c", check], capture_output=True, timeout=120).returncode != 0:
        raise SystemExit(f"{' '.join(spec)} installed into {venv} but `{check}` fails there")
    return python


# --- the same tasks for both sides -----------------------------------------------------------------

def ls_tasks_body(n: int, *, annotated: bool = False) -> bytes:
    """bench_import's records as one Label Studio JSON list (with one pairwise annotation each if asked)."""
    import orjson
    from bench_import import ndjson_records

    tasks = []
    for chunk in ndjson_records(n):
        for line in chunk.splitlines():
            rec = orjson.loads(line)
            f = rec["fields"]
            task = {"data": {"prompt": f["prompt"], "answer1": f["response-1"], "answer2": f["response-2"],
                             "external_id": rec["external_id"]}}
            if annotated:
                task["annotations"] = [{"result": [pairwise_result(len(tasks) % 3 != 0)]}]
            tasks.append(task)
    return orjson.dumps(tasks)


def pairwise_result(left: bool) -> dict:
    return {"from_name": "comparison", "to_name": "comparison", "type": "pairwise",
            "value": {"selected": "left" if left else "right"}}


# --- Label Studio ----------------------------------------------------------------------------------

LS_USERS_SCRIPT = r"""
import json, os, sys
import label_studio
sys.path.insert(0, os.path.dirname(label_studio.__file__))  # LS's apps import as top-level packages
import django
os.environ["DJANGO_SETTINGS_MODULE"] = "core.settings.label_studio"
django.setup()
from organizations.models import Organization
from rest_framework.authtoken.models import Token
from users.models import User
org = Organization.objects.first()
out = []
for i in range(int(sys.argv[1])):
    email = f"annotator{i}@bench.local"
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password="bench-" + "p" * 20, username=f"annotator{i}")
    if not org.has_user(user):
        org.add_user(user)
    user.active_organization = org
    user.save(update_fields=["active_organization"])
    token, _ = Token.objects.get_or_create(user=user)
    out.append(token.key)
print(json.dumps(out))
"""


class LabelStudio:
    """`label-studio start --no-browser` (its own server, SQLite) on a fresh data directory."""

    def __init__(self, python: Path, data_dir: Path, port: int):
        self.python = python
        self.data_dir = data_dir
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.token = secrets.token_hex(20)
        self.proc: subprocess.Popen | None = None
        self.env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "DJANGO_DB": "sqlite",
                    "LABEL_STUDIO_USERNAME": "bench@bench.local", "LABEL_STUDIO_PASSWORD": "bench-" + "p" * 20,
                    "LABEL_STUDIO_USER_TOKEN": self.token,
                    "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true", "LOG_LEVEL": "WARNING", "DEBUG": "false",
                    "COLLECT_ANALYTICS": "false", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",  # no network here
                    # its default (250 MiB) refuses a one-POST import of 100k tasks (~320 MiB) with an HTTP 500
                    "DATA_UPLOAD_MAX_MEMORY_SIZE": str(4 * 2**30)}
        for key in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "REDIS_URL", "CELERY_BROKER_URL"):
            self.env.pop(key, None)

    def start(self, timeout: float = 600) -> LabelStudio:
        import requests

        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True)
        # LS migrates a new SQLite database for minutes on 2 busy cores: a migrated copy with the admin
        # and no project, taken on the first start, seeds the next ones
        template = self.data_dir.parent / "ls-template"
        seeded = (template / "label_studio.sqlite3").exists() and (template / "token").exists()
        if seeded:
            shutil.copy2(template / "label_studio.sqlite3", self.data_dir / "label_studio.sqlite3")
            self.token = (template / "token").read_text().strip()
            self.env["LABEL_STUDIO_USER_TOKEN"] = self.token
        self.log = self.data_dir / "server.log"
        exe = self.python.parent / "label-studio"
        with open(self.log, "wb") as out:
            self.proc = spawn([str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.port),
                               "--data-dir", str(self.data_dir), "--enable-legacy-api-token"],
                              stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.data_dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"Label Studio exited during start (code {self.proc.returncode}); "
                                 f"{self.log}:\n{self.log.read_text(errors='replace')[-3000:]}")
            try:
                r = requests.get(f"{self.base}/api/projects", headers=self.headers(), timeout=10)
                if r.status_code == 200:
                    if not seeded:
                        template.mkdir(parents=True, exist_ok=True)
                        with sqlite3.connect(self.data_dir / "label_studio.sqlite3") as src, \
                                sqlite3.connect(template / "label_studio.sqlite3") as dst:
                            src.backup(dst)
                        (template / "token").write_text(self.token)
                    return self
                if r.status_code in (401, 403):
                    raise SystemExit(f"Label Studio refused the bench token: HTTP {r.status_code} {r.text[:300]}")
            except requests.RequestException:
                pass
            time.sleep(1)
        self.stop()
        raise SystemExit(f"Label Studio did not answer within {timeout:.0f} s; {self.log}")

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    def headers(self, token: str | None = None) -> dict:
        return {"Authorization": f"Token {token or self.token}"}

    def api(self, method: str, path: str, **kw):
        import requests

        r = requests.request(method, self.base + path, headers={**self.headers(), **kw.pop("headers", {})},
                             timeout=kw.pop("timeout", 600), **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"Label Studio {method} {path}: HTTP {r.status_code} {r.text[:500]}")
        return r

    def project_create(self, title: str) -> int:
        return self.api("POST", "/api/projects", json={"title": title, "label_config": LS_CONFIG,
                                                       "maximum_annotations": 1}).json()["id"]

    def users_create(self, n: int) -> list[str]:
        """n annotators in the default organization, each with a token (straight through LS's Django)."""
        env = {**self.env}
        out = subprocess.run([str(self.python), "-c", LS_USERS_SCRIPT, str(n)], env=env, capture_output=True,
                             text=True, timeout=600, cwd=self.data_dir)
        if out.returncode != 0:
            raise SystemExit(f"could not create Label Studio annotators:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data_dir / 'label_studio.sqlite3'}?mode=ro", uri=True, timeout=60)


def ls_import(ls: LabelStudio, project: int, body: bytes, n: int) -> dict:
    """One POST of the whole list; LS answers when the tasks are stored (polls if it imports in the background)."""
    from bench.common import RssSampler

    with RssSampler(ls.proc.pid) as rss:
        t0 = time.perf_counter()
        r = ls.api("POST", f"/api/projects/{project}/import", data=body,
                   headers={"Content-Type": "application/json"}, timeout=3600)
        doc = r.json()
        if "import" in doc and "task_count" not in doc:  # background import: wait for it
            while True:
                state = ls.api("GET", f"/api/projects/{project}/imports/{doc['import']}").json()
                if state.get("status") in ("completed", "failed"):
                    if state["status"] == "failed":
                        raise RuntimeError(f"Label Studio import failed: {state.get('traceback') or state}")
                    doc = state
                    break
                time.sleep(0.2)
        elapsed = time.perf_counter() - t0
    with ls.db() as db:
        stored = db.execute("SELECT count(*) FROM task WHERE project_id = ?", [project]).fetchone()[0]
    if stored != n:
        raise RuntimeError(f"Label Studio stored {stored:,} of {n:,} tasks")
    return {"rate": stored / elapsed, "seconds": elapsed, "stored": stored, "wanted": n, "rss_mb": rss.peak_tree / 2**20}


def ls_annotate(ls: LabelStudio, project: int, tokens: list[str], seconds: float) -> dict:
    import requests

    from bench.common import percentile

    with ls.db() as db:
        last_id = db.execute("SELECT coalesce(max(id), 0) FROM task_completion").fetchone()[0]
        if not db.execute("SELECT count(*) FROM task WHERE project_id = ?", [project]).fetchone()[0]:
            raise RuntimeError("the project holds no task (its import failed)")
    lock = threading.Lock()
    next_ms: list[float] = []
    submit_ms: list[float] = []
    errors: list[str] = []
    done = [0]
    deadline = time.monotonic() + seconds

    def annotator(token: str) -> None:
        s = requests.Session()
        s.headers.update(ls.headers(token))
        mine_next, mine_submit, n = [], [], 0
        while time.monotonic() < deadline:
            try:
                t0 = time.perf_counter()
                r = s.get(f"{ls.base}/api/projects/{project}/next", timeout=120)
                mine_next.append((time.perf_counter() - t0) * 1000)
                if r.status_code == 404:
                    break
                if r.status_code != 200:
                    with lock:
                        errors.append(f"next {r.status_code}")
                    time.sleep(0.2)
                    continue
                task = r.json()
                body = {"result": [pairwise_result(n % 2 == 0)], "lead_time": 2.0, "project": project,
                        "task": task["id"]}
                t0 = time.perf_counter()
                r = s.post(f"{ls.base}/api/tasks/{task['id']}/annotations/?project={project}", json=body, timeout=120)
                mine_submit.append((time.perf_counter() - t0) * 1000)
                if r.status_code not in (200, 201):
                    with lock:
                        errors.append(f"submit {r.status_code} {r.text[:100]}")
                    continue
                n += 1
            except requests.RequestException as exc:
                with lock:
                    errors.append(type(exc).__name__)
        with lock:
            next_ms.extend(mine_next)
            submit_ms.extend(mine_submit)
            done[0] += n

    threads = [threading.Thread(target=annotator, args=(t,), daemon=True) for t in tokens]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 300)
    elapsed = time.perf_counter() - t0
    with ls.db() as db:
        over = db.execute("SELECT count(*) FROM (SELECT task_id FROM task_completion WHERE project_id = ? "
                          "GROUP BY task_id HAVING count(*) > 1 AND max(id) > ?)", [project, last_id]).fetchone()[0]
    return {"rate": done[0] / elapsed, "annotations": done[0], "seconds": elapsed,
            "next_p50": percentile(next_ms, 50), "next_p95": percentile(next_ms, 95),
            "submit_p50": percentile(submit_ms, 50), "submit_p95": percentile(submit_ms, 95),
            "over_assigned": over, "errors": len(errors), "error_kinds": sorted(set(errors))[:5]}


def ls_export(ls: LabelStudio, project: int, n: int) -> dict:
    import requests

    from bench.common import RssSampler

    with RssSampler(ls.proc.pid) as rss:
        t0 = time.perf_counter()
        r = requests.get(f"{ls.base}/api/projects/{project}/export", params={"exportType": "JSON"},
                         headers=ls.headers(), stream=True, timeout=3600)
        if r.status_code != 200:
            raise RuntimeError(f"Label Studio export: HTTP {r.status_code} {r.text[:300]}")
        first = None
        body = bytearray()
        for chunk in r.iter_content(1 << 20):
            if first is None:
                first = time.perf_counter() - t0
            body += chunk
        elapsed = time.perf_counter() - t0
    rows = json.loads(bytes(body))
    annotated = sum(1 for t in rows if t.get("annotations"))
    return {"rate": len(rows) / elapsed, "rows": len(rows), "annotated": annotated, "seconds": elapsed,
            "first_byte_ms": (first or elapsed) * 1000, "rss_mb": rss.peak_tree / 2**20}


# --- preflab, through its own bench scripts --------------------------------------------------------

def run_script(args: list[str], env: dict | None = None, timeout: float = 3600) -> str:
    cmd = [sys.executable, *args]
    proc = spawn(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                 stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise RuntimeError(f"{' '.join(args[:2])} ran past {timeout:.0f} s")
    finally:
        if proc in _CHILDREN:
            _CHILDREN.remove(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed (code {proc.returncode}):\n{out[-3000:]}")
    return out


def grab(pattern: str, text: str, cast=float):
    m = re.search(pattern, text)
    if not m:
        raise RuntimeError(f"no {pattern!r} in the output:\n{text[-2000:]}")
    return cast(m.group(1).replace(",", ""))


def preflab_import(url: str, n: int) -> dict:
    out = run_script(["bench/bench_import.py", "--records", str(n), "--port", str(free_port()), "--database-url", url])
    return {"rate": grab(r"records/s:\s+([\d,.]+)", out), "seconds": grab(r"elapsed:\s+([\d.]+) s", out),
            "rss_mb": grab(r"server RSS:.*peak (\d+) MB", out)}


def preflab_export(url: str, n: int) -> dict:
    out = run_script(["bench/bench_export.py", "--records", str(n), "--port", str(free_port()), "--database-url", url])
    return {"rate": grab(r"triplets/s:\s+([\d,.]+)", out), "rows": grab(r"triplets:\s+([\d,]+)", out, int),
            "first_byte_ms": grab(r"first byte:\s+(\d+) ms", out), "rss_mb": grab(r"server RSS:.*peak (\d+) MB", out)}


def preflab_judge(url: str, n: int, concurrency: int) -> dict:
    out = run_script(["bench/bench_judge.py", "--part", "throughput", "--concurrency", str(concurrency),
                      "--records", str(n), "--latency", "0.2"], env={"BENCH_DATABASE_URL": url})
    m = re.search(r"(\d+) in flight:\s+([\d.]+) records/s over (\d+) records(?: in [\d.]+ s)? \((\d+)% of the ideal.*?([\d.]+) ms CPU", out)
    if not m:
        raise RuntimeError(f"bench_judge printed no figure:\n{out[-2000:]}")
    return {"rate": float(m.group(2)), "records": int(m.group(3)), "share": int(m.group(4)) / 100,
            "cpu_ms": float(m.group(5)), "parsed": int(m.group(3))}  # bench_judge stops unless every record is done


class PreflabAnnotate:
    """bench_distribution's HTTP load loop (granian, as in the image: one worker per CPU) on the dataset
    bench_import just filled: the same tasks Label Studio got."""

    def __init__(self, url: str, annotators: int):
        from bench.common import django_setup

        django_setup(url)
        self.url = url
        self.annotators = annotators

    def run(self, seconds: float) -> dict:
        from bench_distribution import annotators_ensure, over_assigned_count, run_load, state_reset
        from django.db import connection

        from annotation.models import Dataset
        from annotation.services import dataset_publish, dataset_update
        from bench.common import GranianServer

        ds = Dataset.objects.get(workspace__name="bench-io", name="bench-import")
        if ds.min_submitted != 1:
            dataset_update(dataset=ds, min_submitted=1)
        dataset_publish(dataset=ds)
        annotators = annotators_ensure(ds, self.annotators)
        state_reset(ds)
        connection.close()
        server = GranianServer(port=free_port(), database_url=self.url, workers=os.cpu_count() or 2,
                                log_dir=ROOT / "var" / "bench_peers").start()
        _CHILDREN.append(server.proc)
        try:
            run_load(ds, annotators, n=min(self.annotators, 8), seconds=2, mode="http", server=server)  # warm
            state_reset(ds)
            connection.close()
            result = run_load(ds, annotators, n=self.annotators, seconds=seconds, mode="http", server=server)
        finally:
            server.stop()
        from bench.common import percentile

        t = result["tally"]
        return {"rate": t.annotations / result["elapsed"], "annotations": t.annotations, "seconds": result["elapsed"],
                "next_p50": percentile(t.next_ms, 50), "next_p95": percentile(t.next_ms, 95),
                "submit_p50": percentile(t.submit_ms, 50), "submit_p95": percentile(t.submit_ms, 95),
                "server_p95": result["server_all"]["p95"], "over_assigned": over_assigned_count(ds),
                "errors": len(t.errors), "error_kinds": t.errors[:3]}


# --- distilabel ------------------------------------------------------------------------------------

DISTILABEL_SCRIPT = r'''
import json, sys, time
t_process = time.perf_counter()
rows_file, base_url, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
from distilabel.models import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts
from distilabel.steps.tasks import UltraFeedback
rows = json.load(open(rows_file))
with Pipeline(name="bench-peers-uf") as pipeline:
    load = LoadDataFromDicts(data=rows, batch_size=batch)
    uf = UltraFeedback(llm=OpenAILLM(model="bench-judge-model", base_url=base_url, api_key="bench",
                                     generation_kwargs={"temperature": 0.0, "max_new_tokens": 256}),
                       input_batch_size=batch)  # the default aspect, overall-rating
    load >> uf
imported = time.perf_counter() - t_process
t0 = time.perf_counter()
distiset = pipeline.run(use_cache=False)
run_s = time.perf_counter() - t0
out = distiset["default"]["train"]
parsed = sum(1 for r in out if r.get("ratings") and all(x is not None for x in r["ratings"]))
print("RESULT " + json.dumps({"records": len(out), "parsed": parsed, "run_s": run_s, "startup_s": imported}))
'''


def judge_rows(n: int, seed: int) -> list[dict]:
    """bench_judge's records (the same generator and seeds) in distilabel's columns."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        strong = rng.random() < 0.5
        rows.append({"instruction": f"Explain topic {i} in a short paragraph.",
                     "generations": [f"A {'strong' if strong else 'plain'} answer about topic {i}. " * 8,
                                     f"A {'plain' if strong else 'strong'} answer about topic {i}. " * 8]})
    return rows


DL_TEXT_RE = re.compile(r"<text (\d+)>")


def peers_responder(body: dict) -> str:
    """bench_judge's UltraFeedback answer for preflab's prompt; the same answer, in the same layout, for
    distilabel's (its texts are marked `<text N> ...`)."""
    from bench_judge import uf_responder

    answer = uf_responder(body)
    if answer:
        return answer
    prompt = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    prompt = prompt[prompt.rfind("Texts:"):prompt.rfind("### Output")]  # the texts, not the format's example
    parts = []
    marks = list(DL_TEXT_RE.finditer(prompt))
    for k, m in enumerate(marks):
        text = prompt[m.end():marks[k + 1].start() if k + 1 < len(marks) else len(prompt)]
        rating = 5 if "strong" in text else 3
        parts.append(f"#### Output for Text {m.group(1)}\nRating: {rating}\nRationale: The text is "
                     f"{'accurate and complete' if rating == 5 else 'correct but thin'}.")
    return "\n\n".join(parts)


def llm_server_start(latency: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = spawn([sys.executable, str(Path(__file__).resolve()), "--serve", str(port), "--latency", str(latency)],
                 cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        stop(proc)
        raise SystemExit(f"the test server did not start: {line!r}")
    return proc, line.split()[1]


def distilabel_run(python: Path, work: Path, base_url: str, n: int, batch: int, quiet: bool) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    script = work / "uf_pipeline.py"
    script.write_text(DISTILABEL_SCRIPT)
    rows_file = work / f"rows-{n}.json"
    rows_file.write_text(json.dumps(judge_rows(n, 64)))
    env = {**os.environ, "DISTILABEL_CACHE_DIR": str(work / "cache"), "HF_HOME": str(work / "hf"),
           "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": "bench"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    if quiet:  # the best setting found: distilabel's INFO logging off in every step process
        env["DISTILABEL_LOG_LEVEL"] = "WARNING"
    proc = spawn([str(python), str(script), str(rows_file), base_url, str(batch)],
                 cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=max(600, n))
    except subprocess.TimeoutExpired:
        stop(proc)
        raise RuntimeError("distilabel ran past its time limit")
    finally:
        if proc in _CHILDREN:
            _CHILDREN.remove(proc)
    process_s = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"distilabel failed (code {proc.returncode}):\n{out[-3000:]}")
    doc = json.loads(line[7:])
    return {"rate": doc["records"] / doc["run_s"], "records": doc["records"], "parsed": doc["parsed"],
            "run_s": doc["run_s"], "process_s": process_s, "process_rate": doc["records"] / process_s,
            "cpu_ms": cpu / max(doc["records"], 1) * 1000}


# --- the run -------------------------------------------------------------------------------------

class Table:
    def __init__(self):
        self.rows: dict[tuple[str, str], list[dict]] = {}
        self.order: list[tuple[str, str]] = []

    def add(self, measurement: str, side: str, result: dict, before: str, after: str) -> None:
        key = (measurement, side)
        if key not in self.rows:
            self.rows[key] = []
            self.order.append(key)
        self.rows[key].append({**result, "load": f"{before} -> {after}"})

    def rates(self, measurement: str, side: str) -> list[float]:
        return [r["rate"] for r in self.rows.get((measurement, side), [])]


def timed(table: Table, measurement: str, side: str, describe, fn, *args) -> dict | None:
    """Run fn(*args), print its figures with the load average before and after, keep them for the table."""
    before = load()
    t0 = time.perf_counter()
    try:
        result = fn(*args)
    except (RuntimeError, OSError) as exc:
        print(f"  {side:<34} FAILED: {exc}", flush=True)
        return None
    after = load()
    table.add(measurement, side, result, before, after)
    print(f"  {side:<34} {describe(result)}   [load {before} -> {after}, {time.perf_counter() - t0:.0f} s]", flush=True)
    return result


def fmt_rate(values: list[float]) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:,.1f}"
    return f"{med:,.1f} ({min(values):,.1f}-{max(values):,.1f})"


def parse_sizes(text: str | None, quick: bool) -> dict:
    sizes = dict(QUICK if quick else SIZES)
    for item in filter(None, (text or "").split(",")):
        key, _, value = item.partition("=")
        if key.strip() not in sizes:
            raise SystemExit(f"--sizes: unknown {key!r}; known: {', '.join(sizes)}")
        sizes[key.strip()] = float(value) if key.strip() == "seconds" else int(value)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: LS 10k tasks, 2 annotators x 20 s, 200 judged")
    parser.add_argument("--sizes", help="override sizes, e.g. tasks=100000,annotators=10,seconds=60,export=100000,judge=1000")
    parser.add_argument("--only", default=",".join(MEASUREMENTS), help=f"comma-separated subset of {','.join(MEASUREMENTS)}")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per measurement (peer, preflab, ...)")
    parser.add_argument("--peers-dir", type=Path, default=ROOT / "var" / "peers")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"),
                        help="PostgreSQL server for preflab (the database peers_bench is created there)")
    parser.add_argument("--latency", type=float, default=0.2, help="the test LLM server's seconds per answer")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        from bench_judge import serve

        serve(args.serve, args.latency, responder=peers_responder)
        return
    atexit.register(_cleanup)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sizes = parse_sizes(args.sizes, args.quick)
    only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = set(only) - set(MEASUREMENTS)
    if unknown:
        raise SystemExit(f"--only: unknown {', '.join(sorted(unknown))}")
    url = f"{args.pg.rstrip('/')}/peers_bench"
    if not urlparse(url).scheme.startswith("postgres"):
        raise SystemExit("--pg must be a postgres:// URL")
    from bench.common import database_prepare

    database_prepare(url)
    print(f"bench_peers {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {' '.join(sys.argv[1:]) or '(defaults)'}; "
          f"{os.cpu_count()} CPUs, load {load()}, sizes {sizes}, rounds {args.rounds}", flush=True)
    ls = dl_python = None
    if {"import", "annotate", "export"} & set(only):
        ls_python = peer_venv(args.peers_dir, "label-studio", LS_SPEC,
                              "import importlib.metadata as m; assert m.version('label-studio') == '1.23.2'")
        ls = LabelStudio(ls_python, args.peers_dir / "ls-data", free_port())
    if "judge" in only:
        dl_python = peer_venv(args.peers_dir, "distilabel", DL_SPEC,
                              "import importlib.metadata as m; from distilabel.models import OpenAILLM; "
                              "assert m.version('distilabel') == '1.5.3'")
    table = Table()
    n_tasks, n_export = sizes["tasks"], sizes["export"]

    if ls is not None:
        t0 = time.perf_counter()
        ls.start()
        print(f"Label Studio 1.23.2 up on :{ls.port} in {time.perf_counter() - t0:.0f} s (SQLite, {ls.data_dir})", flush=True)
        project = None
        if "import" in only or "annotate" in only:
            body = ls_tasks_body(n_tasks)
            print(f"\nimport {n_tasks:,} tasks in one POST ({len(body) / 2**20:,.0f} MiB as JSON)", flush=True)
            for k in range(args.rounds if "import" in only else 1):
                project = ls.project_create(f"import-{k}")
                timed(table, "import", "Label Studio",
                      lambda r: f"{r['rate']:,.0f} tasks/s ({r['stored']:,} in {r['seconds']:.1f} s), peak RSS {r['rss_mb']:,.0f} MB",
                      ls_import, ls, project, body, n_tasks)
                timed(table, "import", "preflab",
                      lambda r: f"{r['rate']:,.0f} records/s ({r['seconds']:.1f} s), peak RSS {r['rss_mb']:,.0f} MB",
                      preflab_import, url, n_tasks)
            del body
        if "annotate" in only:
            k_ann, secs = sizes["annotators"], sizes["seconds"]
            print(f"\nnext + submit, {k_ann} concurrent annotators for {secs:.0f} s on the {n_tasks:,} tasks just imported, "
                  f"one annotation wanted", flush=True)
            tokens = ls.users_create(k_ann)
            ls.api("PATCH", f"/api/projects/{project}", json={"maximum_annotations": 1})
            pre = PreflabAnnotate(url, k_ann)
            for _k in range(args.rounds):
                timed(table, "annotate", "Label Studio", describe_annotate, ls_annotate, ls, project, tokens, secs)
                timed(table, "annotate", "preflab", describe_annotate, pre.run, secs)
        if "export" in only:
            body = ls_tasks_body(n_export, annotated=True)
            project = ls.project_create("export")
            t0 = time.perf_counter()
            ls.api("POST", f"/api/projects/{project}/import", data=body, headers={"Content-Type": "application/json"},
                   timeout=7200)
            del body
            print(f"\nexport {n_export:,} tasks with one annotation each (Label Studio JSON; preflab JSONL triplets); "
                  f"LS import of them took {time.perf_counter() - t0:.0f} s", flush=True)
            for _k in range(args.rounds):
                timed(table, "export", "Label Studio",
                      lambda r: f"{r['rate']:,.0f} rows/s ({r['rows']:,} rows, {r['annotated']:,} annotated, "
                                f"{r['seconds']:.1f} s), first byte {r['first_byte_ms']:,.0f} ms, peak RSS {r['rss_mb']:,.0f} MB",
                      ls_export, ls, project, n_export)
                timed(table, "export", "preflab",
                      lambda r: f"{r['rate']:,.0f} rows/s ({r['rows']:,} rows), first byte {r['first_byte_ms']:,.0f} ms, "
                                f"peak RSS {r['rss_mb']:,.0f} MB",
                      preflab_export, url, n_export)
        ls.stop()

    if dl_python is not None:
        n = sizes["judge"]
        print(f"\njudge {n:,} records (UltraFeedback, 2 responses) against tests/llm_server.py at "
              f"{args.latency * 1000:.0f} ms per answer; ideal = in flight / latency", flush=True)
        server, base_url = llm_server_start(args.latency)
        try:
            work = args.peers_dir / "distilabel-work"
            for _k in range(args.rounds):
                for batch, quiet, label in ((50, False, "distilabel batch 50 (defaults)"),
                                            (200, True, "distilabel batch 200 (best)")):
                    timed(table, "judge", label,
                          lambda r: f"{r['rate']:,.1f} records/s over pipeline.run() ({r['run_s']:.1f} s; "
                                    f"{r['process_s']:.1f} s as a process), {r['cpu_ms']:.1f} ms CPU/record, "
                                    f"{r['parsed']}/{r['records']} ratings parsed",
                          distilabel_run, dl_python, work, base_url, n, batch, quiet)
                for c in (64, 256):
                    timed(table, "judge", f"preflab {c} in flight",
                          lambda r: f"{r['rate']:,.1f} records/s over the job ({r['share']:.0%} of ideal), "
                                    f"{r['cpu_ms']:.2f} ms CPU/record, {r['parsed']}/{r['records']} judged",
                          preflab_judge, url, n, c)
        finally:
            stop(server)

    summary(table, sizes)


def describe_annotate(r: dict) -> str:
    extra = f", server p95 {r['server_p95']:.1f} ms" if "server_p95" in r else ""
    errors = f", {r['errors']} errors {r['error_kinds']}" if r["errors"] else ""
    return (f"{r['rate']:,.1f} annotations/s ({r['annotations']:,} in {r['seconds']:.0f} s), next p50/p95 "
            f"{r['next_p50']:,.0f}/{r['next_p95']:,.0f} ms, submit p50/p95 {r['submit_p50']:,.0f}/{r['submit_p95']:,.0f} ms"
            f"{extra}, over-assigned {r['over_assigned']}{errors}")


def summary(table: Table, sizes: dict) -> None:
    print(f"\n== side by side ({os.cpu_count()} CPUs, load now {load()}; median of the rounds, range in brackets) ==")
    print(f"{'measurement':<44} {'peer':<38} {'preflab':<30} ratio")
    pairs = [("import", f"import {sizes['tasks']:,} tasks, records/s", "Label Studio", "preflab"),
             ("annotate", f"next+submit, {sizes['annotators']} annotators, annotations/s", "Label Studio", "preflab"),
             ("export", f"export {sizes['export']:,} annotated rows, rows/s", "Label Studio", "preflab")]
    for peer in ("distilabel batch 50 (defaults)", "distilabel batch 200 (best)"):
        for c in (64, 256):
            pairs.append(("judge", f"judge {sizes['judge']:,}: {c} in flight vs {peer.split(' (')[1][:-1]}",
                          peer, f"preflab {c} in flight"))
    for measurement, title, peer, ours in pairs:
        a, b = table.rates(measurement, peer), table.rates(measurement, ours)
        if not a and not b:
            continue
        ratio = f"{statistics.median(b) / statistics.median(a):,.1f}x" if a and b and statistics.median(a) > 0 else "-"
        print(f"{title:<44} {fmt_rate(a):<38} {fmt_rate(b):<30} {ratio}")
    extras = []
    for measurement, key, label in (("import", "rss_mb", "import peak RSS MB"), ("export", "rss_mb", "export peak RSS MB"),
                                    ("export", "first_byte_ms", "export first byte ms"),
                                    ("annotate", "next_p95", "next p95 ms (client)"),
                                    ("annotate", "over_assigned", "over-assigned per round")):
        peer = [r[key] for r in table.rows.get((measurement, "Label Studio"), [])]
        ours = [r[key] for r in table.rows.get((measurement, "preflab"), [])]
        if peer or ours:
            extras.append(f"{label:<44} {'/'.join(f'{x:,.0f}' for x in peer) or '-':<38} "
                          f"{'/'.join(f'{x:,.0f}' for x in ours) or '-'}")
    if extras:
        print("\n".join(extras))


if __name__ == "__main__":
    main()
