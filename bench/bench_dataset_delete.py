"""Benchmark: deleting a dataset of N records (each with a submitted response and a judge's
suggestion) on PostgreSQL with annotation.services.dataset_delete, which deletes in SQL by dataset
id, children before parents, in one transaction.

    .venv/bin/python bench/bench_dataset_delete.py --records 100000,1000000

Database: BENCH_DATABASE_URL, else DATABASE_URL's server with the database `preflab_bench_delete`
(created if missing, migrated). Each size is filled with INSERT ... SELECT generate_series, then
deleted; prints the fill time, the delete time and the number of SQL statements the delete ran
(which does not depend on N). --mode batches times the background job's way instead
(services.dataset_records_delete, 20,000 records per transaction, then dataset_delete): the page
uses it above PREFLAB_DELETE_IN_REQUEST_MAX records.

Measured on the shared 2-core dev machine (PostgreSQL 16, one response and one suggestion per
record): 100,000 records in 7-9.5 s, 1,000,000 in 81 s, 25 statements whatever N; the ORM cascade
it replaces (Dataset.delete(), which loads every record) took 32 s for 100,000. The time is
PostgreSQL's per-row foreign-key checks on the tables that reference records.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database_prepare, database_url, django_setup


def fill(n: int):
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from annotation.models import Workspace
    from annotation.services import dataset_create, pairwise_dataset_spec, workspace_create

    Workspace.objects.filter(name="bench-delete").delete()
    ws = workspace_create(name="bench-delete")
    user, _ = get_user_model().objects.get_or_create(username="bench-delete-annotator")
    fields, questions = pairwise_dataset_spec(responses=2)
    ds = dataset_create(workspace=ws, name=f"delete-{n}", fields=fields, questions=questions)
    question = ds.questions.get(name="ranking")
    t0 = time.perf_counter()
    with transaction.atomic(), connection.cursor() as c:
        c.execute("""INSERT INTO annotation_record (dataset_id, external_id, fields, metadata, priority,
                         submitted_count, leased_count, completed, created_at, updated_at)
                     SELECT %s, 'r' || i, jsonb_build_object('prompt', 'prompt ' || i, 'response-1', 'a ' || i,
                            'response-2', 'b ' || i), '{}'::jsonb, 0, 1, 0, true, now(), now()
                     FROM generate_series(1, %s) AS i""", [ds.pk, n])
        c.execute("""INSERT INTO annotation_response (record_id, dataset_id, user_id, values, status,
                         display_order, duration, created_at, updated_at)
                     SELECT id, dataset_id, %s, '{"ranking": [{"value": "response-1", "rank": 1},
                            {"value": "response-2", "rank": 2}]}'::jsonb, 'submitted', '[]'::jsonb, 5, now(), now()
                     FROM annotation_record WHERE dataset_id = %s""", [user.pk, ds.pk])
        c.execute("""INSERT INTO annotation_suggestion (record_id, question_id, value, score, agent, rationale,
                         raw, created_at, updated_at)
                     SELECT id, %s, '[{"value": "response-2", "rank": 1}, {"value": "response-1", "rank": 2}]'::jsonb,
                            1, 'bench-judge', 'because', '{}'::jsonb, now(), now()
                     FROM annotation_record WHERE dataset_id = %s""", [question.pk, ds.pk])
    with connection.cursor() as c:
        c.execute("ANALYZE annotation_record; ANALYZE annotation_response; ANALYZE annotation_suggestion")
    return ds, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", default="100000,1000000", help="comma-separated sizes")
    parser.add_argument("--mode", default="transaction", choices=["transaction", "batches"])
    args = parser.parse_args()
    url = database_url("preflab_bench_delete")
    database_prepare(url)
    django_setup(url)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotation.models import Record, Response, Suggestion
    from annotation.services import dataset_delete, dataset_records_delete

    print(f"mode: {args.mode}")
    print(f"{'records':>10} {'fill s':>8} {'delete s':>9} {'statements':>11} {'records/s':>11}")
    for n in (int(x) for x in args.records.split(",")):
        ds, fill_s = fill(n)
        t0 = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            deleted = 0
            if args.mode == "batches":
                while n_batch := dataset_records_delete(dataset_id=ds.pk):
                    deleted += n_batch
            counts = dataset_delete(dataset=ds)
            counts["records"] += deleted
        took = time.perf_counter() - t0
        left = (Record.objects.filter(dataset_id=ds.pk).count() + Response.objects.filter(dataset_id=ds.pk).count()
                + Suggestion.objects.filter(record__dataset_id=ds.pk).count())
        assert counts["records"] == n and left == 0, (counts, left)
        print(f"{n:>10,} {fill_s:>8.1f} {took:>9.2f} {len(queries.captured_queries):>11} {n / took:>11,.0f}")


if __name__ == "__main__":
    main()
