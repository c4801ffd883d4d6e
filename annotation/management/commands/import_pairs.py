"""manage.py import_pairs (DATASET_ID | --workspace W --create NAME) FILE [--seed S]

Imports JSONL of {prompt, chosen, rejected} (+ optional system, id) as pairwise records whose two
answers are shuffled per record; metadata.original_chosen says where the original chosen went.
"""
import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.imports import pairs_dataset_create, pairs_import, pipeline_possible
from annotation.job_kinds import count_lines
from annotation.management.commands.import_records import run_file_import
from annotation.models import Dataset, Workspace


class Command(BaseCommand):
    help = "Import an existing preference set (JSONL of prompt/chosen/rejected) for re-checking."

    def add_arguments(self, parser):
        parser.add_argument("args", nargs="+", metavar="[DATASET_ID] FILE")
        parser.add_argument("--workspace", help="workspace id or name (with --create)")
        parser.add_argument("--create", metavar="NAME", help="create a pairwise dataset with this name")
        parser.add_argument("--seed", default="0", help="shuffle seed (default 0)")
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args, workspace=None, create=None, seed="0", quiet=False, **options):
        self.quiet = quiet
        if create:
            if len(args) != 1 or not workspace:
                raise CommandError("usage: import_pairs --workspace W --create NAME FILE")
            path = args[0]
            ws = (Workspace.objects.filter(pk=int(workspace)).first() if workspace.isdigit()
                  else Workspace.objects.filter(name=workspace).first())
            if ws is None:
                raise CommandError(f"no workspace {workspace!r}")
        else:
            if len(args) != 2:
                raise CommandError("usage: import_pairs DATASET_ID FILE  (or --workspace W --create NAME FILE)")
            try:
                dataset = Dataset.objects.filter(pk=int(args[0])).first()
            except ValueError:
                raise CommandError(f"DATASET_ID must be a number, not {args[0]!r}")
            if dataset is None:
                raise CommandError(f"no dataset with id {args[0]}")
            path = args[1]
        if not os.path.isfile(path):
            raise CommandError(f"{path}: no such file")
        if create:
            try:
                dataset = pairs_dataset_create(workspace=ws, name=create)
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages))
            self.stdout.write(f"created dataset {dataset.pk} ({dataset.name})")
        with open(path, "rb") as f:
            run_file_import(self, path=path, total=count_lines(path),
                            run=lambda cb: pairs_import(dataset=dataset, stream=f, seed=seed, on_progress=cb,
                                                        pipeline=pipeline_possible()))
