"""Benchmark: `manage.py import_pairs` of every public preference format, per file type, on PostgreSQL.

    .venv/bin/python bench/bench_import_formats.py 100000
    .venv/bin/python bench/bench_import_formats.py 1000000 --formats orca --filetypes parquet,ndjson

For each format (orca, ultrafeedback, clair, argilla, alpacafarm, trl multi-turn) and file type
(ndjson, parquet, and csv for the flat formats) it writes a file of N rows in the published
column schema (streamed to a temp dir, never held), then imports it with `manage.py import_pairs
--create` in a subprocess and prints rows/s and the peak RSS of that process (psutil, sampled
every 100 ms). The database is BENCH_DATABASE_URL, else DATABASE_URL's server with the database
`preflab_bench_formats` (created and migrated if missing); the bench datasets are dropped first.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, RssSampler, database_prepare, database_url, django_setup, mb

WORDS = ("the model answer reasons about data quality while a careful reviewer checks every claim against "
         "sources and notes where the reasoning breaks down").split()
FLAT = {"orca", "alpacafarm"}
ALL_FORMATS = ("orca", "ultrafeedback", "clair", "argilla", "alpacafarm", "trl-multiturn")


def text(i: int, n_words: int) -> str:
    return " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(n_words)) + f" #{i}"


def msgs(*turns):
    return [{"content": c, "role": r} for r, c in turns]


def row_of(fmt: str, i: int) -> dict:
    prompt, good, bad = text(i, 50), text(i + 1, 250), text(i + 2, 250)
    if fmt == "orca":
        return {"system": "You are a helpful assistant.", "question": prompt, "chosen": good, "rejected": bad}
    if fmt == "ultrafeedback":
        chosen = msgs(("user", prompt), ("assistant", good))
        return {"prompt": prompt, "prompt_id": f"{i:064x}", "chosen": chosen,
                "rejected": msgs(("user", prompt), ("assistant", bad)), "messages": chosen,
                "score_chosen": 8.0, "score_rejected": 4.0}
    if fmt == "clair":
        return {"prompt": prompt, "chosen": msgs(("user", prompt), ("assistant", good)),
                "rejected": msgs(("user", prompt), ("assistant", bad)), "rational": text(i, 40)}
    if fmt == "argilla":
        ranking = [{"rank": 1, "value": "response-1"}, {"rank": 2, "value": "response-2"}]
        return {"instruction": prompt, "response-1": good, "response-2": bad,
                "preference": [{"user_id": str(uuid.UUID(int=1 + i % 5)), "value": ranking, "status": "submitted"}],
                "preference-suggestion": ranking,
                "preference-suggestion-metadata": {"type": "model", "score": 0.8, "agent": "judge"},
                "external_id": f"a{i}", "metadata": json.dumps({"i": i})}
    if fmt == "alpacafarm":
        return {"instruction": prompt, "input": "", "output_1": good, "output_2": bad, "preference": 1 + i % 2}
    if fmt == "trl-multiturn":
        history = msgs(("system", "Be brief."), ("user", prompt), ("assistant", text(i, 30)), ("user", text(i, 20)))
        return {"prompt": history, "chosen": msgs(("assistant", good)), "rejected": msgs(("assistant", bad))}
    raise ValueError(fmt)


def file_write(directory: Path, fmt: str, filetype: str, n: int) -> Path:
    path = directory / f"{fmt}.{ {'ndjson': 'jsonl', 'csv': 'csv', 'parquet': 'parquet'}[filetype]}"
    if filetype == "ndjson":
        with open(path, "w") as f:
            for i in range(n):
                f.write(json.dumps(row_of(fmt, i)) + "\n")
    elif filetype == "csv":
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row_of(fmt, 0)))
            writer.writeheader()
            for i in range(n):
                writer.writerow(row_of(fmt, i))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        first = pa.Table.from_pylist([row_of(fmt, 0)])
        with pq.ParquetWriter(path, first.schema) as writer:
            for start in range(0, n, 10_000):
                rows = [row_of(fmt, i) for i in range(start, min(n, start + 10_000))]
                writer.write_table(pa.Table.from_pylist(rows, schema=first.schema))
    return path


def datasets_drop(prefix: str) -> None:
    from annotation.models import Dataset
    from annotation.services import dataset_delete

    for ds in Dataset.objects.filter(name__startswith=prefix):
        dataset_delete(dataset=ds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="?", type=int, default=100_000)
    parser.add_argument("--formats", default=",".join(ALL_FORMATS))
    parser.add_argument("--filetypes", default="ndjson,parquet,csv")
    args = parser.parse_args()
    url = database_url("preflab_bench_formats")
    database_prepare(url)
    django_setup(url)
    from annotation.models import Workspace

    ws, _ = Workspace.objects.get_or_create(name="bench-formats")
    datasets_drop("bench-")
    env = {**os.environ, "DATABASE_URL": url}
    print(f"{'format':<15} {'file':<8} {'rows':>9} {'file MB':>8} {'rows/s':>9} {'peak RSS':>9}  result")
    with tempfile.TemporaryDirectory(prefix="preflab-bench-formats-") as tmp:
        for fmt in args.formats.split(","):
            for filetype in args.filetypes.split(","):
                if filetype == "csv" and fmt not in FLAT:
                    continue
                path = file_write(Path(tmp), fmt, filetype, args.records)
                name = f"bench-{fmt}-{filetype}"
                command = [sys.executable, "manage.py", "import_pairs", "--workspace", ws.name, "--create", name,
                           str(path), "--quiet"]
                started = time.perf_counter()
                proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
                with RssSampler(proc.pid) as rss:
                    out, err = proc.communicate()
                elapsed = time.perf_counter() - started
                summary = next((line for line in out.splitlines() if "created" in line and "rejected" in line),
                               (err.strip().splitlines() or ["?"])[-1])
                print(f"{fmt:<15} {filetype:<8} {args.records:>9} {path.stat().st_size / 1e6:>8.1f} "
                      f"{args.records / elapsed:>9,.0f} {mb(rss.peak_tree):>9}  {summary}", flush=True)
                path.unlink()
                datasets_drop(name)


if __name__ == "__main__":
    main()
