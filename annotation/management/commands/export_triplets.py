"""manage.py export_triplets DATASET_ID --format jsonl|csv|parquet --out FILE [options]

The same exports as the API, written to a file with a progress bar: --kind triplets (default, GET
/api/v1/datasets/{id}/triplets/), unpaired (TRL's prompt/completion/label rows for KTO, .../unpaired/)
or responses (every annotator response, .../responses-export/). The file is written under a
temporary name and renamed when complete.
"""
import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.errors import validation_message
from annotation.exports import (
    EXPORT_KINDS,
    FORMATS,
    MARGIN_FROM,
    PAIRS,
    RESOLVE,
    RESPONSE_STATUSES,
    REVIEWS,
    SOURCES,
    STYLES,
    TRL_MARGIN,
    export_count,
    export_kind_parse,
    export_rows,
    export_write,
)
from annotation.models import Dataset


class Command(BaseCommand):
    help = "Export preference triplets (prompt, chosen, rejected), unpaired KTO rows or raw responses of a dataset."

    def add_arguments(self, parser):
        parser.add_argument("dataset_id", type=int)
        parser.add_argument("--kind", choices=EXPORT_KINDS, default="triplets")
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
                            help="strength: min_margin reads a graded preference's strength")
        parser.add_argument("--include-both-bad", action="store_true")
        parser.add_argument("--trl-margin", choices=TRL_MARGIN,
                            help="write TRL's `margin` column (RewardTrainer's loss reads it) from this one")
        parser.add_argument("--status", choices=RESPONSE_STATUSES, help="--kind responses: only these")
        parser.add_argument("--include-gold", action="store_true", help="also the gold records (left out by default)")
        parser.add_argument("--include-excluded", action="store_true",
                            help="also the answers of annotators excluded on the dataset (left out by default)")
        parser.add_argument("--reviews", choices=REVIEWS, default="use",
                            help="use: a reviewed verdict replaces the record's votes; ignore: the votes")
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args, dataset_id, out, kind="triplets", format=None, quiet=False, **o):
        dataset = Dataset.objects.filter(pk=dataset_id).first()
        if dataset is None:
            raise CommandError(f"no dataset with id {dataset_id}")
        fmt = format or next((f for f in FORMATS if out.lower().endswith("." + f)), "jsonl")
        if kind == "responses":
            given = {"format": fmt, "status": o.get("status"), "include_gold": o["include_gold"],
                     "include_excluded": o["include_excluded"]}
        else:
            given = {"format": fmt, "question": o.get("question"), "pairs": o["pairs"], "resolve": o["resolve"],
                     "source": o["source"], "include_ties": o["include_ties"], "style": o["style"],
                     "min_margin": o.get("min_margin"), "margin_from": o["margin_from"],
                     "include_both_bad": o["include_both_bad"], "trl_margin": o.get("trl_margin"),
                     "include_gold": o["include_gold"], "include_excluded": o["include_excluded"],
                     "reviews": o["reviews"]}
        try:
            params = export_kind_parse(kind, given)
            params.pop("format")
            bar = tqdm(total=export_count(kind, dataset, params), unit="responses" if kind == "responses" else "records",
                       file=self.stderr._out, disable=quiet, dynamic_ncols=True)
            rows = export_rows(kind, dataset=dataset, params=params, on_progress=bar.update)
        except ValidationError as exc:
            raise CommandError(validation_message(exc))
        part = out + ".part"
        try:
            with open(part, "wb") as f:
                count = export_write(kind, rows, f, fmt=fmt, params=params)
            os.replace(part, out)
        finally:
            bar.close()
            if os.path.exists(part):
                os.unlink(part)
        self.stdout.write(self.style.SUCCESS(f"{count} {'rows' if kind != 'triplets' else 'triplets'} written to {out}"))
