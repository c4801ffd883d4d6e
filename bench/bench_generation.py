"""Generation throughput against the OpenAI-compatible test server (200 ms per answer).

    .venv/bin/python bench/bench_generation.py                 # everything (about 2 minutes)
    .venv/bin/python bench/bench_generation.py --transports aiohttp --concurrency 16 64 256 --job

The server runs in a SEPARATE process (tests/llm_server.py), so the CPU figures are the client's
alone: CPU seconds (user + system, all threads) of this process per request, from getrusage;
"server CPU" is the share of one core the test server used during the run (near 100 %: the
server, not the client, is the limit).
Ideal throughput = concurrency / latency; the goals on a 2-core machine: >= 85 % of ideal up to
64 in flight, >= 600 records/s at 256 in flight, <= 1.5 ms CPU per request.

Part 1 calls generation.llm.chat_many directly for each transport (raw aiohttp, the openai client
over aiohttp, the openai client over its default httpx). Part 2 (--job) runs a full generation job
through the job handler (chunks, GenerationOutput rows, records with metadata) on SQLite, or on
--database-url when given: in this warm process (--mode inline, the default), or as a fresh
`manage.py generate` process timed from spawn to exit (--mode process: start-up included, the
project's modules compiled to bytecode first, as in the Docker image). The issue-sized run:

    .venv/bin/python bench/bench_generation.py --job-only --mode process --concurrency 64 256 --prompts 10000 \
        --database-url postgres://postgres@127.0.0.1:5432/preflab_bench_gen
"""
from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.llm_server", "--port", str(port), "--latency", str(latency)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the test server did not start")


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def setup_django(tmp: str) -> None:
    os.environ.setdefault("PREFLAB_VAR_DIR", tmp)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "preflab.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def server_cpu(server_pid: int) -> float:
    import psutil

    t = psutil.Process(server_pid).cpu_times()
    return t.user + t.system


def bench_client(base_url: str, transport: str, concurrency: int, requests: int, latency: float,
                 server_pid: int) -> dict:
    from generation.llm import chat_many
    from generation.llm_types import ChatRequest
    from generation.models import Endpoint

    ep = Endpoint(name=f"bench-{concurrency}", model="bench-model", base_url=base_url, max_concurrency=concurrency,
                  timeout=30, max_retries=3, params={"temperature": 0.7, "max_tokens": 256})
    reqs = [ChatRequest(key=str(i), messages=[{"role": "user", "content": f"Write a short answer to question {i}."}])
            for i in range(requests)]
    chat_many(ep, reqs[: min(concurrency, 64)], transport=transport)  # warm up (connections, imports)
    cpu0, scpu0, t0 = cpu_seconds(), server_cpu(server_pid), time.perf_counter()
    results = chat_many(ep, reqs, transport=transport)
    wall, cpu, scpu = time.perf_counter() - t0, cpu_seconds() - cpu0, server_cpu(server_pid) - scpu0
    errors = sum(1 for r in results if r.error)
    rate = requests / wall
    ideal = concurrency / latency
    return {"transport": transport, "concurrency": concurrency, "requests": requests, "errors": errors,
            "seconds": wall, "rate": rate, "ideal": ideal, "pct": 100 * rate / ideal, "cpu_ms": 1000 * cpu / requests,
            "server_busy": 100 * scpu / wall}


