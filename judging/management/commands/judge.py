"""manage.py judge: run a judge over a dataset in this process, with a progress bar.

    python manage.py judge --dataset 3 --judge uf-gpt
    python manage.py judge --dataset 3 --endpoint vllm-8b --method ultrafeedback --aspect helpfulness
    python manage.py judge --dataset 3 --endpoint vllm-8b --method clair --target-dataset cleaned-clair

With --endpoint a judge is defined inline (created, or reused if one with that name exists: the
name defaults to "<method>-<aspect>-<endpoint>"). No worker is needed: chunks run here.
"""
from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.errors import validation_message
from annotation.jobs import job_run_inline
from annotation.management.job_outcome import job_command_end
from annotation.models import Dataset
from generation.models import Endpoint
from judging.models import Judge
from judging.services import judge_create, judge_job_create


class Command(BaseCommand):
    help = "Judge a dataset's records with an LLM judge (UltraFeedback ratings, pairwise, CLAIR) in this process."

    # The system checks import every URL, view and the API schema (~0.5 s of CPU at each start of a job
    # run here): they run where the project is deployed (migrate, runserver, `manage.py check`).
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="Dataset id (or name with --workspace)")
        parser.add_argument("--workspace", help="Workspace name, when --dataset is a name")
        parser.add_argument("--judge", help="Name of an existing judge of the dataset's workspace")
        parser.add_argument("--endpoint", help="Define a judge inline on this endpoint (name)")
        parser.add_argument("--method", choices=Judge.Method.values, default=Judge.Method.ULTRAFEEDBACK)
        parser.add_argument("--aspect", choices=Judge.Aspect.values, default=Judge.Aspect.OVERALL)
        parser.add_argument("--overall-mode", choices=Judge.OverallMode.values, default=Judge.OverallMode.RUBRIC)
        parser.add_argument("--name", help="Name of the inline judge")
        parser.add_argument("--params", help='JSON of generation parameters, e.g. \'{"temperature": 0}\'')
        parser.add_argument("--no-structured-output", action="store_true")
        parser.add_argument("--max-parse-retries", type=int, default=2)
        parser.add_argument("--records", help="Comma-separated record ids (default: all)")
        parser.add_argument("--target-dataset", help="CLAIR: target dataset name (created if needed)")
        parser.add_argument("--answer-field", help="CLAIR: field holding the answer to revise")
        parser.add_argument("--chunk-size", type=int)
        parser.add_argument("--processes", type=int, default=1,
                            help="share the chunks among this many processes (PostgreSQL), in chunks sized so each "
                                 "gets an even share; default 1: on 2 cores at 256 in flight a second process was "
                                 "measured no faster, since one process is not CPU-bound there")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        dataset = self._dataset(opts)
        try:
            judge = self._judge(dataset, opts)
            records = None
            if opts["records"]:
                try:
                    records = [int(x) for x in opts["records"].split(",") if x.strip()]
                except ValueError:
                    raise CommandError("--records: comma-separated integer ids")
            job = judge_job_create(workspace=dataset.workspace, dataset=dataset, judge=judge, records=records,
                                   target_dataset=opts["target_dataset"], answer_field=opts["answer_field"],
                                   chunk_size=opts["chunk_size"], processes=opts["processes"], start=False)
        except ValidationError as exc:
            raise CommandError(validation_message(exc))
        self.stdout.write(f"judge job {job.pk}: {judge.name} ({judge.method}, {judge.agent}) on {dataset.name}, "
                          f"{job.total} records")
        bar = on_chunk = None
        if not opts["no_progress"]:
            from tqdm import tqdm  # only with a bar: its import is ~20 ms of every start

            bar = tqdm(total=job.total, unit="rec", file=self.stderr._out)

            def on_chunk(index, status):
                job.refresh_from_db(fields=["done", "failed"])
                bar.n = job.done + job.failed
                bar.set_postfix(failed=job.failed)
                bar.refresh()

        try:
            job = job_run_inline(job=job, on_chunk=on_chunk, processes=opts["processes"])
        finally:
            if bar is not None:
                bar.close()
        if job.result:
            self.stdout.write(json.dumps(job.result, sort_keys=True))
        for err in job.errors.all()[:10]:
            self.stderr.write(f"  {err.item}: {err.error}")
        job_command_end(self, job)

    def _dataset(self, opts) -> Dataset:
        ref = opts["dataset"]
        qs = Dataset.objects.select_related("workspace")
        if ref.isdigit():
            dataset = qs.filter(pk=int(ref)).first()
        else:
            if not opts["workspace"]:
                raise CommandError("--dataset by name needs --workspace")
            dataset = qs.filter(name=ref, workspace__name=opts["workspace"]).first()
        if dataset is None:
            raise CommandError(f"no dataset {ref!r}")
        return dataset

    def _judge(self, dataset: Dataset, opts) -> Judge:
        ws = dataset.workspace
        if opts["judge"]:
            if opts["endpoint"]:
                raise CommandError("give --judge or --endpoint, not both")
            judge = Judge.objects.filter(workspace=ws, name=opts["judge"]).select_related("endpoint").first()
            if judge is None:
                names = ", ".join(Judge.objects.filter(workspace=ws).values_list("name", flat=True)) or "none"
                raise CommandError(f"no judge {opts['judge']!r} in workspace {ws.name!r} (judges: {names})")
            return judge
        if not opts["endpoint"]:
            raise CommandError("give --judge NAME, or --endpoint NAME to define a judge inline")
        endpoint = Endpoint.objects.filter(workspace=ws, name=opts["endpoint"]).first()
        if endpoint is None:
            raise CommandError(f"no endpoint {opts['endpoint']!r} in workspace {ws.name!r}")
        name = opts["name"] or f"{opts['method']}-{opts['aspect']}-{endpoint.name}"[:100]
        existing = Judge.objects.filter(workspace=ws, name=name).select_related("endpoint").first()
        if existing is not None:
            return existing
        params = {}
        if opts["params"]:
            try:
                params = json.loads(opts["params"])
            except ValueError as exc:
                raise CommandError(f"--params is not valid JSON: {exc}")
        return judge_create(workspace=ws, name=name, endpoint=endpoint, method=opts["method"], aspect=opts["aspect"],
                            overall_mode=opts["overall_mode"], params=params,
                            max_parse_retries=opts["max_parse_retries"],
                            use_structured_output=not opts["no_structured_output"])
