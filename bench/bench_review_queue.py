"""Benchmark: the review queue (annotation.quality.review.review_queue) on a large dataset (PostgreSQL).

    .venv/bin/python bench/bench_review_queue.py                      # 100,000 records, 3 answers each
    .venv/bin/python bench/bench_review_queue.py --records 20000      # quick run

Database: BENCH_DATABASE_URL, else the local PostgreSQL with the database `review_bench_queue`
(created and migrated if missing). The dataset is written once and kept: N records with three
submitted rankings each (a fifth of them split 2-1), one judge suggestion per record, 1% gold.
Prints the time and the SQL statements of the first page, of a later page and of "the next record"
(what the review page looks up after each decision: cold, it reads the queue; cached, one query),
with the load average.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import database_prepare, database_url, django_setup  # noqa: E402

WORKSPACE = "bench-review"
R1, R2 = "response-1", "response-2"


def _ranking(first: str, second: str) -> list[dict]:
    return [{"value": first, "rank": 1}, {"value": second, "rank": 2}]


def dataset_ensure(n_records: int):
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotation.models import Dataset, Question, Record, Response, Suggestion, Workspace
    from annotation.services import dataset_create

    ws, _ = Workspace.objects.get_or_create(name=WORKSPACE)
    name = f"review-{n_records}"
    ds = Dataset.objects.filter(workspace=ws, name=name).first()
    if ds is not None and Record.objects.filter(dataset=ds).count() == n_records:
        return ds
    if ds is not None:
        ds.delete()
    ds = dataset_create(workspace=ws, name=name, min_submitted=3,
                        fields=[{"name": "prompt", "kind": "text"}, {"name": R1, "kind": "text"},
                                {"name": R2, "kind": "text"}],
                        questions=[{"name": "ranking", "kind": "ranking", "options": {"values": [R1, R2]}}])
    question = Question.objects.get(dataset=ds, name="ranking")
    users = [get_user_model().objects.get_or_create(username=f"bench-review-{i}")[0] for i in range(3)]
    rng = random.Random(7)
    batch = 5000
    for start in range(0, n_records, batch):
        records = Record.objects.bulk_create([
            Record(dataset=ds, external_id=f"r-{i}", fields={"prompt": f"p {i}", R1: "a", R2: "b"},
                   submitted_count=3, completed=True, is_gold=i % 100 == 0,
                   gold_answer={"ranking": _ranking(R1, R2)} if i % 100 == 0 else None)
            for i in range(start, min(start + batch, n_records))])
        responses, suggestions = [], []
        for rec in records:
            split = rng.random() < 0.2
            for k, user in enumerate(users):
                order = (R2, R1) if split and k == 2 else (R1, R2)
                responses.append(Response(record=rec, dataset=ds, user=user, values={"ranking": _ranking(*order)},
                                          status=Response.Status.SUBMITTED, duration=12.0))
            judge = (R2, R1) if rng.random() < 0.1 else (R1, R2)
            suggestions.append(Suggestion(record=rec, question=question, value=_ranking(*judge), agent="bench-judge"))
        Response.objects.bulk_create(responses)
        Suggestion.objects.bulk_create(suggestions)
        print(f"  wrote {start + len(records):,} records", flush=True)
    with connection.cursor() as cursor:  # as autovacuum would, before anyone reads it
        for table in ("annotation_record", "annotation_response", "annotation_suggestion"):
            cursor.execute(f"ANALYZE {table}")
    return ds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    url = database_url("review_bench_queue")
    database_prepare(url)
    django_setup(url)

    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotation.quality.review import review_queue, review_queue_next

    ds = dataset_ensure(args.records)
    runs = {"page 1 (50)": lambda: review_queue(ds, page=1, page_size=50),
            "page 20 (50)": lambda: review_queue(ds, page=20, page_size=50),
            "next, cold": lambda: (cache.clear(), review_queue_next(ds))[1],
            "next, cached": lambda: review_queue_next(ds)}
    print(f"review queue, {args.records:,} records x 3 answers, load {os.getloadavg()[0]:.2f}")
    for label, run in runs.items():
        times = []
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as ctx:
                t = time.perf_counter()
                result = run()
                times.append(time.perf_counter() - t)
        total = result.total if hasattr(result, "total") else "-"
        print(f"  {label:14s} best {min(times):.2f} s, worst {max(times):.2f} s, {len(ctx.captured_queries)} SQL "
              f"statements, queue {total}")
    print(f"load average after: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