def _job_setup(base_url: str, concurrency: int, prompts: int, transport: str):
    """A workspace with two endpoints of the test server (half the slots each) and a file of `prompts` prompts."""
    from django.core.management import call_command

    from annotation.models import Workspace
    from generation.models import Endpoint
    call_command("migrate", verbosity=0)
    ws, _ = Workspace.objects.get_or_create(name=f"bench-{time.time_ns()}")
    endpoints = [Endpoint.objects.create(workspace=ws, name=name, model=f"bench-{name}", base_url=base_url,
                                         max_concurrency=concurrency // 2, timeout=30, params={"temperature": 0.7})
                 for name in ("a", "b")]
    path = Path(tempfile.mkdtemp()) / "prompts.jsonl"
    path.write_text("".join(f'{{"prompt": "Explain idea number {i} in two sentences."}}\n' for i in range(prompts)))
    os.environ["PREFLAB_LLM_TRANSPORT"] = transport
    return ws, endpoints, path


def bench_job(base_url: str, concurrency: int, prompts: int, latency: float, transport: str, server_pid: int,
              mode: str = "inline") -> dict:
    """One whole generation job (2 endpoints, n=2). mode "inline": job_run_inline in this warm process;
    "process": `manage.py generate` as a fresh process, timed from spawn to exit (Python and Django start-up,
    reading the prompts, planning and the summary included), its CPU from getrusage of the child."""
    from django.db import connection, connections

    from annotation.jobs import job_run_inline
    from annotation.models import Job, Record
    from bench.common import children_cpu_seconds
    from generation.services import generation_job_create

    ws, endpoints, path = _job_setup(base_url, concurrency, prompts, transport)
    name = f"bench-{time.time_ns()}"
    if mode == "inline":
        job = generation_job_create(workspace=ws, dataset_name=name, endpoints=endpoints, n=2,
                                    strategy="sample", prompts_source={"file": str(path)}, start=False)
        cpu0, scpu0, t0 = cpu_seconds(), server_cpu(server_pid), time.perf_counter()
        job = job_run_inline(job=job)
        wall, cpu, scpu = time.perf_counter() - t0, cpu_seconds() - cpu0, server_cpu(server_pid) - scpu0
    else:
        connections.close_all()
        command = [sys.executable, "manage.py", "generate", "--workspace", ws.name, "--prompts", str(path),
                   "--new-dataset", name, "--n", "2", "--strategy", "sample", "--quiet"]
        for e in endpoints:
            command += ["--endpoint", e.name]
        cpu0, scpu0, t0 = children_cpu_seconds(), server_cpu(server_pid), time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, "LOG_LEVEL": "WARNING"}, capture_output=True,
                              text=True)
        wall, cpu, scpu = time.perf_counter() - t0, children_cpu_seconds() - cpu0, server_cpu(server_pid) - scpu0
        job = Job.objects.filter(kind="generation", dataset__name=name, workspace=ws).order_by("pk").last()
        # the command exits 1 when some responses failed (partly failed): reported below, as inline mode reports it
        if job is None or job.status not in (Job.Status.SUCCEEDED, Job.Status.PARTLY_FAILED):
            raise SystemExit(f"manage.py generate failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n"
                             f"{done.stderr[-2000:]}")
    records = Record.objects.filter(dataset=job.dataset).count()
    responses = job.done
    return {"db": connection.vendor, "mode": mode, "concurrency": concurrency, "prompts": prompts, "records": records,
            "responses": responses, "failed": job.failed, "seconds": wall, "rate": responses / wall,
            "records_rate": records / wall, "ideal": concurrency / latency,
            "pct": 100 * (responses / wall) / (concurrency / latency), "cpu_ms": 1000 * cpu / max(1, responses),
            "server_cpu_ms": 1000 * scpu / max(1, responses), "chunks": job.chunks.count(), "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--transports", nargs="+", default=["http", "aiohttp", "openai", "openai-httpx"])
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="size each run to about this many seconds at the ideal rate (500..5000 requests)")
    parser.add_argument("--job", action="store_true", help="also run full generation jobs through the handler")
    parser.add_argument("--job-only", action="store_true")
    parser.add_argument("--mode", choices=["inline", "process"], action="append",
                        help="jobs: inline, in this warm process (default), or process, `manage.py generate` as a "
                             "fresh process timed from spawn to exit; repeatable")
    parser.add_argument("--prompts", type=int, help="prompts per job (records; each gets n=2 responses); default "
                                                     "about --seconds/2 of ideal throughput, 250..2,500")
    parser.add_argument("--database-url", help="run the jobs on this (scratch) database instead of a temporary "
                                               "SQLite file, e.g. postgres://postgres@127.0.0.1:5432/preflab_bench")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="preflab-bench-")
    if args.database_url:
        from bench.common import database_prepare

        database_prepare(args.database_url, migrate=False)  # created when missing; the jobs migrate it
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)  # never write benchmark rows into a configured database
    setup_django(tmp)
    if "process" in (args.mode or []):
        from bench.common import bytecode_compile

        bytecode_compile()
    proc, base_url = start_server(args.latency)
    print(f"test server (separate process) at {base_url}, latency {args.latency * 1000:.0f} ms; "
          f"{os.cpu_count()} CPUs", flush=True)
    try:
        if not args.job_only:
            print("\nchat_many, per transport (client CPU = this process, all threads)")
            print(f"{'transport':<13} {'in flight':>9} {'requests':>8} {'req/s':>8} {'ideal':>7} {'% ideal':>8} "
                  f"{'CPU ms/req':>10} {'errors':>6} {'server CPU':>10}")
            for transport in args.transports:
                for c in args.concurrency:
                    n = int(min(5000, max(500, c / args.latency * args.seconds)))
                    r = bench_client(base_url, transport, c, n, args.latency, proc.pid)
                    print(f"{r['transport']:<13} {r['concurrency']:>9} {r['requests']:>8} {r['rate']:>8.1f} "
                          f"{r['ideal']:>7.0f} {r['pct']:>7.1f}% {r['cpu_ms']:>10.2f} {r['errors']:>6} "
                          f"{r['server_busy']:>9.0f}%", flush=True)
        if args.job or args.job_only:
            transport = args.transports[0]
            print(f"\nfull generation job (2 endpoints, strategy sample, n=2; handler + DB writes; transport {transport})")
            print(f"{'db':<10} {'mode':<8} {'in flight':>9} {'prompts':>7} {'responses/s':>11} {'records/s':>9} "
                  f"{'% ideal':>8} {'CPU ms/resp':>11} {'server ms':>9} {'failed':>6} {'chunks':>6} {'seconds':>7} "
                  f"{'load':>5}")
            for c in args.concurrency:
                prompts = args.prompts or int(min(2500, max(250, c / args.latency * args.seconds / 2)))
                for mode in args.mode or ["inline"]:
                    r = bench_job(base_url, c, prompts, args.latency, transport, proc.pid, mode)
                    assert r["records"] == prompts, r
                    print(f"{r['db']:<10} {r['mode']:<8} {r['concurrency']:>9} {r['prompts']:>7} {r['rate']:>11.1f} "
                          f"{r['records_rate']:>9.1f} {r['pct']:>7.1f}% {r['cpu_ms']:>11.2f} {r['server_cpu_ms']:>9.2f} "
                          f"{r['failed']:>6} {r['chunks']:>6} {r['seconds']:>7.2f} {r['load']:>5.2f}", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
