"""manage.py import_records DATASET_ID FILE [--format json|ndjson|csv|parquet]

Streams the file into the dataset (upsert on external_id), with a progress bar; every rejected
line is printed with its line number and reason. A record's optional `gold_answer` (CSV/Parquet: a
column holding it as JSON) marks it gold with that known answer. Exit status 0 when records were stored (even with
rejected lines), 1 when the file could not be read or nothing was stored.
"""
import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.imports import FORMATS, ImportFormatError, format_from_name, pipeline_possible, records_import
from annotation.job_kinds import import_total
from annotation.models import Dataset


def print_rejected(stdout, rejected_lines) -> None:
    for line, reason, _raw in rejected_lines:
        stdout.write(f"line {line}: rejected: {reason}")


def run_file_import(command, *, path: str, total: int, run):
    """Run `run(on_progress)` with a tqdm bar; print rejected lines and a summary; returns the report."""
    bar = tqdm(total=total or None, unit="lines", file=command.stderr._out, disable=command.quiet,
               dynamic_ncols=True)

    def on_progress(stored, rejected, rejected_lines):
        bar.update(stored + rejected)
        if rejected_lines:
            bar.clear()
            print_rejected(command.stdout, rejected_lines)

    try:
        report = run(on_progress)
    except ImportFormatError as exc:
        raise CommandError(f"{path}: {exc}")
    except ValidationError as exc:
        raise CommandError(f"{path}: {'; '.join(exc.messages)}")
    finally:
        bar.close()
    command.stdout.write(command.style.SUCCESS(
        f"{report.created} created, {report.updated} updated, {report.rejected_count} rejected "
        f"of {report.total_lines} lines"))
    return report


class Command(BaseCommand):
    help = "Import records (JSON array, NDJSON, CSV or Parquet) into a dataset."

    def add_arguments(self, parser):
        parser.add_argument("dataset_id", type=int)
        parser.add_argument("file")
        parser.add_argument("--format", choices=FORMATS, help="default: from the file name")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def handle(self, *args, dataset_id, file, format=None, batch_size=None, quiet=False, **options):
        self.quiet = quiet
        dataset = Dataset.objects.filter(pk=dataset_id).first()
        if dataset is None:
            raise CommandError(f"no dataset with id {dataset_id}")
        if not os.path.isfile(file):
            raise CommandError(f"{file}: no such file")
        fmt = format or format_from_name(file)
        if fmt is None:
            raise CommandError(f"{file}: cannot tell the format from the name; pass --format")
        with open(file, "rb") as f:
            report = run_file_import(self, path=file, total=import_total(file, fmt),
                                     run=lambda cb: records_import(dataset=dataset, stream=f, fmt=fmt,
                                                                   batch_size=batch_size, on_progress=cb,
                                                                   pipeline=pipeline_possible()))
        if report.stored == 0:
            raise CommandError(f"{file}: {report.nothing_stored_message()}")
