"""manage.py import_pairs (DATASET_ID | --workspace W --create NAME) FILE [--format F] [--map T=C ...] [--strict]

Imports an existing preference set in any of the public formats (Intel/orca_dpo_pairs,
UltraFeedback binarized, CLAIR, an Argilla export, AlpacaFarm, TRL explicit/implicit prompt,
preflab pairwise), as JSON lines, a JSON array, CSV or Parquet: the format is told from the
columns (or named with --format), the file type from the name or the content. Records are
pairwise, their two answers shuffled per record; metadata.original_chosen says where the original
chosen went. A `gold` column (true/false; --map gold=COLUMN) makes a row's record a gold record whose
known answer is its chosen response. Exit status 1 when nothing was stored (with --create the new
dataset is removed).
"""
import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.imports import (
    PAIR_FORMAT_NAMES,
    ImportFormatError,
    PairSource,
    format_from_name,
    mapping_parse,
    pairs_dataset_create,
    pairs_import,
    pipeline_possible,
)
from annotation.job_kinds import import_total
from annotation.management.commands.import_records import run_file_import
from annotation.models import Dataset, Workspace
from annotation.services import dataset_delete


class Command(BaseCommand):
    help = "Import an existing preference set (any public pair format) for re-checking."

    def add_arguments(self, parser):
        parser.add_argument("args", nargs="+", metavar="[DATASET_ID] FILE")
        parser.add_argument("--workspace", help="workspace id or name (with --create)")
        parser.add_argument("--create", metavar="NAME", help="create a pairwise dataset with this name")
        parser.add_argument("--seed", default="0", help="shuffle seed (default 0)")
        parser.add_argument("--format", choices=PAIR_FORMAT_NAMES, help="the pair format (default: from the columns)")
        parser.add_argument("--filetype", choices=("ndjson", "json", "csv", "parquet"),
                            help="default: from the file name and content")
        parser.add_argument("--map", action="append", default=[], metavar="TARGET=COLUMN",
                            help="read COLUMN as TARGET (prompt, chosen, rejected, response-1, ...); repeatable")
        parser.add_argument("--strict", action="store_true", help="reject lines with columns the format does not read "
                                                                  "(default: they go to metadata)")
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args, workspace=None, create=None, seed="0", format=None, filetype=None, map=(), strict=False,
               quiet=False, **options):
        self.quiet = quiet
        ws = dataset = None
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
        try:
            mapping = mapping_parse(list(map))
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
        hint = filetype or (format_from_name(path) if format_from_name(path) in ("csv", "parquet") else None)
        with open(path, "rb") as f:
            try:
                source = PairSource(f, filetype=hint, fmt=format, mapping=mapping, strict=strict)
            except ImportFormatError as exc:
                raise CommandError(f"{path}: {exc}; nothing stored")
            if source.format is not None:
                self.stdout.write(f"format: {source.format.name} ({source.format.title}), file type {source.filetype}")
            created = None
            if create:
                try:
                    created = dataset = pairs_dataset_create(workspace=ws, name=create,
                                                             prompt_kind="chat" if source.conversational else "text")
                except ValidationError as exc:
                    raise CommandError("; ".join(exc.messages))
                self.stdout.write(f"created dataset {dataset.pk} ({dataset.name}), prompt field "
                                  f"{'chat' if source.conversational else 'text'}")
            try:
                report = run_file_import(self, path=path, total=import_total(path, source.filetype),
                                         run=lambda cb: pairs_import(dataset=dataset, source=source, seed=seed,
                                                                     on_progress=cb, pipeline=pipeline_possible()))
            except BaseException:
                if created is not None and not created.records.exists():
                    dataset_delete(dataset=created)
                raise
        for key, value in report.extra.items():
            self.stdout.write(f"{key.replace('_', ' ')}: {value}")
        for warning in report.warnings:
            self.stdout.write(f"warning: {warning}")
        if report.stored == 0:
            if created is not None:
                dataset_delete(dataset=created)
                raise CommandError(f"{path}: {report.nothing_stored_message()}; dataset {create!r} not created")
            raise CommandError(f"{path}: {report.nothing_stored_message()}")
