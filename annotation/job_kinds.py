"""Job handlers of the annotation app (import, export) — registered in AnnotationConfig.ready.

Both run as one chunk (a file is read, or written, front to back) through the one job mechanism
(annotation.jobs): progress goes to the job's counters, rejected lines to JobError rows,
cancellation is checked between batches, and a re-run of the chunk gives the same result
(imports upsert on external_id; exports rewrite their file and rename it into place).
"""
from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from .exports import (
    EXTENSIONS,
    export_count,
    export_kind_file_name,
    export_kind_parse,
    export_rows,
    export_target,
    export_write,
)
from .imports import (
    FORMATS,
    MAX_REJECTED_KEPT,
    ImportFormatError,
    PairSource,
    format_from_name,
    mapping_parse,
    pairs_import,
    pipeline_possible,
    records_import,
)
from .jobs import ChunkContext, JobFailed, job_handler_register
from .models import Dataset, Job, JobChunk, Record
from .services import dataset_delete, dataset_records_delete

RAW_IN_ERROR = 2_000


def count_lines(path: str) -> int:
    """Newlines in a file (fast binary scan): the job total of an NDJSON/CSV import."""
    n = 0
    last = b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (0 if last == b"\n" else 1)


def _pair_file_type(path: str) -> str | None:
    """A pair file's type when its name says CSV or Parquet; JSON and JSON lines are sniffed."""
    fmt = format_from_name(path)
    return fmt if fmt in ("csv", "parquet") else None


def import_total(path: str, fmt: str) -> int:
    if fmt == "ndjson":
        return count_lines(path)
    if fmt == "csv":
        return max(0, count_lines(path) - 1)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception:  # noqa: BLE001 - the run reports the unreadable file
            return 0
    return 0  # a JSON array: unknown until read


class ImportJobHandler:
    """kind "import": import a file saved on disk into the job's dataset.

    job_create(kind="import", workspace=ws, dataset=ds, created_by=user,
               input_file=imports.import_file_save(dataset=ds, uploaded_file=f),
               params={"format": "ndjson" | "json" | "csv" | "parquet" | "pairs",
                       "seed": <str|int, pairs only>, "pair_format": <imports.PAIR_FORMAT_NAMES, pairs only>,
                       "mapping": {target: column}, "strict": bool})
    `format` may be left out when the file name ends in .jsonl/.ndjson/.json/.csv/.parquet.
    "pairs" imports a preference set in any public format (see imports.pairs_import); a file of
    which no line is stored fails the job with "nothing stored".
    Progress: job.done = stored lines, job.failed = rejected lines (each a JobError whose item is
    the line number, error the reason, raw the line, truncated); job.result holds the counts.
    """

    kind = "import"
    items_word = "lines"
    done_word = "imported"
    failed_word = "rejected"
    item_label = "Line"

    def _format(self, job: Job) -> str:
        fmt = (job.params or {}).get("format") or format_from_name(job.input_file) or ""
        if fmt not in FORMATS + ("pairs",):
            raise ValidationError({"format": f"must be one of {', '.join(FORMATS + ('pairs',))}"})
        return fmt

    def plan(self, job: Job, plan_input: object = None) -> list[dict]:
        if job.dataset_id is None:
            raise ValidationError({"dataset": "an import job needs a dataset"})
        if not job.input_file or not os.path.isfile(job.input_file):
            raise ValidationError({"input_file": "no such file"})
        fmt = self._format(job)
        job.total = import_total(job.input_file, _pair_file_type(job.input_file) or "ndjson" if fmt == "pairs" else fmt)
        return [{"format": fmt}]

    def run_chunk(self, job: Job, chunk: JobChunk, ctx: ChunkContext) -> None:
        fmt = chunk.spec.get("format") or self._format(job)
        errors_kept = 0

        def on_progress(stored: int, rejected: int, rejected_lines: list) -> None:
            nonlocal errors_kept
            for line, reason, raw in rejected_lines:
                if errors_kept < MAX_REJECTED_KEPT:
                    ctx.error(item=str(line), error=reason, raw=raw[:RAW_IN_ERROR])
                    errors_kept += 1
            ctx.progress(done=stored, failed=rejected)
            ctx.check_cancelled()

        dataset = job.dataset
        try:
            with open(job.input_file, "rb") as f:
                if fmt == "pairs":
                    params = job.params or {}
                    source = PairSource(f, filetype=_pair_file_type(job.input_file), fmt=params.get("pair_format") or None,
                                        mapping=mapping_parse(params.get("mapping") or {}),
                                        strict=bool(params.get("strict")))
                    report = pairs_import(dataset=dataset, source=source, seed=params.get("seed", 0),
                                          on_progress=on_progress, pipeline=pipeline_possible())
                else:
                    report = records_import(dataset=dataset, stream=f, fmt=fmt, on_progress=on_progress,
                                            pipeline=pipeline_possible())
        except (ImportFormatError, ValidationError) as exc:
            message = str(exc) if isinstance(exc, ImportFormatError) else "; ".join(exc.messages)
            ctx.error(item="file", error=message)
            Job.objects.filter(pk=job.pk).update(result={"error": message})
            raise JobFailed(f"the file cannot be read: {message}") from exc
        result = {k: v for k, v in report.as_dict().items() if k != "rejected"}
        if report.rejected_count > errors_kept:
            result["note"] = (f"the first {errors_kept} rejected lines are listed as job errors; "
                              f"{report.rejected_count} lines were rejected in all")
        if report.stored == 0:
            result["error"] = report.nothing_stored_message()
        Job.objects.filter(pk=job.pk).update(result=result)
        if report.stored == 0:
            raise JobFailed(report.nothing_stored_message())

    def finish(self, job: Job) -> None:
        return None


