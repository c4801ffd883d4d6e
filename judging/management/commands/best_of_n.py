"""manage.py best_of_n DATASET_ID --out FILE.jsonl [--agent AGENT] [--min-score X] [--include-ties] [--min-n N]

SFT rows (prompt, completion, model, score, ...) of the best response of each record by judge
score — the same rows as GET /api/v1/datasets/{id}/best-of-n/ (judging.evaluation.bestofn).
"""
import os

import orjson
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.errors import validation_message
from annotation.models import Dataset
from judging.evaluation.bestofn import best_of_n_params, best_of_n_rows


class Command(BaseCommand):
    help = "Export best-of-n SFT rows (the judge's best response per prompt) as JSONL."

    def add_arguments(self, parser):
        parser.add_argument("dataset_id", type=int)
        parser.add_argument("--out", required=True)
        parser.add_argument("--agent", help="only this judge's suggestions (default: all judges, mean rank)")
        parser.add_argument("--min-score", type=float)
        parser.add_argument("--include-ties", action="store_true")
        parser.add_argument("--min-n", type=int, default=2)
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args, dataset_id, out, agent=None, min_score=None, include_ties=False, min_n=2, quiet=False,
               **options):
        dataset = Dataset.objects.filter(pk=dataset_id).first()
        if dataset is None:
            raise CommandError(f"no dataset with id {dataset_id}")
        try:
            params = best_of_n_params({"agent": agent, "min_score": min_score, "include_ties": include_ties,
                                       "min_n": min_n})
            rows = best_of_n_rows(dataset=dataset, **params)
            part = out + ".part"
            written = 0
            with open(part, "wb") as f, tqdm(unit="rows", file=self.stderr._out, disable=quiet) as bar:
                for row in rows:
                    f.write(orjson.dumps(row) + b"\n")
                    written += 1
                    bar.update(1)
            os.replace(part, out)
        except ValidationError as exc:
            if os.path.exists(out + ".part"):
                os.remove(out + ".part")
            raise CommandError(validation_message(exc)) from None
        self.stderr.write(f"wrote {written} rows to {out}")
