"""manage.py leaderboard (--dataset ID | --alpaca-eval FILE) [--reference MODEL] [--source human|suggestions|both]
[--length-controlled [--instruction-difficulty FILE] [--gamed-annotations FILE] [--bootstrap N] [--seed N]]
[--format table|csv|json] [--out FILE]

The length-controlled win rate is AlpacaEval's GLM (judging.evaluation.length_control): its variant is printed
(alpaca_eval_length_controlled_noreg, or _v1 with --gamed-annotations), with a standard error bootstrapped over
instructions. --instruction-difficulty: JSON {instruction: difficulty} or a list by order of first appearance, or
a CSV (AlpacaEval's own file: one instruction_difficulty column, by position); see judging.evaluation.difficulty.

Win rates against a reference model (judging.evaluation.leaderboards): of the models that wrote a dataset's
responses, or from AlpacaEval-format annotations (a JSON list or JSONL file).
"""
import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.errors import validation_message
from annotation.models import Dataset
from judging.evaluation.difficulty import difficulty_parse
from judging.evaluation.leaderboards import (
    SOURCES,
    alpaca_eval_leaderboard,
    dataset_leaderboard,
    leaderboard_csv,
)

from ._evalio import errors_message, read_items, unwrap


class Command(BaseCommand):
    help = "Leaderboard (win rate vs a reference model, with standard error) of a dataset or of AlpacaEval annotations."

    def add_arguments(self, parser):
        src = parser.add_mutually_exclusive_group(required=True)
        src.add_argument("--dataset", type=int)
        src.add_argument("--alpaca-eval", metavar="FILE")
        parser.add_argument("--reference", help="reference model (default for a dataset: its most frequent model)")
        parser.add_argument("--source", choices=SOURCES, default="human")
        parser.add_argument("--length-controlled", action="store_true",
                            help="AlpacaEval's length-controlled win rate (GLM), with a bootstrap standard error")
        parser.add_argument("--instruction-difficulty", metavar="FILE",
                            help="per-instruction difficulties (JSON object/list or CSV); default: fitted jointly")
        parser.add_argument("--gamed-annotations", metavar="FILE",
                            help="AlpacaEval annotations of the reference vs length-gamed copies of itself (gives _v1)")
        parser.add_argument("--bootstrap", type=int, default=200, help="resamples for the LC standard error")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
        parser.add_argument("--out", help="write to this file instead of standard output")

    def handle(self, *args, dataset=None, alpaca_eval=None, reference=None, source="human", length_controlled=False,
               format="table", out=None, **options):
        lc = self._lc_options(length_controlled, options)
        try:
            if dataset is not None:
                ds = Dataset.objects.filter(pk=dataset).first()
                if ds is None:
                    raise CommandError(f"no dataset with id {dataset}")
                board = dataset_leaderboard(ds, reference=reference, source=source, **lc)
            else:
                if not reference:
                    raise CommandError("--reference is required with --alpaca-eval")
                items, is_jsonl = read_items(alpaca_eval)
                items, lines = unwrap(items, is_jsonl)
                try:
                    board = alpaca_eval_leaderboard(items, reference=reference, **lc)
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
    def _lc_options(length_controlled: bool, options: dict) -> dict:
        difficulty = gamed = None
        if options.get("instruction_difficulty"):
            path = options["instruction_difficulty"]
            try:
                with open(path, encoding="utf-8") as f:
                    difficulty = difficulty_parse(f.read())
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror}") from None
            except ValidationError as exc:
                raise CommandError(f"{path}: {validation_message(exc)}") from None
        if options.get("gamed_annotations"):
            gamed = unwrap(*read_items(options["gamed_annotations"]))[0]
        if (difficulty is not None or gamed is not None) and not length_controlled:
            raise CommandError("--instruction-difficulty and --gamed-annotations go with --length-controlled")
        return {"length_controlled": length_controlled, "instruction_difficulty": difficulty, "gamed": gamed,
                "bootstrap": options.get("bootstrap", 200), "seed": options.get("seed", 0)}

    @staticmethod
    def _table(board) -> str:
        def f(x, d=1):
            return "-" if x is None else f"{x:.{d}f}"

        head = (f"reference: {board.reference}   source: {board.source}   comparisons: {board.comparisons} "
                f"(skipped {board.skipped})")
        lines = [head]
        if board.lc_variant:
            lines.append(f"length-controlled: {board.lc_variant} (instruction difficulty: {board.difficulty_source}; "
                         f"LC SE: {board.lc_se_method}, {board.lc_bootstrap} resamples)")
        lines.append(f"{'model':30} {'win rate':>9} {'± SE':>6} {'discrete':>9} {'LC':>6} {'± LC SE':>8} {'n':>6} "
                     f"{'W/T/L':>13} {'avg len':>8}")
        for r in board.rows:
            wtl = "-" if r.is_reference else f"{r.wins}/{r.ties}/{r.losses}"
            lines.append(f"{r.model[:30]:30} {f(r.win_rate):>9} {f(r.standard_error):>6} {f(r.discrete_win_rate):>9} "
                         f"{f(r.lc_win_rate):>6} {f(r.lc_standard_error):>8} {r.n:>6} {wtl:>13} {f(r.avg_length, 0):>8}")
        lines.extend(f"note: {n}" for n in board.notes)
        return "\n".join(lines) + "\n"
