"""manage.py export_triplets DATASET_ID --format jsonl|csv|parquet --out FILE [options]

The same export as GET /api/v1/datasets/{id}/triplets/, written to a file with a progress bar
(records walked). The file is written under a temporary name and renamed when complete.
"""
import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.errors import validation_message
from annotation.exports import (
    FORMATS,
    MARGIN_FROM,
    PAIRS,
    RESOLVE,
    SOURCES,
    STYLES,
    export_params_parse,
    triplets_export,
    triplets_export_count,
    triplets_write,
)
from annotation.models import Dataset


class Command(BaseCommand):
    help = "Export preference triplets (prompt, chosen, rejected) of a dataset."

    def add_arguments(self, parser):
        parser.add_argument("dataset_id", type=int)
        parser.add_argument("--format", choices=FORMATS, default=None, help="default: from --out, else jsonl")
        parser.add_argument("--out", required=True)
        parser.add_argument("--question")
        parser.add_argument("--pairs", choices=PAIRS, default="best_worst")
        parser.add_argument("--resolve", choices=RESOLVE, default="majority")
        parser.add_argument("--source", choices=SOURCES, default="human")
        parser.add_argument("--include-ties", action="store_true")
        parser.add_argument("--style", choices=STYLES, default="standard")
        parser.add_argument("--min-margin", type=float)
        parser.add_argument("--margin-from", choices=MARGIN_FROM, default="votes",
                            help="strength: a graded preference's strength as the margin column")
        parser.add_argument("--include-both-bad", action="store_true")
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args, dataset_id, out, format=None, quiet=False, **o):
        dataset = Dataset.objects.filter(pk=dataset_id).first()
        if dataset is None:
            raise CommandError(f"no dataset with id {dataset_id}")
        fmt = format or next((f for f in FORMATS if out.lower().endswith("." + f)), "jsonl")
        try:
            params = export_params_parse({"format": fmt, "question": o.get("question"), "pairs": o["pairs"],
                                          "resolve": o["resolve"], "source": o["source"],
                                          "include_ties": o["include_ties"], "style": o["style"],
                                          "min_margin": o.get("min_margin"), "margin_from": o["margin_from"],
                                          "include_both_bad": o["include_both_bad"]})
            params.pop("format")
            bar = tqdm(total=triplets_export_count(dataset), unit="records", file=self.stderr._out,
                       disable=quiet, dynamic_ncols=True)
            rows = triplets_export(dataset=dataset, on_progress=bar.update, **params)
        except ValidationError as exc:
            raise CommandError(validation_message(exc))
        part = out + ".part"
        try:
            with open(part, "wb") as f:
                count = triplets_write(rows, f, fmt=fmt, style=params["style"], source=params["source"])
            os.replace(part, out)
        finally:
            bar.close()
            if os.path.exists(part):
                os.unlink(part)
        self.stdout.write(self.style.SUCCESS(f"{count} triplets written to {out}"))
