"""Benchmark: server time of the annotate page and of submit+next with a large dataset (PostgreSQL).

    .venv/bin/python bench/bench_annotate_page.py                     # 1,000,000 records
    .venv/bin/python bench/bench_annotate_page.py --records 20000 --requests 100   # quick run
    .venv/bin/python bench/bench_annotate_page.py --gold-share 0.01 --gold-rate 0.05  # also with gold mixed in

Database: BENCH_DATABASE_URL, else the local PostgreSQL with the database `preflab_bench_ui`
(created and migrated if missing). A pairwise dataset of N records with realistic markdown
(paragraphs, lists, a fenced code block; ~1.3 kB per record) is written once with COPY and kept for
later runs; every run resets its responses and leases first.

How it measures: Django's test Client in this process (the full middleware stack, sessions, auth,
CSRF middleware, template rendering, DEBUG off), no network and no web server. "Server time" is
taken from Django's request_started to its request_finished signal (the handler, every middleware,
the view and the template; not the test client's own encoding of the request and parsing of the
response); the client-observed time is printed beside it. Several annotators take turns:
  * GET /datasets/<id>/annotate/          the focus view (the annotator's next record, leased)
  * POST /datasets/<id>/records/<r>/respond/ (htmx) submit a ranking; the answer is the next
    record's panel, so one request = submit + next.
Prints p50/p95/mean per request and the number of SQL queries each made. Goal: p95 < 30 ms.

With --gold-share S the run is made twice on the same records: first without gold, then with a
share S of the records marked gold (every round(1/S)-th record) and the dataset's gold_rate set to
--gold-rate, so each annotator is handed gold at that rate. The SQL statement counts are then given
as the range over a separate counted pass (a request that hands gold differs from one that does not).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import database_prepare, database_url, django_setup, fmt_ms, summarize  # noqa: E402

WORKSPACE = "bench-ui"
PARAGRAPH = ("A good answer states its assumptions, explains each step and checks the result, while a weak "
             "one skips the reasoning or invents a fact a reviewer must catch. ")
CODE = "```python\ndef mean(xs):\n    if not xs:\n        raise ValueError(\"empty\")\n    return sum(xs) / len(xs)\n```"


def _markdown(rng: random.Random, i: int) -> str:
    parts = [PARAGRAPH * rng.randint(1, 3), f"1. first point {i}\n2. second point\n3. **third** point"]
    if rng.random() < 0.5:
        parts.append(CODE)
    parts.append(PARAGRAPH * rng.randint(1, 2))
    return "\n\n".join(parts)


def dataset_ensure(n_records: int, *, regenerate: bool):
    from django.db import connection, transaction

    from annotation.models import Dataset, Record, Workspace
    from annotation.services import dataset_create

    ws, _ = Workspace.objects.get_or_create(name=WORKSPACE)
    name = f"annotate-{n_records}"
    ds = Dataset.objects.filter(workspace=ws, name=name).first()
    if ds is not None and not regenerate and Record.objects.filter(dataset=ds).count() == n_records:
        return ds
    if ds is not None:
        with connection.cursor() as c:
            for table in ("annotation_suggestion", "annotation_response", "annotation_lease"):
                c.execute(f"DELETE FROM {table} WHERE record_id IN "
                          f"(SELECT id FROM annotation_record WHERE dataset_id = %s)", [ds.pk])
            c.execute("DELETE FROM annotation_record WHERE dataset_id = %s", [ds.pk])
        ds.delete()
    ds = dataset_create(
        workspace=ws, name=name, min_submitted=1, shuffle_responses=True, show_suggestions=True,
        guidelines="Rank the responses **best first**. Correct beats well written.",
        fields=[{"name": "prompt", "kind": "markdown"}, {"name": "response-1", "kind": "markdown"},
                {"name": "response-2", "kind": "markdown"}],
        questions=[{"name": "ranking", "kind": "ranking", "options": {"values": ["response-1", "response-2"]}},
                   {"name": "comment", "kind": "text", "required": False}])
    ds.status = Dataset.Status.PUBLISHED
    ds.save(update_fields=["status"])
    rng = random.Random(11)
    texts = [_markdown(rng, i) for i in range(1999)]
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as c:
        cols = ("dataset_id, external_id, fields, metadata, priority, submitted_count, leased_count, "
                "completed, extra_wanted, is_gold, created_at, updated_at")
        with c.cursor.copy(f"COPY annotation_record ({cols}) FROM STDIN") as copy:
            for i in range(n_records):
                fields = json.dumps({"prompt": f"Question {i}: how would you compute the mean of a list safely?",
                                     "response-1": texts[i % 1999], "response-2": texts[(i * 7 + 3) % 1999]})
                copy.write_row((ds.pk, f"r{i}", fields, '{"source": "bench"}', float(i % 5), 0, 0, False,
                                0, False, "now", "now"))
                if i and i % 200_000 == 0:
                    print(f"  {i:,} records written", flush=True)
    with connection.cursor() as c:
        c.execute("ANALYZE annotation_record")
    print(f"generated {n_records:,} records in {time.perf_counter() - started:.1f} s", flush=True)
    return ds


def state_reset(ds) -> None:
    from django.db import connection

    with connection.cursor() as c:
        c.execute("DELETE FROM annotation_response WHERE dataset_id = %s", [ds.pk])
        c.execute("DELETE FROM annotation_lease WHERE dataset_id = %s", [ds.pk])
        c.execute("UPDATE annotation_record SET submitted_count = 0, leased_count = 0, completed = is_gold "
                  "WHERE dataset_id = %s AND (submitted_count <> 0 OR leased_count <> 0 OR completed <> is_gold)",
                  [ds.pk])
        c.execute("VACUUM ANALYZE annotation_record")


GOLD_ANSWER = '{"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]}'


def gold_set(ds, *, share: float, rate: float) -> int:
    """Mark every round(1/share)-th record of the dataset gold (share 0: none) and set its gold_rate."""
    from django.db import connection

    from annotation.models import Dataset

    with connection.cursor() as c:
        c.execute("UPDATE annotation_record SET is_gold = false, gold_answer = NULL, completed = false "
                  "WHERE dataset_id = %s AND is_gold", [ds.pk])
        marked = 0
        if share > 0:
            c.execute("UPDATE annotation_record SET is_gold = true, gold_answer = %s::jsonb, completed = true "
                      "WHERE dataset_id = %s AND id %% %s = 0", [GOLD_ANSWER, ds.pk, max(1, round(1 / share))])
            marked = c.rowcount
    Dataset.objects.filter(pk=ds.pk).update(gold_rate=rate)
    ds.refresh_from_db()
    return marked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300, help="measured requests of each kind")
    parser.add_argument("--annotators", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--gold-share", type=float, default=0.0,
                        help="also measure with this share of the records gold (e.g. 0.01)")
    parser.add_argument("--gold-rate", type=float, default=0.05, help="the dataset's gold_rate in the gold run")
    args = parser.parse_args()

    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(64))
    url = database_url("preflab_bench_ui")
    print(f"database: {url}", flush=True)
    database_prepare(url)
    django_setup(url)

    from django.db import connection
    from django.test import Client

    from annotation.models import Record, Response
    from annotation.services import member_upsert

    ds = dataset_ensure(args.records, regenerate=args.regenerate)
    clients = []
    for i in range(args.annotators):
        membership, _, _ = member_upsert(workspace=ds.workspace, username=f"bench-ui-{i}", role="annotator")
        c = Client()
        c.force_login(membership.user)
        clients.append(c)
    annotate_url = f"/datasets/{ds.pk}/annotate/"
    current: dict[int, int] = {}
    form_re = re.compile(r'id="annotate-form"[^>]*data-record="(\d+)"', re.S)

    cpu: dict[str, list[float]] = {"get": [], "post": []}
    from django.core.signals import request_finished, request_started

    marks: dict[str, float] = {}

    def _started(**kwargs):
        marks["start"] = time.perf_counter()

    def _finished(**kwargs):
        marks["server"] = time.perf_counter() - marks.get("start", time.perf_counter())

    request_started.connect(_started, weak=False)
    request_finished.connect(_finished, weak=False)
    client_times: dict[str, list[float]] = {"get": [], "post": []}
    handed: list[int] = []

    def get(i: int) -> float:
        t, c0 = time.perf_counter(), time.process_time()
        r = clients[i].get(annotate_url)
        client_times["get"].append(time.perf_counter() - t)
        cpu["get"].append(time.process_time() - c0)
        assert r.status_code == 200, r.status_code
        current[i] = int(form_re.search(r.content.decode()).group(1))
        return marks["server"]

    def submit_next(i: int) -> float:
        record_id = current[i]
        order = ["response-2", "response-1"] if record_id % 2 else ["response-1", "response-2"]
        data = {"action": "submit", "duration": "7.5", f"rank__ranking__{order[0]}": "1",
                f"rank__ranking__{order[1]}": "2"}
        t, c0 = time.perf_counter(), time.process_time()
        r = clients[i].post(f"/datasets/{ds.pk}/records/{record_id}/respond/", data, HTTP_HX_REQUEST="true")
        client_times["post"].append(time.perf_counter() - t)
        cpu["post"].append(time.process_time() - c0)
        assert r.status_code == 200, (r.status_code, r.content[:300])
        current[i] = int(form_re.search(r.content.decode()).group(1))
        handed.append(current[i])
        return marks["server"]

    def count_queries(fn, i: int) -> int:
        seen = []
        with connection.execute_wrapper(lambda execute, sql, params, many, context: seen.append(sql)
                                        or execute(sql, params, many, context)):
            fn(i)
        return len(seen)

    n = len(clients)

    def measure(label: str) -> float:
        state_reset(ds)
        current.clear()
        handed.clear()
        for k in range(args.warmup):
            get(k % n)
            submit_next(k % n)
        page_times, submit_times = [], []
        for store in (cpu, client_times):
            store["get"].clear()
            store["post"].clear()
        handed.clear()
        for k in range(args.requests):
            page_times.append(get(k % n))
        for k in range(args.requests):
            submit_times.append(submit_next(k % n))
        cpu_get, cpu_post = list(cpu["get"]), list(cpu["post"])
        client_get = summarize([t * 1000 for t in client_times["get"]])
        client_post = summarize([t * 1000 for t in client_times["post"]])
        # statement counts: a counted pass of its own (a request that hands gold may differ)
        q_get = [count_queries(get, k % n) for k in range(min(args.requests, 40))]
        q_post = [count_queries(submit_next, k % n) for k in range(min(args.requests, 100))]
        gold_ids = set(Record.objects.filter(dataset=ds, is_gold=True, pk__in=handed).values_list("pk", flat=True))
        gold_handed = sum(pk in gold_ids for pk in handed)

        def span(counts: list[int]) -> str:
            return f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"

        stored = Response.objects.filter(dataset=ds, status="submitted").count()
        over = Record.objects.filter(dataset=ds, is_gold=False, submitted_count__gt=ds.min_submitted).count()
        print()
        print(f"[{label}]")
        print(f"dataset: {args.records:,} records, {n} annotators taking turns; Django test Client in-process "
              f"(server time, no network); PostgreSQL {connection.pg_version // 10000}")
        print(f"server time: annotate page     GET  n={len(page_times):4d}  {fmt_ms(summarize([t * 1000 for t in page_times]))}"
              f"   ({span(q_get)} SQL statements)")
        print(f"server time: submit + next     POST n={len(submit_times):4d}  {fmt_ms(summarize([t * 1000 for t in submit_times]))}"
              f"   ({span(q_post)} SQL statements incl. savepoints)")
        print(f"client-observed (adds the test client's work): GET p50 {client_get['p50']:.2f} / p95 "
              f"{client_get['p95']:.2f} ms, POST p50 {client_post['p50']:.2f} / p95 {client_post['p95']:.2f} ms")
        print(f"Django process CPU per request (excludes PostgreSQL and waiting): GET p50 "
              f"{summarize([t * 1000 for t in cpu_get])['p50']:.2f} ms, POST p50 {summarize([t * 1000 for t in cpu_post])['p50']:.2f} ms")
        print(f"machine load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"records handed by submit+next: {len(handed)}, of them gold: {gold_handed} "
              f"(gold_rate {ds.gold_rate:g})")
        print(f"responses stored: {stored:,}; ordinary records over-assigned: {over}")
        goal = max(summarize([t * 1000 for t in page_times])["p95"], summarize([t * 1000 for t in submit_times])["p95"])
        print(f"goal p95 < 30 ms: {'met' if goal < 30 else 'NOT met'} (worst p95 {goal:.1f} ms)")
        return goal

    gold_set(ds, share=0.0, rate=args.gold_rate)
    measure("without gold records")
    if args.gold_share > 0:
        marked = gold_set(ds, share=args.gold_share, rate=args.gold_rate)
        measure(f"with gold: {marked:,} records gold ({args.gold_share:.1%}), gold_rate {args.gold_rate:g}")
        gold_set(ds, share=0.0, rate=args.gold_rate)


if __name__ == "__main__":
    main()
