"""Benchmark: export N triplets over HTTP from a real server (granian as in the image, or --server gunicorn; 1 worker)
on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/preflab_bench_io \
        .venv/bin/python bench/bench_export.py --records 1000000

The bench inserts N pairwise records (~300-character prompt, two ~1,500-character responses)
with one submitted response each, straight into PostgreSQL (COPY), then vacuums them as autovacuum
would (hint bits and visibility map set, so every run reads the same pages the same way), unless the
dataset already holds N records (--fresh rebuilds it). It then GETs /api/v1/datasets/{id}/triplets/ in each --format
and prints triplets/s, time to first byte (of the export, and of a warm server), the server's peak RSS,
CPU per record of the web process and of PostgreSQL, and the load average (other work on the machine
slows every wall-clock figure; the CPU per record does not depend on it as much).
Goals: >= 60,000 triplets/s at 1M, no slower per row than at 100k, first byte < 100 ms (Parquet < 300 ms),
peak RSS < 300 MB.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from urllib.parse import urlparse

from bench_import import (
    DEFAULT_DB,
    PostgresCpu,
    Server,
    TextPool,
    bench_dataset,
    database_prepare,
    django_setup,
    print_cpu,
)

RANK_1 = '{"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]}'
RANK_2 = '{"ranking": [{"value": "response-2", "rank": 1}, {"value": "response-1", "rank": 2}]}'


def populate(dataset, n: int, *, prompt_chars: int, response_chars: int, gold_every: int = 0) -> None:
    import orjson
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    user, _ = get_user_model().objects.get_or_create(username="bench-io-annotator")
    pool = TextPool(seed=2)
    dumps = orjson.dumps
    t0 = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        # stored as preflab's import stores them (annotation.imports: lz4 TOAST compression)
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        if cursor.fetchone()[0]:
            cursor.execute("SET LOCAL default_toast_compression = 'lz4'")
        raw = cursor.cursor
        with raw.copy("COPY annotation_record (dataset_id, external_id, fields, metadata, priority, submitted_count, "
                      "leased_count, completed, created_at, updated_at, extra_wanted, is_gold) FROM STDIN") as copy:
            for i in range(n):
                fields = dumps({"prompt": f"{i}: " + pool.get(i, prompt_chars),
                                "response-1": pool.get(i, response_chars, 1),
                                "response-2": pool.get(i, response_chars, 2)}).decode()
                gold = bool(gold_every) and i % gold_every == gold_every - 1
                copy.write_row((dataset.pk, f"r{i}", fields, '{"model-1": "m-a", "model-2": "m-b"}', 0.0, 1, 0,
                                True, "now", "now", 0, gold))
        cursor.execute(
            """INSERT INTO annotation_response (record_id, dataset_id, user_id, values, status, display_order,
                   duration, created_at, updated_at)
               SELECT id, dataset_id, %s, CASE WHEN id %% 3 = 0 THEN %s::jsonb ELSE %s::jsonb END, 'submitted',
                   '["response-1", "response-2"]'::jsonb, 10.0, now(), now()
               FROM annotation_record WHERE dataset_id = %s""", [user.pk, RANK_2, RANK_1, dataset.pk])
    t1 = time.perf_counter()
    with connection.cursor() as cursor:
        # What autovacuum does to freshly loaded rows on a production server (this one may run without it):
        # sets their hint bits and the visibility map. Without it the first export after populating sets
        # them itself, dirtying nearly every page it reads (dirtied 23k, written 19k of 25k pages at 100k
        # records) and writing them back as they are evicted, which no later run does: a first run at 1M
        # against repeated runs at 100k compared a first read with repeated ones.
        cursor.execute("VACUUM (ANALYZE) annotation_record")
        cursor.execute("VACUUM (ANALYZE) annotation_response")
    print(f"inserted {n:,} records and responses in {t1 - t0:.0f} s, vacuumed in {time.perf_counter() - t1:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--format", default="jsonl", help="jsonl, csv, parquet or several: jsonl,csv,parquet")
    parser.add_argument("--first-byte-probes", type=int, default=2,
                        help="after each export, requests that read only the first byte (warm server)")
    parser.add_argument("--style", default="standard", choices=["standard", "conversational"])
    parser.add_argument("--prompt-chars", type=int, default=300)
    parser.add_argument("--response-chars", type=int, default=1500)
    parser.add_argument("--fresh", action="store_true", help="rebuild the bench dataset even if it is there")
    parser.add_argument("--gold-every", type=int, default=0,
                        help="make every Nth record gold (left out of the export: it gives fewer triplets than records)")
    parser.add_argument("--server", default="granian", choices=sorted(Server.KINDS),
                        help="the web server (default granian, as in the image; one worker)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_DB)
    args = parser.parse_args()
    url = args.database_url
    if not url.startswith("postgres"):
        sys.exit("this bench measures PostgreSQL: set DATABASE_URL=postgres://...")
    database_prepare(url)
    django_setup(url)
    dbname = urlparse(url).path.lstrip("/")
    from annotation.models import Dataset, Record
    from annotation.services import member_upsert

    name = f"bench-export-{args.records}" + (f"-gold{args.gold_every}" if args.gold_every else "")
    dataset = Dataset.objects.filter(workspace__name="bench-io", name=name).first()
    if args.fresh or dataset is None or Record.objects.filter(dataset=dataset).count() != args.records:
        dataset, token = bench_dataset(name)
        populate(dataset, args.records, prompt_chars=args.prompt_chars, response_chars=args.response_chars,
                 gold_every=args.gold_every)
    else:
        _m, token, _ = member_upsert(workspace=dataset.workspace, username="bench-io-admin", role="admin")
    server = Server(url, args.port, server=args.server)
    try:
        for fmt in args.format.split(","):
            _measure(server, dataset, token, dbname, fmt=fmt, style=args.style, records=args.records,
                     probes=args.first_byte_probes)
    finally:
        server.stop()


def _get(server, dataset, token, fmt: str, style: str):
    import requests

    resp = requests.get(f"{server.base}/api/v1/datasets/{dataset.pk}/triplets/", params={"format": fmt, "style": style},
                        headers={"Authorization": f"Token {token}"}, stream=True, timeout=3600)
    if resp.status_code != 200:
        sys.exit(f"HTTP {resp.status_code}: {resp.text[:500]}")
    return resp


def _idle(server) -> None:
    """Wait until the (one, sync) worker answers again: a probe that went away leaves it writing until
    it notices, and the next measurement must not wait for that."""
    import requests

    requests.get(server.base + "/api/v1/datasets/", timeout=120)


def _measure(server, dataset, token, dbname: str, *, fmt: str, style: str, records: int, probes: int) -> None:
    """One whole export in `fmt` (rate, first byte, RSS, CPU per record), then `probes` requests that only
    read the first bytes (the first byte of a warm server; the whole export's own first request may
    include a first import, e.g. pyarrow's for Parquet)."""
    server.reset_peak()
    idle_rss = server.peak_rss
    cpu0, client0, pg = server.cpu_seconds(), time.process_time(), PostgresCpu(dbname)
    t0 = time.perf_counter()
    resp = _get(server, dataset, token, fmt, style)
    first = None
    lines = 0
    size = 0
    for chunk in resp.iter_content(1 << 20):
        if first is None:
            first = time.perf_counter() - t0
        lines += chunk.count(b"\n")
        size += len(chunk)
    elapsed = time.perf_counter() - t0
    server_cpu, client_cpu = server.cpu_seconds() - cpu0, time.process_time() - client0
    pg_cpu = pg.stop()
    peak = server.peak_rss
    warm = []
    for _ in range(probes):
        t1 = time.perf_counter()
        with _get(server, dataset, token, fmt, style) as probe:
            next(probe.iter_content(1))
            warm.append(time.perf_counter() - t1)
        _idle(server)
    rows = lines - (1 if fmt == "csv" else 0)
    first_goal = 300 if fmt == "parquet" else 100
    print(f"records:           {records:,} (one submitted response each)")
    print(f"format/style:      {fmt} / {style}   {size / 2**20:,.0f} MiB")
    if fmt == "parquet":
        print(f"elapsed:           {elapsed:.1f} s   ({records / elapsed:,.0f} records/s; the goal for Parquet is its first byte)")
    else:
        print(f"triplets:          {rows:,}")
        print(f"elapsed:           {elapsed:.1f} s")
        print(f"triplets/s:        {rows / elapsed:,.0f}   (goal >= 60,000)")
    warm_text = f", warm server median {statistics.median(warm) * 1000:.0f} ms of {len(warm)}" if warm else ""
    print(f"first byte:        {first * 1000:.0f} ms{warm_text}   (goal < {first_goal} ms)")
    print(f"server RSS:        idle {idle_rss / 2**20:.0f} MB, peak {peak / 2**20:.0f} MB   (goal < 300 MB)")
    print_cpu(elapsed, records, server_cpu, pg_cpu, client_cpu)
    print(f"CPU per record:    {(server_cpu + sum(pg_cpu)) / max(records, 1) * 1e6:.1f} us web + database "
          f"(on two otherwise idle cores, about {2 / max((server_cpu + sum(pg_cpu) + client_cpu) / max(records, 1), 1e-9):,.0f}"
          f" records/s with this client; the web process alone caps it at {max(records, 1) / max(server_cpu, 1e-9):,.0f}/s)")
    print()


if __name__ == "__main__":
    main()
