"""manage.py annotate_pairs --workspace WS --input FILE --out FILE [--samples] [--annotators a,b]
[--pairs-per-instruction N] [--seed S] [--keep-dataset]

AlpacaFarm's annotate_pairs / annotate_samples with the workspace's simulated annotators:
  input (pairs):   [{instruction, output_1, output_2, generator_1?, generator_2?}, ...]
  input (samples): [{instruction, outputs: [...], generators?: [...]}, ...]  with --samples
Output: the annotated pairs as a JSON list, each with `preference` (1, 2, 1.5 = tie) and
`annotator` — AlpacaEval's format, ready for `manage.py leaderboard --alpaca-eval`.
"""
import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from judging.evaluation.simulation import pairs_annotate, samples_annotate, simulated_annotators_resolve

from ._evalio import errors_message, read_items, unwrap
from .simulate import _workspace


class Command(BaseCommand):
    help = "Annotate pairs (or sampled pairs of outputs) with the simulated annotator pool."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", required=True)
        parser.add_argument("--input", required=True, help="JSON list or JSONL")
        parser.add_argument("--out", required=True)
        parser.add_argument("--samples", action="store_true", help="input is {instruction, outputs: [...]}")
        parser.add_argument("--annotators", help="comma-separated names (default: all of the workspace)")
        parser.add_argument("--pairs-per-instruction", type=int, default=1)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--keep-dataset", action="store_true", help="keep the scratch dataset (pairs only)")

    def handle(self, *args, **o):
        ws = _workspace(o["workspace"])
        items, is_jsonl = read_items(o["input"])
        items, lines = unwrap(items, is_jsonl)
        names = [n.strip() for n in (o["annotators"] or "").split(",") if n.strip()]
        try:
            annotators = simulated_annotators_resolve(workspace=ws, names=names)
            if o["samples"]:
                result = samples_annotate(workspace=ws, samples=items, annotators=annotators,
                                          pairs_per_instruction=o["pairs_per_instruction"], seed=o["seed"])
            else:
                result = pairs_annotate(workspace=ws, pairs=items, annotators=annotators,
                                        keep_dataset=o["keep_dataset"])
        except ValidationError as exc:
            raise CommandError(errors_message(o["input"], exc, lines)) from None
        with open(o["out"], "w", encoding="utf-8") as f:
            json.dump(result["annotations"], f, ensure_ascii=False, indent=1)
        self.stderr.write(f"annotated {result['annotated']} pairs, {result['failed']} failed; wrote {o['out']}")
