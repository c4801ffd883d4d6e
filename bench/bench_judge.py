"""Judge throughput and parse rate (prints figures; not a test).

    .venv/bin/python bench/bench_judge.py                        # both parts, 16/64/256 in flight
    .venv/bin/python bench/bench_judge.py --part parse           # only the parse-rate corpus
    .venv/bin/python bench/bench_judge.py --part throughput --concurrency 64 --concurrency 256 --records 10000

1. Throughput: an UltraFeedback judge (one aspect, 2 responses per record) runs a whole judge job
   (chunks, parsing, outputs, verdicts, suggestions and priorities all written to the database)
   against the OpenAI-compatible test server of tests/llm_server.py, started in a SEPARATE process,
   answering after 200 ms with a valid UltraFeedback rating text. Two modes (--mode, default both):
   "process" runs `manage.py judge` as a fresh process, timed from spawn to exit (Python and Django
   start-up, job planning and summary included; its CPU from getrusage of the child; the project's
   modules compiled to bytecode first, as in the Docker image); "inline" runs
   job_run_inline in this process, already warm. Figures: records/s, the share of the ideal bound
   (concurrency / latency), CPU ms per record of the judge process and of the test server, and the
   load average (on a shared 2-core machine the share of the ideal follows the CPU the judge gets:
   records/s <= CPU share / CPU per record). distilabel on the same kind of machine
   (../shared/PEERS.md): 68 records/s by default, 108 at best.
   Database: PostgreSQL (BENCH_DATABASE_URL, or DATABASE_URL's server with database
   preflab_bench_judge) — created and migrated if needed.

2. Parse rate: a fixed corpus of ~200 judge outputs generated here from a seeded RNG — well formed
   (JSON, fenced JSON, UltraFeedback's markdown) and messy (bold labels, bullets, one-liners,
   headings, prose around, shuffled sections) plus broken ones (N/A, truncated, missing sections,
   refusals, out of range). Figures: share parsed, share of the readable ones parsed to the right
   ratings, and misreads (a wrong rating returned instead of an error — must be 0).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TEXT_RE = re.compile(r"<Text (\d+)>\n(.*?)\n</Text \1>", re.DOTALL)


# --- the test server's answer (runs in the server process) -------------------------------------

def uf_responder(body: dict) -> str:
    """A valid UltraFeedback rating for every text shown, in the published text layout."""
    prompt = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    texts = TEXT_RE.findall(prompt)
    parts = []
    for number, text in texts:
        rating = 5 if "strong" in text else 3
        parts.append(f"#### Output for Text {number}\nRating: {rating}\nRationale: The text is "
                     f"{'accurate and complete' if rating == 5 else 'correct but thin'}.")
    return "\n\n".join(parts)


def serve(port: int, latency: float, responder=None) -> None:
    """The test LLM server in this process until SIGTERM or Ctrl-C, answering with `responder`
    (default uf_responder); prints "ready <base url>" for the parent (bench_peers.py uses it too)."""
    import signal

    from tests.llm_server import LLMTestServer

    server = LLMTestServer(latency=latency, port=port, record=False, responder=responder or uf_responder,
                           usage=(300, 60)).start()
    print(f"ready {server.base_url}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (server.stop(), sys.exit(0)))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- part 1: throughput ------------------------------------------------------------------------

def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu_of(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def _row(mode: str, c: int, n: int, wall: float, cpu: float, server_cpu: float, latency: float, chunks: int) -> dict:
    ideal = c / latency
    return {"mode": mode, "concurrency": c, "records": n, "seconds": round(wall, 2), "records_per_s": round(n / wall, 1),
            "ideal_per_s": round(ideal, 1), "share_of_ideal": round(n / wall / ideal, 3),
            "cpu_ms_per_record": round(cpu / n * 1000, 3), "server_cpu_ms_per_record": round(server_cpu / n * 1000, 3),
            "chunks": chunks, "load": os.getloadavg()[0]}


def _print(row: dict) -> None:
    where = "judge process" if row["mode"] == "process" else "this process"
    print(f"  {row['mode']:<8} {row['concurrency']:>4} in flight: {row['records_per_s']:>7} records/s over {row['records']} "
          f"records in {row['seconds']} s ({row['share_of_ideal']:.0%} of the ideal {row['ideal_per_s']:.0f}/s), "
          f"{row['cpu_ms_per_record']} ms CPU per record ({where}), test server {row['server_cpu_ms_per_record']} ms, "
          f"{row['chunks']} chunks; {_load()}", flush=True)


def throughput(concurrencies: list[int], records: int | None, latency: float, modes: list[str],
               processes: int = 1) -> list[dict]:
    """modes: "inline" runs the job in this process, already warm (job_run_inline); "process" runs
    `manage.py judge` as a fresh process and times it from spawn to exit (start-up included).
    processes > 1: the job's chunks are shared among that many processes (job_run_inline(processes=),
    `manage.py judge --processes`), each with its share of the endpoint's slots; the CPU figure then
    counts them all (getrusage of the children, or of this process and its children)."""
    from bench.common import bytecode_compile, children_cpu_seconds, database_prepare, database_url, django_setup

    bytecode_compile()

    url = database_url("preflab_bench_judge")
    database_prepare(url)
    django_setup(url)
    from django.contrib.auth import get_user_model
    from django.db import connections

    from annotation.jobs import job_run_inline
    from annotation.models import Workspace
    from annotation.services import dataset_create, records_upsert, workspace_create
    from generation.models import Endpoint
    from judging.models import JudgeVerdict
    from judging.services import judge_create, judge_job_create
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", str(port),
                             "--latency", str(latency)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("ready"):
            raise SystemExit(f"the test server did not start: {line!r}")
        base_url = line.split()[1]
        Workspace.objects.filter(name="bench-judge").delete()
        user, _ = get_user_model().objects.get_or_create(username="bench-judge")
        ws = workspace_create(name="bench-judge", creator=user)
        results = []
        for c in concurrencies:
            n = records or max(1000, int(c / latency * 8))
            dataset = dataset_create(
                workspace=ws, name=f"uf-{c}", fields=[{"name": "prompt"}, {"name": "response-1", "kind": "markdown"},
                                                      {"name": "response-2", "kind": "markdown"}],
                questions=[{"name": "ranking", "kind": "ranking", "options": {"values": ["response-1", "response-2"]}}])
            rng = random.Random(c)
            rows = []
            for i in range(n):
                strong = rng.random() < 0.5
                rows.append({"external_id": f"r{i}", "metadata": {}, "priority": 0.0, "fields": {
                    "prompt": f"Explain topic {i} in a short paragraph.",
                    "response-1": f"A {'strong' if strong else 'plain'} answer about topic {i}. " * 8,
                    "response-2": f"A {'plain' if strong else 'strong'} answer about topic {i}. " * 8}})
            for start in range(0, n, 2000):
                records_upsert(dataset=dataset, rows=rows[start:start + 2000])
            endpoint = Endpoint.objects.create(workspace=ws, name=f"server-{c}", model="bench-judge-model",
                                               base_url=base_url, max_concurrency=c, timeout=30, max_retries=3,
                                               supports_json_schema=False)
            judge = judge_create(workspace=ws, name=f"uf-{c}", endpoint=endpoint, aspect="helpfulness",
                                 params={"temperature": 0})
            for mode in modes:
                if mode == "inline":
                    job = judge_job_create(workspace=ws, dataset=dataset, judge=judge, processes=processes,
                                           start=False)
                    cpu0, scpu0, t0 = time.process_time() + children_cpu_seconds(), _cpu_of(proc.pid), time.perf_counter()
                    job = job_run_inline(job=job, processes=processes)
                    wall, cpu = time.perf_counter() - t0, time.process_time() + children_cpu_seconds() - cpu0
                    assert job.status == "succeeded" and job.done == n, (job.status, job.done, job.failed, job.error)
                    chunks = job.chunks.count()
                else:
                    connections.close_all()
                    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "preflab.settings",
                           "LOG_LEVEL": "WARNING"}
                    before = set(JudgeVerdict.objects.filter(record__dataset=dataset).values_list("job_id", flat=True))
                    ccpu0, scpu0, t0 = children_cpu_seconds(), _cpu_of(proc.pid), time.perf_counter()
                    done = subprocess.run([sys.executable, "manage.py", "judge", "--dataset", str(dataset.pk),
                                           "--judge", judge.name, "--no-progress", "--processes", str(processes)],
                                          cwd=ROOT, env=env,
                                          capture_output=True, text=True)
                    wall, cpu = time.perf_counter() - t0, children_cpu_seconds() - ccpu0
                    if done.returncode != 0:
                        raise SystemExit(f"manage.py judge failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
                    from annotation.models import Job

                    job = Job.objects.filter(kind="judge", dataset=dataset).exclude(pk__in=before).latest("pk")
                    assert job.status == "succeeded" and job.done == n, (job.status, job.done, job.failed, job.error)
                    chunks = job.chunks.count()
                row = _row(mode, c, n, wall, cpu, _cpu_of(proc.pid) - scpu0, latency, chunks)
                results.append(row)
                _print(row)
        return results
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- part 2: parse rate ------------------------------------------------------------------------

REFUSALS = ["I'm sorry, but I can't help with rating these responses.",
            "I cannot evaluate this content.",
            "As an AI, I am unable to provide ratings for this request."]
RATIONALES = ["Accurate and well organised.", "Misses the second half of the question.",
              "Correct, but states a wrong date in passing.", "Clear steps; slightly verbose.",
              "Off topic.", "Follows the format exactly and cites the source."]


def corpus(seed: int = 2026, size: int = 200) -> list[tuple[str, int, list[int] | None, str]]:
    """(output, n, true ratings or None if the output is not readable, style)."""
    rng = random.Random(seed)
    out = []
    good_styles = ["json", "json_fenced_prose", "json_parallel", "uf_markdown", "bold_bullets", "one_line",
                   "headings_no_rationale", "numbered", "inline_heading", "sections_shuffled", "prose_around",
                   "labelled_rating", "table"]
    bad_styles = ["na", "truncated_json", "truncated_text", "missing_section", "refusal", "out_of_range",
                  "decimal", "empty"]
    for _ in range(size):
        n = rng.choice([2, 2, 2, 3, 4])
        ratings = [rng.randint(1, 5) for _ in range(n)]
        rats = [rng.choice(RATIONALES) for _ in range(n)]
        style = rng.choice(good_styles) if rng.random() < 0.8 else rng.choice(bad_styles)
        truth: list[int] | None = ratings
        if style == "json":
            text = json.dumps({"ratings": [{"text": k + 1, "rating": r, "rationale": t}
                                           for k, (r, t) in enumerate(zip(ratings, rats))]})
        elif style == "json_fenced_prose":
            text = "Here is my evaluation:\n```json\n" + json.dumps(
                {"ratings": [{"text": k + 1, "rating": r, "rationale": t} for k, (r, t) in enumerate(zip(ratings, rats))]},
                indent=2) + "\n```\nLet me know if you need anything else."
        elif style == "json_parallel":
            text = json.dumps({"ratings": ratings, "rationales": rats})
        elif style == "uf_markdown":
            text = "\n\n".join(f"#### Output for Text {k + 1}\nRating: {r}\nRationale: {t}"
                               for k, (r, t) in enumerate(zip(ratings, rats)))
        elif style == "bold_bullets":
            text = "Here is my assessment.\n\n" + "\n\n".join(
                f"**Text {k + 1}**\n- **Rating**: {r}{'/5' if rng.random() < 0.5 else ''}\n- **Rationale**: {t}"
                for k, (r, t) in enumerate(zip(ratings, rats)))
        elif style == "one_line":
            text = "\n".join(f"Text {k + 1}: {r}/5 - {t}" for k, (r, t) in enumerate(zip(ratings, rats)))
        elif style == "headings_no_rationale":
            text = "\n\n".join(f"### Text {k + 1}\nRating: {r}" for k, r in enumerate(ratings))
        elif style == "numbered":
            text = "\n".join(f"{k + 1}. Text {k + 1} — Rating: {r}. Rationale: {t}"
                             for k, (r, t) in enumerate(zip(ratings, rats)))
        elif style == "inline_heading":
            text = "\n".join(f"## Response {k + 1} (Rating: {r} out of 5)\n{t}" for k, (r, t) in enumerate(zip(ratings, rats)))
        elif style == "sections_shuffled":
            order = list(range(n))
            rng.shuffle(order)
            text = "\n\n".join(f"#### Output for Text {k + 1}\n**Rating:** {ratings[k]}\n**Rationale:** {rats[k]}"
                               for k in order)
        elif style == "prose_around":
            text = ("I evaluated each text on the requested aspect.\n\n" + "\n\n".join(
                f"#### Output for Text {k + 1}\nRating: {r}\nRationale: {t} Text {((k + 1) % n) + 1} does this better."
                for k, (r, t) in enumerate(zip(ratings, rats))) + "\n\nOverall, the ratings reflect the rubric.")
        elif style == "labelled_rating":
            labels = {1: "Severely Incorrect", 2: "Partially Incorrect", 3: "Correct", 4: "Highly Informative",
                      5: "Outstandingly Helpful"}
            text = "\n\n".join(f"#### Output for Text {k + 1}\nRating: {labels[r]} ({r})\nRationale: {t}"
                                 for k, (r, t) in enumerate(zip(ratings, rats)))
        elif style == "table":
            text = ("| Text | Rating | Rationale |\n|---|---|---|\n"
                    + "\n".join(f"| Text {k + 1} | {r} | {t} |" for k, (r, t) in enumerate(zip(ratings, rats))))
        else:
            truth = None
            if style == "na":
                j = rng.randrange(n)
                text = "\n\n".join(f"#### Output for Text {k + 1}\nRating: {'N/A' if k == j else r}\nRationale: {t}"
                                   for k, (r, t) in enumerate(zip(ratings, rats)))
            elif style == "truncated_json":
                full = json.dumps({"ratings": [{"text": k + 1, "rating": r, "rationale": t}
                                               for k, (r, t) in enumerate(zip(ratings, rats))]})
                text = full[: rng.randint(10, len(full) - 30)]
            elif style == "truncated_text":
                full = "\n\n".join(f"#### Output for Text {k + 1}\nRating: {r}\nRationale: {t}"
                                   for k, (r, t) in enumerate(zip(ratings, rats)))
                text = full[: full.rfind("#### Output for Text") + rng.randint(5, 22)]
            elif style == "missing_section":
                text = "\n\n".join(f"#### Output for Text {k + 1}\nRating: {r}\nRationale: {t}"
                                   for k, (r, t) in enumerate(zip(ratings, rats)) if k != n - 1)
            elif style == "refusal":
                text = rng.choice(REFUSALS)
            elif style == "out_of_range":
                text = "\n".join(f"Text {k + 1}: {r + 5 if k == 0 else r}" for k, r in enumerate(ratings))
            elif style == "decimal":
                text = "\n".join(f"Text {k + 1}: Rating {r - 0.5 if k == 0 else r}" for k, r in enumerate(ratings))
            else:
                text = ""
        out.append((text, n, truth, style))
    return out


def parse_rate() -> dict:
    from judging.parsers import JudgeParseError, parse_ratings

    items = corpus()
    parsed = right = misread = readable = 0
    per_style: dict[str, list[int]] = {}
    t0 = time.perf_counter()
    for text, n, truth, style in items:
        stats = per_style.setdefault(style, [0, 0])
        stats[1] += 1
        readable += truth is not None
        try:
            result = parse_ratings(text, n)
        except JudgeParseError:
            continue
        parsed += 1
        stats[0] += 1
        if truth is not None and result.ratings == truth:
            right += 1
        else:
            misread += 1
    seconds = time.perf_counter() - t0
    summary = {"outputs": len(items), "parsed": parsed, "parsed_share": round(parsed / len(items), 3),
               "readable": readable, "readable_parsed_right": right,
               "readable_share": round(right / readable, 3) if readable else None,
               "misreads": misread, "us_per_output": round(seconds / len(items) * 1e6, 1)}
    print(f"  {len(items)} outputs: {parsed} parsed ({summary['parsed_share']:.1%}); "
          f"{right} of {readable} readable ones parsed to the right ratings ({summary['readable_share']:.1%}); "
          f"{len(items) - readable} unreadable ones (N/A, truncated, refusals, ...) all reported as errors: "
          f"{'yes' if misread == 0 and parsed == right else 'NO'}; misreads: {misread}; "
          f"{summary['us_per_output']} µs per output", flush=True)
    for style, (ok, total) in sorted(per_style.items()):
        print(f"    {style:<22} {ok:>3}/{total:<3} parsed", flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["all", "throughput", "parse"], default="all")
    parser.add_argument("--concurrency", type=int, action="append", help="in flight (repeatable); default 16, 64, 256")
    parser.add_argument("--records", type=int, help="records per run (default: ~8 s of ideal throughput, >= 1000)")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--mode", choices=["inline", "process"], action="append",
                        help="inline: the job in this (warm) process; process: `manage.py judge` from spawn to exit "
                             "(start-up included); repeatable, default both")
    parser.add_argument("--processes", type=int, default=1,
                        help="share each job's chunks among this many processes (default 1)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.latency)
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "preflab.settings")
    if args.part in ("all", "parse"):
        print("parse rate on a fixed corpus of varied judge outputs:", flush=True)
        if args.part == "parse":
            import django

            django.setup()
        parse_rate()
    if args.part in ("all", "throughput"):
        print(f"judge throughput, UltraFeedback ratings of 2 responses, server latency {args.latency * 1000:.0f} ms "
              f"(distilabel on this machine: 68 records/s by default, 108 at best):", flush=True)
        throughput(args.concurrency or [16, 64, 256], args.records, args.latency, args.mode or ["process", "inline"],
                   processes=args.processes)


if __name__ == "__main__":
    main()
