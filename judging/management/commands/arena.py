"""manage.py arena (--dataset ID [--source human|suggestions|both] | --alpaca-eval FILE) [--bootstrap N] [--seed N]
[--anchor MODEL] [--format table|csv|json] [--out FILE]

Chatbot Arena's Bradley–Terry ratings over every pair of models (judging.evaluation.battles / arena): of the models
that wrote a dataset's responses (human votes, judge votes, or both), or of the generators in AlpacaEval-format
annotations (a JSON list or JSONL file), with bootstrap 95% intervals and the predicted win-probability matrix.
"""
import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.errors import validation_message
from annotation.models import Dataset
from judging.evaluation.battles import (
    MAX_BOOTSTRAP,
    alpaca_eval_arena,
    arena_csv,
    dataset_arena,
    seed_param,
)
from judging.evaluation.leaderboards import SOURCES

from ._evalio import errors_message, read_items, unwrap


class Command(BaseCommand):
    help = "Bradley–Terry (Chatbot Arena) ratings over all pairs of models, of a dataset or of AlpacaEval annotations."

    def add_arguments(self, parser):
        src = parser.add_mutually_exclusive_group(required=True)
        src.add_argument("--dataset", type=int)
        src.add_argument("--alpaca-eval", metavar="FILE")
        parser.add_argument("--source", choices=SOURCES, default="human")
        parser.add_argument("--bootstrap", type=int, default=200, help=f"resamples of the battles (0-{MAX_BOOTSTRAP})")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--anchor", help="the model pinned at 1000 (default: the first to appear)")
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
        parser.add_argument("--out", help="write to this file instead of standard output")

    def handle(self, *args, dataset=None, alpaca_eval=None, source="human", bootstrap=200, seed=0, anchor=None,
               format="table", out=None, **options):
        if not 0 <= bootstrap <= MAX_BOOTSTRAP:
            raise CommandError(f"--bootstrap must be from 0 to {MAX_BOOTSTRAP}")
        try:
            seed_param(seed)
            if dataset is not None:
                ds = Dataset.objects.filter(pk=dataset).first()
                if ds is None:
                    raise CommandError(f"no dataset with id {dataset}")
                arena = dataset_arena(ds, source=source, bootstrap=bootstrap, seed=seed, anchor=anchor)
            else:
                items, lines = unwrap(*read_items(alpaca_eval))
                try:
                    arena = alpaca_eval_arena(items, bootstrap=bootstrap, seed=seed, anchor=anchor)
                except ValidationError as exc:
                    if any(k.startswith("[") for k in exc.message_dict):
                        raise CommandError(errors_message(alpaca_eval, exc, lines)) from None
                    raise
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from None
        if format == "csv":
            text = arena_csv(arena)
        elif format == "json":
            text = json.dumps(arena, indent=2) + "\n"
        else:
            text = self._table(arena)
        if out:
            with open(out, "w", encoding="utf-8") as f:
                f.write(text)
            self.stderr.write(f"wrote {len(arena['rows'])} rows to {out}")
        else:
            self.stdout.write(text, ending="")

    @staticmethod
    def _table(arena: dict) -> str:
        def f(x):
            return "-" if x is None else f"{x:.0f}"

        head = (f"{arena['method']} · source: {arena['source']} · {arena['n_battles']} battles · anchor "
                f"{arena['anchor']} = {arena['init_rating']:.0f} · 95% CI: {arena['ci_method']} "
                f"({arena['bootstrap']} resamples)")
        lines = [head,
                 f"{'model':30} {'rating':>7} {'95% CI':>13} {'battles':>8} {'W/T/L':>13}"]
        for r in arena["rows"]:
            ci = "-" if r["ci_low"] is None else f"{f(r['ci_low'])}–{f(r['ci_high'])}"
            lines.append(f"{r['model'][:30]:30} {f(r['rating']):>7} {ci:>13} {r['battles']:>8} "
                         f"{r['wins']}/{r['ties']}/{r['losses']:<5}")
        lines.extend(f"note: {n}" for n in arena["notes"])
        return "\n".join(lines) + "\n"