def _export_job_params(job: Job) -> tuple[str, dict]:
    """The export kind (params["export"]: triplets, unpaired or responses) and its checked options."""
    params = dict(job.params or {})
    kind = params.pop("export", None) or "triplets"
    return kind, export_kind_parse(kind, params)


class ExportJobHandler:
    """kind "export": write the dataset's export to MEDIA_ROOT/exports/<job id>.<ext>.

    job_create(kind="export", workspace=ws, dataset=ds, created_by=user,
               params={"export": "triplets" | "unpaired" | "responses",
                       "format": "jsonl" | "csv" | "parquet", "question": None, "pairs": "best_worst",
                       "resolve": "majority", "source": "human", "include_ties": False,
                       "style": "standard", "min_margin": None, "trl_margin": None,
                       "include_gold": False, "include_excluded": False, "reviews": "use"})
    (every key optional; the same options as GET /datasets/{id}/triplets/, /unpaired/ or, for
    responses, format, status, include_gold and include_excluded as /responses-export/). job.total = records (responses for the raw
    export), job.done = walked; when done job.output_file is the file's path and job.result
    {"rows", "format", "file", "export"}.
    """

    kind = "export"
    items_word = "records"
    done_word = "exported"

    def plan(self, job: Job, plan_input: object = None) -> list[dict]:
        if job.dataset_id is None:
            raise ValidationError({"dataset": "an export job needs a dataset"})
        kind, params = _export_job_params(job)
        if kind != "responses":
            export_target(job.dataset, params["question"])  # a bad question fails now, not in the worker
        job.params = {"export": kind, **params}
        job.total = export_count(kind, job.dataset, params)
        return [{}]

    def run_chunk(self, job: Job, chunk: JobChunk, ctx: ChunkContext) -> None:
        kind, params = _export_job_params(job)
        fmt = params.pop("format")
        directory = Path(settings.MEDIA_ROOT) / "exports"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{job.pk}.{EXTENSIONS[fmt]}"
        part = path.with_suffix(path.suffix + ".part")

        def on_progress(n: int) -> None:
            ctx.progress(done=n)
            ctx.check_cancelled()

        rows = export_rows(kind, dataset=job.dataset, params=params, on_progress=on_progress)
        try:
            with open(part, "wb") as out:
                count = export_write(kind, rows, out, fmt=fmt, params=params)
            os.replace(part, path)
        finally:
            if part.exists():
                part.unlink()
        Job.objects.filter(pk=job.pk).update(
            output_file=str(path), total=export_count(kind, job.dataset, params),
            result={"rows": count, "format": fmt, "file": path.name, "export": kind})

    def finish(self, job: Job) -> None:
        return None

    def download_name(self, job: Job) -> str:
        """Dataset, export, style, source and the day the file was written, like the API's direct download."""
        params = dict(job.params or {})  # as plan() stored them, checked; read leniently, a name must never fail
        kind = params.pop("export", None) or "triplets"
        fmt = Path(job.output_file).suffix.lstrip(".") or "jsonl"
        made = job.finished_at or job.updated_at or timezone.now()
        return export_kind_file_name(kind if kind in ("triplets", "unpaired", "responses") else "triplets", job.dataset,
                                     fmt=fmt if fmt in EXTENSIONS else "jsonl", params=params,
                                     day=timezone.localdate(made))


class DatasetDeleteJobHandler:
    """kind "dataset_delete": delete a large dataset in batches of records (each its own transaction,
    in SQL: services.dataset_records_delete), then the dataset itself.

    job_create(kind="dataset_delete", workspace=ws, dataset=None, created_by=user,
               params={"dataset": <id>, "name": <its name>})
    The job is not attached to the dataset (it would go with it). job.total = records at the start,
    job.done = records deleted. A re-run deletes what is left; there is nothing to cancel halfway
    back to (the dataset is archived before the job starts, so nobody annotates it meanwhile).
    """

    kind = "dataset_delete"
    items_word = "records"
    done_word = "deleted"
    status_words = {Job.Status.SUCCEEDED: "deleted"}

    def plan(self, job: Job, plan_input: object = None) -> list[dict]:
        dataset_id = (job.params or {}).get("dataset")
        if not Dataset.objects.filter(pk=dataset_id, workspace_id=job.workspace_id).exists():
            raise ValidationError({"dataset": "no such dataset in this workspace"})
        job.total = Record.objects.filter(dataset_id=dataset_id).count()
        return [{}]

    def run_chunk(self, job: Job, chunk: JobChunk, ctx: ChunkContext) -> None:
        dataset_id = job.params["dataset"]
        while n := dataset_records_delete(dataset_id=dataset_id):
            ctx.progress(done=n)
        dataset = Dataset.objects.filter(pk=dataset_id).first()
        if dataset is not None:
            dataset_delete(dataset=dataset)
        Job.objects.filter(pk=job.pk).update(result={"deleted": job.params.get("name", "")})

    def finish(self, job: Job) -> None:
        return None


job_handler_register(ImportJobHandler())
job_handler_register(DatasetDeleteJobHandler())
job_handler_register(ExportJobHandler())
