"""Speed and memory of the quality figures (prints figures; not a test).

    .venv/bin/python bench/bench_quality.py                          # 20,000 records, overlap 3
    .venv/bin/python bench/bench_quality.py --records 200000 --annotators 12 --overlap 3

A dataset of `--records` two-response records (a share `--gold` of them gold, every record with a
judge's suggestion), each answered by `--overlap` of `--annotators` annotators with random verdicts and
times, half the answers with the suggestion shown. Then, timed, with the process's peak RSS after each and the number of SQL statements:
1. dataset_quality: the dashboard's existing pass (for scale; --no-dashboard skips it);
2. dataset_quality_summary: the dashboard's quality card, computed (cache cleared);
3. dataset_quality_report without and with the competence model (the API's ?competence=false, the page);
4. dataset_quality_report_cached: the page and API as served, a first load (computes and stores) and the
   next (checks the inputs are unchanged and reads the cache), then the card after the page (from the cache).
Database: PostgreSQL (BENCH_DATABASE_URL, or DATABASE_URL's server with database
metrics_bench_quality) — created and migrated if needed; the dataset is rebuilt each run.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def build(args) -> int:
    from django.contrib.auth import get_user_model

    from annotation.models import Dataset, Field, Membership, Question, Record, Response, Suggestion, Workspace

    rng = random.Random(7)
    Workspace.objects.filter(name="bench-quality").delete()
    ws = Workspace.objects.create(name="bench-quality")
    ds = Dataset.objects.create(workspace=ws, name="quality", min_submitted=args.overlap, too_fast_seconds=4,
                                gold_pause_accuracy=0.6, suggestion_share=0.5, status=Dataset.Status.PUBLISHED)
    for i, name in enumerate(["prompt", "response-1", "response-2"]):
        Field.objects.create(dataset=ds, name=name, kind="text", position=i)
    question = Question.objects.create(dataset=ds, name="ranking", kind="ranking",
                                       options={"values": ["response-1", "response-2"]})
    User = get_user_model()
    users = []
    for i in range(args.annotators):
        user, _ = User.objects.get_or_create(username=f"bench-quality-{i}")
        Membership.objects.create(user=user, workspace=ws, is_simulated=(i == 0))
        users.append(user)
    first = [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}]
    second = [{"value": "response-2", "rank": 1}, {"value": "response-1", "rank": 2}]
    skill = [0.55 + 0.4 * rng.random() for _ in users]
    batch = 5000
    for start in range(0, args.records, batch):
        n = min(batch, args.records - start)
        gold_flags = [rng.random() < args.gold for _ in range(n)]
        records = Record.objects.bulk_create([
            Record(dataset=ds, external_id=f"r{start + i}", fields={"prompt": "p", "response-1": "a", "response-2": "b"},
                   is_gold=g, gold_answer={"ranking": first} if g else None, completed=g)
            for i, g in enumerate(gold_flags)])
        Suggestion.objects.bulk_create([Suggestion(record=r, question=question, value=first, agent="judge", score=0.9)
                                        for r in records])
        responses = []
        for record in records:
            for u in rng.sample(range(len(users)), args.overlap):
                right = rng.random() < skill[u]
                responses.append(Response(record=record, dataset=ds, user=users[u], status="submitted",
                                          values={"ranking": first if right else second},
                                          duration=rng.lognormvariate(2.3, 0.6), suggestion_shown=rng.random() < 0.5))
        Response.objects.bulk_create(responses)
    from django.db import connection

    with connection.cursor() as cursor:   # fresh statistics, as autovacuum would gather them (the plans depend on them)
        for model in (Record, Response, Suggestion):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    return ds.pk


def timed(label: str, fn):
    import resource

    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{label:<38} {seconds:8.2f} s   process peak RSS so far {peak:7.0f} MiB", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--gold", type=float, default=0.05)
    parser.add_argument("--reuse", action="store_true", help="time the dataset a previous run built, if there is one")
    parser.add_argument("--no-dashboard", action="store_true", help="skip timing dataset_quality (the dashboard's own pass)")
    args = parser.parse_args()

    from bench.common import database_prepare, database_url, django_setup

    url = database_url("metrics_bench_quality")
    database_prepare(url)
    django_setup(url)
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotation.agreement import dataset_quality
    from annotation.models import Dataset
    from annotation.quality.metrics import dataset_quality_report, dataset_quality_report_cached, dataset_quality_summary

    t0 = time.perf_counter()
    dataset = Dataset.objects.filter(workspace__name="bench-quality").first() if args.reuse else None
    if dataset is None:
        dataset = Dataset.objects.get(pk=build(args))
    args.records = dataset.records.count()
    import gc

    gc.collect()
    print(f"{args.records:,} records, {dataset.responses.count():,} answers "
          f"({dataset.responses.values('user_id').distinct().count()} annotators) ready in {time.perf_counter() - t0:.1f} s",
          flush=True)
    if not args.no_dashboard:
        timed("dataset_quality (dashboard, for scale)", lambda: dataset_quality(dataset))

    def counted(label, fn):
        with CaptureQueriesContext(connection) as queries:
            result = timed(label, fn)
        print(f"{'':<38} {len(queries.captured_queries)} statements", flush=True)
        return result

    cache.clear()
    summary = counted("dataset_quality_summary (card, computed)", lambda: dataset_quality_summary(dataset=dataset))
    counted("report without competence", lambda: dataset_quality_report(dataset=dataset, competence=False))
    report = counted("report with competence (page, API)", lambda: dataset_quality_report(dataset=dataset))
    cache.clear()
    counted("cached report, first load (computes)", lambda: dataset_quality_report_cached(dataset=dataset))
    counted("cached report, next load", lambda: dataset_quality_report_cached(dataset=dataset))
    counted("summary card after the page (cached)", lambda: dataset_quality_summary(dataset=dataset))
    a = report.anchoring
    print(f"too fast {len(summary.too_fast)}, below gold {len(summary.below_gold)} of {summary.annotators}; "
          f"agreement with the judge shown {a.shown.judge.value:.3f} (n={a.shown.judge.n:,}) "
          f"hidden {a.hidden.judge.value:.3f} (n={a.hidden.judge.n:,})")
    best = max(report.annotators, key=lambda r: r.gold.accuracy or 0)
    print(f"best gold accuracy {best.username}: {best.gold.correct}/{best.gold.answered}, "
          f"competence {best.competence}, agreement {best.agreement.value:.3f} over {best.agreement.n:,}")

if __name__ == "__main__":
    main()
