"""Benchmark: export N triplets over HTTP from a real server (gunicorn, 1 sync worker) on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/preflab_bench_io \
        .venv/bin/python bench/bench_export.py --records 1000000

The bench inserts N pairwise records (~300-character prompt, two ~1,500-character responses)
with one submitted response each, straight into PostgreSQL (COPY), unless the dataset already
holds N records (--fresh rebuilds it). It then GETs /api/v1/datasets/{id}/triplets/ and prints
triplets/s, time to first byte and the server's peak RSS.
Goals: >= 50,000 triplets/s, first byte < 100 ms, peak RSS < 300 MB.
"""
from __future__ import annotations

import argparse
import os
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


def populate(dataset, n: int, *, prompt_chars: int, response_chars: int) -> None:
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
                      "leased_count, completed, extra_wanted, is_gold, created_at, updated_at) FROM STDIN") as copy:
            for i in range(n):
                fields = dumps({"prompt": f"{i}: " + pool.get(i, prompt_chars),
                                "response-1": pool.get(i, response_chars, 1),
                                "response-2": pool.get(i, response_chars, 2)}).decode()
                copy.write_row((dataset.pk, f"r{i}", fields, '{"model-1": "m-a", "model-2": "m-b"}', 0.0, 1, 0,
                                True, 0, False, "now", "now"))
        cursor.execute(
            """INSERT INTO annotation_response (record_id, dataset_id, user_id, values, status, display_order,
                   duration, created_at, updated_at)
               SELECT id, dataset_id, %s, CASE WHEN id %% 3 = 0 THEN %s::jsonb ELSE %s::jsonb END, 'submitted',
                   '["response-1", "response-2"]'::jsonb, 10.0, now(), now()
               FROM annotation_record WHERE dataset_id = %s""", [user.pk, RANK_2, RANK_1, dataset.pk])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE annotation_record")
        cursor.execute("ANALYZE annotation_response")
    print(f"inserted {n:,} records and responses in {time.perf_counter() - t0:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--format", default="jsonl", choices=["jsonl", "csv", "parquet"])
    parser.add_argument("--style", default="standard", choices=["standard", "conversational"])
    parser.add_argument("--prompt-chars", type=int, default=300)
    parser.add_argument("--response-chars", type=int, default=1500)
    parser.add_argument("--fresh", action="store_true", help="rebuild the bench dataset even if it is there")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_DB)
    args = parser.parse_args()
    url = args.database_url
    if not url.startswith("postgres"):
        sys.exit("this bench measures PostgreSQL: set DATABASE_URL=postgres://...")
    import requests

    database_prepare(url)
    django_setup(url)
    dbname = urlparse(url).path.lstrip("/")
    from annotation.models import Dataset, Record
    from annotation.services import member_upsert

    name = f"bench-export-{args.records}"
    dataset = Dataset.objects.filter(workspace__name="bench-io", name=name).first()
    if args.fresh or dataset is None or Record.objects.filter(dataset=dataset).count() != args.records:
        dataset, token = bench_dataset(name)
        populate(dataset, args.records, prompt_chars=args.prompt_chars, response_chars=args.response_chars)
    else:
        _m, token, _ = member_upsert(workspace=dataset.workspace, username="bench-io-admin", role="admin")
    server = Server(url, args.port)
    try:
        server.reset_peak()
        idle_rss = server.peak_rss
        cpu0, client0, pg = server.cpu_seconds(), time.process_time(), PostgresCpu(dbname)
        t0 = time.perf_counter()
        resp = requests.get(f"{server.base}/api/v1/datasets/{dataset.pk}/triplets/",
                            params={"format": args.format, "style": args.style},
                            headers={"Authorization": f"Token {token}"}, stream=True, timeout=3600)
        if resp.status_code != 200:
            sys.exit(f"HTTP {resp.status_code}: {resp.text[:500]}")
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
        rows = lines - (1 if args.format == "csv" else 0)
        print(f"records:           {args.records:,} (one submitted response each)")
        print(f"format/style:      {args.format} / {args.style}   {size / 2**20:,.0f} MiB")
        if args.format == "parquet":
            print(f"elapsed:           {elapsed:.1f} s   ({args.records / elapsed:,.0f} records/s)")
        else:
            print(f"triplets:          {rows:,}")
            print(f"elapsed:           {elapsed:.1f} s")
            print(f"triplets/s:        {rows / elapsed:,.0f}   (goal >= 50,000)")
        print(f"first byte:        {first * 1000:.0f} ms   (goal < 100 ms)")
        print(f"server RSS:        idle {idle_rss / 2**20:.0f} MB, peak {server.peak_rss / 2**20:.0f} MB   (goal < 300 MB)")
        print_cpu(elapsed, args.records, server_cpu, pg_cpu, client_cpu)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
