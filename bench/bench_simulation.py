"""Simulated annotators, agreement and leaderboard speed (prints figures; not a test).

    .venv/bin/python bench/bench_simulation.py                       # defaults below
    .venv/bin/python bench/bench_simulation.py --records 600 --annotators 3 --overlap 3 --latency 0.2

1. A simulation campaign: `--annotators` simulated annotators (UltraFeedback judge, one aspect,
   endpoint max_concurrency `--concurrency`) answer `--records` pairwise records with overlap
   `--overlap`, through next_record_for + response_upsert, against the OpenAI-compatible test
   server of tests/llm_server.py in a SEPARATE process answering after `--latency` seconds.
   Figures: answers/s and the LLM-bound ideal (concurrency / latency; the annotators share one
   judge endpoint). One process answers serially through the human path (next_record_for +
   response_upsert); a "simulation" job runs one chunk per annotator, so workers add up.
2. On the campaign's dataset: time of dataset_agreement (one pass over the submitted responses)
   and of dataset_leaderboard, and the figures they give.
Database: PostgreSQL (BENCH_DATABASE_URL, or DATABASE_URL's server with database
preflab_bench_simulation) — created and migrated if needed.
"""
from __future__ import annotations

import argparse
import json
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


def responder(body: dict) -> str:
    prompt = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    return json.dumps({"ratings": [{"text": int(n), "rating": 5 if "strong" in t else 2, "rationale": "ok"}
                                   for n, t in TEXT_RE.findall(prompt)]})


def serve(port: int, latency: float) -> None:
    from tests.llm_server import LLMTestServer

    server = LLMTestServer(latency=latency, port=port, record=False, responder=responder, usage=(300, 60)).start()
    print(f"ready {server.base_url}", flush=True)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", type=int)
    parser.add_argument("--records", type=int, default=600)
    parser.add_argument("--annotators", type=int, default=3)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.latency)

    from bench.common import database_prepare, database_url, django_setup

    url = database_url("preflab_bench_simulation")
    database_prepare(url)
    django_setup(url)
    from django.contrib.auth import get_user_model

    from annotation.agreement import dataset_agreement
    from annotation.models import Workspace
    from annotation.services import dataset_create, dataset_publish, records_upsert, workspace_create
    from generation.models import Endpoint
    from judging.evaluation.leaderboards import dataset_leaderboard
    from judging.evaluation.simulation import simulated_annotator_create, simulation_run
    from judging.services import judge_create

    port = free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", str(port),
                             "--latency", str(args.latency)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("ready"):
            raise SystemExit(f"the test server did not start: {line!r}")
        base_url = line.split()[1]
        Workspace.objects.filter(name="bench-simulation").delete()
        get_user_model().objects.filter(username__startswith="sim-bench-").delete()
        user, _ = get_user_model().objects.get_or_create(username="bench-simulation")
        ws = workspace_create(name="bench-simulation", creator=user)
        dataset = dataset_create(
            workspace=ws, name="campaign", min_submitted=args.overlap, shuffle_responses=True,
            fields=[{"name": "prompt"}, {"name": "response-1", "kind": "markdown"}, {"name": "response-2", "kind": "markdown"}],
            questions=[{"name": "ranking", "kind": "ranking", "options": {"values": ["response-1", "response-2"]}}])
        rng = random.Random(1)
        rows = []
        for i in range(args.records):
            strong = rng.random() < 0.5
            rows.append({"external_id": f"r{i}", "priority": 0.0, "fields": {
                "prompt": f"Explain topic {i}.", "response-1": f"A {'strong' if strong else 'plain'} answer {i}." * 4,
                "response-2": f"A {'plain' if strong else 'strong'} answer {i}." * (3 + i % 3)},
                "metadata": {"response-1": {"model": "model-a"}, "response-2": {"model": "model-b"}}})
        records_upsert(dataset=dataset, rows=rows)
        dataset_publish(dataset=dataset)
        endpoint = Endpoint.objects.create(workspace=ws, name="server", model="bench-judge", base_url=base_url,
                                           max_concurrency=args.concurrency, timeout=30, max_retries=3,
                                           supports_json_schema=False)
        judge = judge_create(workspace=ws, name="uf", endpoint=endpoint, aspect="helpfulness")
        pool = [simulated_annotator_create(workspace=ws, name=f"bench-{i}", judge=judge, flip_probability=0.25, seed=i)
                for i in range(args.annotators)]
        t0 = time.perf_counter()
        result = simulation_run(dataset=dataset, annotators=pool)
        wall = time.perf_counter() - t0
        answers = result.submitted + result.discarded
        ideal = args.concurrency / args.latency  # the annotators share one judge endpoint
        from judging.models import SimulatedAnswer

        print(f"simulation: {answers} answers by {args.annotators} annotators (overlap {args.overlap}) over "
              f"{args.records} records in {wall:.1f} s = {answers / wall:.1f} answers/s "
              f"(LLM-bound ideal {ideal:.0f}/s: {args.concurrency} in flight at {args.latency * 1000:.0f} ms), "
              f"{result.rounds} rounds, noised {SimulatedAnswer.objects.filter(annotator__in=pool, noised=True).count()}",
              flush=True)
        t0 = time.perf_counter()
        agreement = dataset_agreement(dataset)
        t_agree = time.perf_counter() - t0
        t0 = time.perf_counter()
        board = dataset_leaderboard(dataset, reference="model-a")
        t_board = time.perf_counter() - t0
        print(f"dataset_agreement over {agreement['submitted_responses']} responses: {t_agree * 1000:.0f} ms "
              f"(pairwise {agreement['pairwise_agreement']['value']}, leave-one-out {agreement['leave_one_out']['value']}, "
              f"alpha {agreement['krippendorff_alpha']})", flush=True)
        row = next(r for r in board.rows if r.model == "model-b")
        print(f"dataset_leaderboard: {t_board * 1000:.0f} ms (model-b vs model-a: {row.win_rate:.1f}% ± {row.standard_error:.1f})",
              flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
