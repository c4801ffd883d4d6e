"""manage.py generate --endpoint NAME [--endpoint NAME ...] --prompts FILE --dataset ID|--new-dataset NAME

Runs a generation job IN THIS PROCESS with a progress bar (no worker needed), or with --background
hands its chunks to the Celery workers and returns. Ctrl-C cancels the job; --resume JOB_ID goes on
(and retries failed responses).

  manage.py generate --workspace demo --endpoint qwen --endpoint llama --prompts prompts.jsonl \
      --new-dataset ultra-pairs --n 2 --strategy sample --seed 1
  manage.py generate --endpoint qwen --prompts p.csv --column question --dataset 3 \
      --strategy samples --n 3 --temperatures 0.3,0.8,1.1
"""
from __future__ import annotations

import threading

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tqdm import tqdm

from annotation.errors import validation_message
from annotation.jobs import job_cancel, job_run_inline
from annotation.management.job_outcome import job_command_end
from annotation.models import Dataset, Job
from generation.services import (
    PROMPT_FORMATS,
    STRATEGIES,
    generation_job_create,
    generation_job_resume,
)

from ._common import params_arg, workspace_arg


class Command(BaseCommand):
    help = "Generate responses for prompts with a pool of LLM endpoints into a dataset."

    # The system checks import every URL, view and the API schema (~0.5 s of CPU at each start of a job
    # run here): they run where the project is deployed (migrate, runserver, `manage.py check`).
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--workspace", help="workspace name or id (optional when there is only one)")
        parser.add_argument("--endpoint", action="append", default=[], help="endpoint name (repeat for a pool)")
        parser.add_argument("--prompts", help="JSONL, CSV or Parquet file of prompts")
        parser.add_argument("--prompts-dataset", type=int, help="take the prompts of this dataset's records")
        parser.add_argument("--format", choices=PROMPT_FORMATS)
        parser.add_argument("--column", default="prompt")
        parser.add_argument("--id-column")
        parser.add_argument("--dataset", help="target dataset id or name")
        parser.add_argument("--new-dataset", help="create the target dataset with this name")
        parser.add_argument("--n", type=int, help="responses per prompt (default 2; 'each': the pool size)")
        parser.add_argument("--strategy", choices=STRATEGIES, default="sample")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--temperatures", help="comma-separated, one per response (strategy samples)")
        parser.add_argument("--override", action="append", metavar="ENDPOINT:KEY=VALUE",
                            help="per-endpoint parameter, e.g. --override qwen:temperature=0.2")
        parser.add_argument("--chunk-size", type=int)
        parser.add_argument("--background", action="store_true", help="enqueue to the Celery workers and return")
        parser.add_argument("--resume", type=int, metavar="JOB_ID", help="resume a cancelled job or retry failures")
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args, **o):
        try:
            if o.get("resume"):
                job = Job.objects.filter(pk=o["resume"], kind="generation").first()
                if job is None:
                    raise CommandError(f"no generation job {o['resume']}")
                job = generation_job_resume(job=job)
            else:
                job = self._create(o)
        except ValidationError as exc:
            raise CommandError(validation_message(exc))
        if o["background"]:
            from annotation.jobs import job_enqueue

            sent = job_enqueue(job=job)
            self.stdout.write(self.style.SUCCESS(f"generation job {job.pk}: {sent} chunks sent to queue {job.queue}"))
            return
        self._run(job, quiet=o["quiet"])

    def _create(self, o) -> Job:
        workspace = None
        target = None
        if o.get("dataset"):
            value = o["dataset"]
            qs = Dataset.objects.all()
            if o.get("workspace"):
                workspace = workspace_arg(o["workspace"])
                qs = qs.filter(workspace=workspace)
            target = qs.filter(pk=int(value)).first() if str(value).isdigit() else None
            target = target or qs.filter(name=value).first()
            if target is None:
                raise CommandError(f"no dataset {value!r}")
            workspace = target.workspace
        elif o.get("new_dataset"):
            workspace = workspace_arg(o.get("workspace"))
        else:
            raise CommandError("give --dataset (id or name) or --new-dataset NAME")
        if not o["endpoint"]:
            raise CommandError("give at least one --endpoint")
        if bool(o.get("prompts")) == bool(o.get("prompts_dataset")):
            raise CommandError("give --prompts FILE or --prompts-dataset ID")
        if o.get("prompts"):
            source = {"file": o["prompts"], "format": o.get("format"), "column": o["column"],
                      "id_column": o.get("id_column")}
        else:
            source = {"dataset": o["prompts_dataset"]}
        temperatures = None
        if o.get("temperatures"):
            try:
                temperatures = [float(t) for t in o["temperatures"].split(",")]
            except ValueError:
                raise CommandError("--temperatures: comma-separated numbers, e.g. 0.3,0.9")
        overrides: dict = {}
        for item in o.get("override") or []:
            if ":" not in item:
                raise CommandError(f"--override {item!r}: expected ENDPOINT:KEY=VALUE")
            name, kv = item.split(":", 1)
            overrides.setdefault(name, {}).update(params_arg([kv], "--override"))
        return generation_job_create(
            workspace=workspace, dataset=target, dataset_name=o.get("new_dataset"), endpoints=o["endpoint"],
            prompts_source=source, n=o.get("n"), strategy=o["strategy"], seed=o["seed"], temperatures=temperatures,
            overrides=overrides, chunk_size=o.get("chunk_size"), start=False)

    def _run(self, job: Job, *, quiet: bool) -> None:
        self.stdout.write(f"generation job {job.pk}: {job.params.get('prompt_count')} prompts × {job.params['n']} "
                          f"into dataset {job.dataset.name!r} (id {job.dataset_id})")
        bar = tqdm(total=job.total, initial=job.done + job.failed, unit="resp", file=self.stderr._out,
                   disable=quiet, dynamic_ncols=True)
        stop = threading.Event()

        def poll():
            try:
                while not stop.wait(0.5):
                    row = Job.objects.filter(pk=job.pk).values("done", "failed", "tokens").first() or {}
                    bar.n = row.get("done", 0) + row.get("failed", 0)
                    bar.set_postfix(failed=row.get("failed", 0), tokens=row.get("tokens", 0), refresh=False)
                    bar.refresh()
            finally:
                connection.close()

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            job = job_run_inline(job=job)
        except KeyboardInterrupt:
            job.refresh_from_db()
            if job.is_active:
                job_cancel(job=job)
            raise CommandError(f"cancelled; resume with: manage.py generate --resume {job.pk}")
        finally:
            stop.set()
            poller.join()
            bar.n = job.done + job.failed
            bar.close()
        if job.status in Job.FINISHED and job.result:
            r = job.result
            self.stdout.write(f"{r.get('records', 0)} records written, {job.tokens} tokens in {r.get('seconds')} s "
                              f"({r.get('responses_per_second')} responses/s)")
        job_command_end(self, job, again=f"manage.py generate --resume {job.pk}")
