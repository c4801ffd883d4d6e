"""Benchmark: marking gold in bulk on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/bench_gold_import.py \
        --records 100000 --gold 5000

1. a gold file of --gold lines ({"external_id", "answer"}, JSON lines) checked and stored all or
   nothing (quality.gold_files.gold_file_import, what POST /datasets/<id>/gold/ and import_gold run);
2. a records import of --records records in which one in 20 carries a gold_answer (records_import,
   the COPY path), against the same import without gold answers.
Prints lines/s and records/s. The bench database is goldadmin_bench (BENCH_DATABASE_URL overrides);
its dataset is made again on each run.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import database_prepare, database_url, django_setup

R1, R2 = "response-1", "response-2"


def record_line(i: int, gold: bool) -> bytes:
    row = {"external_id": f"r{i}", "fields": {"prompt": f"prompt {i} " * 20, R1: f"first answer {i} " * 60,
                                              R2: f"second answer {i} " * 60}}
    if gold:
        row["gold_answer"] = {"ranking": [R2, R1] if i % 2 else [R1, R2]}
    return orjson.dumps(row)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--gold", type=int, default=5_000)
    args = parser.parse_args()
    url = database_url("goldadmin_bench")
    database_prepare(url)
    django_setup(url)

    from annotation.imports import records_import
    from annotation.models import Dataset, Record, Workspace
    from annotation.quality.gold_files import gold_file_import, gold_file_read
    from annotation.services import dataset_create, pairwise_dataset_spec

    workspace, _ = Workspace.objects.get_or_create(name="goldadmin-bench")
    Dataset.objects.filter(workspace=workspace).delete()
    fields, questions = pairwise_dataset_spec(responses=2)
    plain = dataset_create(workspace=workspace, name="plain", fields=fields, questions=questions)
    mixed = dataset_create(workspace=workspace, name="mixed", fields=fields, questions=questions)

    for dataset, every in ((plain, 0), (mixed, 20)):
        body = b"\n".join(record_line(i, bool(every) and i % every == 0) for i in range(args.records))
        started = time.perf_counter()
        report = records_import(dataset=dataset, stream=io.BytesIO(body), fmt="ndjson", pipeline=True)
        took = time.perf_counter() - started
        print(f"records import, {'one in 20 gold' if every else 'no gold      '}: {report.created:,} records "
              f"({report.extra.get('gold', 0):,} gold) in {took:.2f} s = {report.created / took:,.0f} records/s",
              flush=True)

    Record.objects.filter(dataset=plain).update(is_gold=False, gold_answer=None)
    lines = b"\n".join(orjson.dumps({"external_id": f"r{i}", "answer": {"ranking": [R2, R1] if i % 2 else [R1, R2]}})
                       for i in range(0, args.records, max(1, args.records // args.gold)))
    n_lines = lines.count(b"\n") + 1
    started = time.perf_counter()
    n = gold_file_import(dataset=plain, items=gold_file_read(stream=io.BytesIO(lines), fmt="ndjson"))
    took = time.perf_counter() - started
    print(f"gold file: {n:,} of {n_lines:,} lines stored in {took:.2f} s = {n / took:,.0f} lines/s", flush=True)


if __name__ == "__main__":
    main()
