"""Simulated annotators (judging.evaluation.simulation).

    manage.py simulate --workspace WS --create NAME --judge JUDGE [--p 0.25] [--seed 0]
    manage.py simulate --workspace WS --list
    manage.py simulate --dataset ID [--annotators a,b] [--max-records N] [--enqueue]

The last form runs the annotators on the dataset in this process, with a progress bar (or, with
--enqueue, starts a "simulation" job on the workers and prints its id); they answer through the
same distribution and response path as people.
"""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.errors import validation_message
from annotation.models import Dataset, Workspace
from judging.evaluation.simulation import (
    simulated_annotator_create,
    simulated_annotators_resolve,
    simulation_job_create,
    simulation_run,
)
from judging.models import SimulatedAnnotator
from judging.selectors import judge_by_ref


def _workspace(ref) -> Workspace:
    ws = Workspace.objects.filter(pk=int(ref)).first() if str(ref).isdigit() else Workspace.objects.filter(name=ref).first()
    if ws is None:
        raise CommandError(f"no workspace {ref!r}")
    return ws


class Command(BaseCommand):
    help = "Create, list or run simulated annotators (LLM judges with label noise, AlpacaFarm style)."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", help="workspace id or name (for --create / --list)")
        parser.add_argument("--create", metavar="NAME")
        parser.add_argument("--judge", help="judge id or name (with --create)")
        parser.add_argument("--p", type=float, default=0.0, help="label-flip probability (AlpacaFarm: 0.25)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--list", action="store_true")
        parser.add_argument("--dataset", type=int)
        parser.add_argument("--annotators", help="comma-separated names (default: all of the workspace)")
        parser.add_argument("--max-records", type=int, help="at most this many records per annotator")
        parser.add_argument("--enqueue", action="store_true", help="run as a job on the Celery workers")
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args, **o):
        try:
            if o["create"]:
                return self._create(o)
            if o["list"]:
                ws = _workspace(o["workspace"] or "")
                for s in SimulatedAnnotator.objects.filter(workspace=ws).select_related("judge", "user"):
                    self.stdout.write(f"{s.name}\tuser={s.user.username}\tjudge={s.judge.name}\tp={s.flip_probability:g}"
                                      f"\tseed={s.seed}")
                return
            if o["dataset"] is not None:
                return self._run(o)
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from None
        raise CommandError("say what to do: --create NAME, --list, or --dataset ID")

    def _create(self, o):
        if not o["workspace"] or not o["judge"]:
            raise CommandError("--create needs --workspace and --judge")
        ws = _workspace(o["workspace"])
        ref = o["judge"]
        judge = judge_by_ref(workspace=ws, ref=ref)
        if judge is None:
            raise CommandError(f"no judge {ref!r} in workspace {ws.name!r}")
        sim = simulated_annotator_create(workspace=ws, name=o["create"], judge=judge, flip_probability=o["p"],
                                         seed=o["seed"])
        self.stdout.write(f"created simulated annotator {sim.name} (user {sim.user.username}, judge {judge.name}, "
                          f"p={sim.flip_probability:g}, seed={sim.seed})")

    def _run(self, o):
        dataset = Dataset.objects.filter(pk=o["dataset"]).first()
        if dataset is None:
            raise CommandError(f"no dataset with id {o['dataset']}")
        names = [n.strip() for n in (o["annotators"] or "").split(",") if n.strip()]
        annotators = simulated_annotators_resolve(workspace=dataset.workspace, names=names)
        if o["enqueue"]:
            job = simulation_job_create(dataset=dataset, annotators=annotators, max_records=o["max_records"])
            self.stdout.write(f"started simulation job {job.pk} ({job.chunks.count()} chunks, one per annotator)")
            return
        bar = tqdm(unit="answers", file=self.stderr._out, disable=o["quiet"], dynamic_ncols=True)

        def on_answer(annotator, record, status, error):
            bar.update(1)
            if error:
                bar.write(f"{annotator.name} could not judge record {record.external_id}: {error[:200]}")

        try:
            result = simulation_run(dataset=dataset, annotators=annotators, max_records=o["max_records"],
                                    on_answer=on_answer)
        finally:
            bar.close()
        for name, tally in result.per_annotator.items():
            self.stdout.write(f"{name}: {tally.submitted} submitted ({tally.noised} replaced by noise), "
                              f"{tally.discarded} discarded")
