"""manage.py import_gold --dataset DATASET_ID FILE [--format ndjson|json|csv]

Marks the records a gold file names as gold records with their known answers. The file holds one
{"external_id" | "record", "answer"} per line (JSON lines), a JSON array of them, or CSV with the
columns external_id (or record) and answer (the answer as JSON). All or nothing: every line is
checked first; any bad line is printed with its line number, field and reason, nothing is stored
and the exit status is 1. The same check and service as POST /api/v1/datasets/{id}/gold/.
"""
import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.errors import validation_message
from annotation.imports import ImportFormatError, format_from_name
from annotation.models import Dataset
from annotation.quality.gold_files import GoldLinesRejected, gold_file_import, gold_file_read

GOLD_FORMATS = ("ndjson", "json", "csv")


class Command(BaseCommand):
    help = "Mark records of a dataset as gold with their known answers, from a gold file (all or nothing)."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", type=int, required=True, dest="dataset_id")
        parser.add_argument("file")
        parser.add_argument("--format", choices=GOLD_FORMATS, help="default: from the file name (.jsonl, .json, .csv)")

    def handle(self, *args, dataset_id, file, format=None, **options):
        dataset = Dataset.objects.filter(pk=dataset_id).first()
        if dataset is None:
            raise CommandError(f"no dataset with id {dataset_id}")
        if not os.path.isfile(file):
            raise CommandError(f"{file}: no such file")
        fmt = format or format_from_name(file)
        if fmt not in GOLD_FORMATS:
            raise CommandError(f"{file}: cannot tell the format from the name; pass --format ndjson, json or csv")
        with open(file, "rb") as f:
            try:
                n = gold_file_import(dataset=dataset, items=gold_file_read(stream=f, fmt=fmt))
            except GoldLinesRejected as exc:
                for error in exc.errors:
                    self.stdout.write(str(error))
                raise CommandError(f"{file}: {exc.message}" + (f" ({exc.more} more problems not listed)" if exc.more else ""))
            except ImportFormatError as exc:
                raise CommandError(f"{file}: nothing stored: {exc}")
            except ValidationError as exc:
                raise CommandError(f"{file}: nothing stored: {validation_message(exc)}")
        self.stdout.write(self.style.SUCCESS(f"{n} records of “{dataset.name}” marked gold"))
