"""manage.py leaderboard (--dataset ID | --alpaca-eval FILE) [--reference MODEL] [--source human|suggestions|both]
[--length-controlled] [--format table|csv|json] [--out FILE]

Win rates against a reference model (judging.evaluation.leaderboards): of the models that wrote a dataset's
responses, or from AlpacaEval-format annotations (a JSON list or JSONL file).
"""
import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.errors import validation_message
from annotation.models import Dataset
from judging.evaluation.leaderboards import SOURCES, alpaca_eval_leaderboard, dataset_leaderboard, leaderboard_csv

from ._evalio import errors_message, read_items, unwrap


class Command(BaseCommand):
    help = "Leaderboard (win rate vs a reference model, with standard error) of a dataset or of AlpacaEval annotations."

    def add_arguments(self, parser):
        src = parser.add_mutually_exclusive_group(required=True)
        src.add_argument("--dataset", type=int)
        src.add_argument("--alpaca-eval", metavar="FILE")
        parser.add_argument("--reference", help="reference model (default for a dataset: its most frequent model)")
        parser.add_argument("--source", choices=SOURCES, default="human")
        parser.add_argument("--length-controlled", action="store_true")
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
        parser.add_argument("--out", help="write to this file instead of standard output")

    def handle(self, *args, dataset=None, alpaca_eval=None, reference=None, source="human", length_controlled=False,
               format="table", out=None, **options):
        try:
            if dataset is not None:
                ds = Dataset.objects.filter(pk=dataset).first()
                if ds is None:
                    raise CommandError(f"no dataset with id {dataset}")
                board = dataset_leaderboard(ds, reference=reference, source=source, length_controlled=length_controlled)
            else:
                if not reference:
                    raise CommandError("--reference is required with --alpaca-eval")
                items, is_jsonl = read_items(alpaca_eval)
                items, lines = unwrap(items, is_jsonl)
                try:
                    board = alpaca_eval_leaderboard(items, reference=reference, length_controlled=length_controlled)
                except ValidationError as exc:
                    raise CommandError(errors_message(alpaca_eval, exc, lines)) from None
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from None
        if format == "csv":
            text = leaderboard_csv(board)
        elif format == "json":
            text = json.dumps(board.as_dict(), indent=2) + "\n"
        else:
            text = self._table(board)
        if out:
            with open(out, "w", encoding="utf-8") as f:
                f.write(text)
            self.stderr.write(f"wrote {len(board.rows)} rows to {out}")
        else:
            self.stdout.write(text, ending="")

    @staticmethod
    def _table(board) -> str:
        def f(x, d=1):
            return "-" if x is None else f"{x:.{d}f}"

        lines = [f"reference: {board.reference}   source: {board.source}   comparisons: {board.comparisons} "
                 f"(skipped {board.skipped})",
                 f"{'model':30} {'win rate':>9} {'± SE':>6} {'LC':>6} {'n':>6} {'W/T/L':>13} {'avg len':>8}"]
        for r in board.rows:
            wtl = "-" if r.is_reference else f"{r.wins}/{r.ties}/{r.losses}"
            lines.append(f"{r.model[:30]:30} {f(r.win_rate):>9} {f(r.standard_error):>6} {f(r.lc_win_rate):>6} "
                         f"{r.n:>6} {wtl:>13} {f(r.avg_length, 0):>8}")
        lines.extend(f"note: {n}" for n in board.notes)
        return "\n".join(lines) + "\n"
