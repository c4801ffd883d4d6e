"""Importing an existing preference set (JSONL of prompt, chosen, rejected) as pairwise records,
shown blind: each pair's answers are shuffled into response-1/response-2."""
from __future__ import annotations

import hashlib
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from ..errors import validation_message
from ..models import Dataset, Workspace
from ..services import dataset_create, pairwise_dataset_spec, response_field_names
from .readers import read_ndjson
from .records import ProgressFn, records_import
from .report import ImportReport, LineError, raw_text

PAIR_FIELDS = ("prompt", *response_field_names(2))
PAIR_KEYS = {"prompt", "chosen", "rejected", "system", "id", "external_id", "metadata"}


def chosen_position(*, external_id: str, seed: int | str) -> str:
    """Where the original chosen answer goes: stable for a given (external_id, seed)."""
    digest = hashlib.sha256(f"{seed}\x1f{external_id}".encode()).digest()
    return "response-1" if digest[0] & 1 == 0 else "response-2"


def _message_text(value: Any, role: str, where: str) -> tuple[str, str | None]:
    """A pair side may be a string or a message list (TRL conversational): take the text of `role`."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        system = next((m.get("content") for m in value if m.get("role") == "system"), None)
        texts = [m.get("content") for m in value if m.get("role") == role]
        if texts and isinstance(texts[-1], str):
            return texts[-1], system if isinstance(system, str) else None
    raise ValidationError({where: f"must be a string or a list of messages with a {role} message"})


def pair_to_record(raw: Any, *, seed: int | str) -> dict:
    if not isinstance(raw, dict):
        raise ValidationError({"pair": "must be a JSON object {prompt, chosen, rejected}"})
    unknown = set(raw) - PAIR_KEYS
    if unknown:
        raise ValidationError({"pair": f"unknown keys: {', '.join(sorted(unknown))}"})
    for key in ("prompt", "chosen", "rejected"):
        if raw.get(key) in (None, "", []):
            raise ValidationError({key: "required"})
    prompt, system = _message_text(raw["prompt"], "user", "prompt")
    chosen, _ = _message_text(raw["chosen"], "assistant", "chosen")
    rejected, _ = _message_text(raw["rejected"], "assistant", "rejected")
    if raw.get("system") is not None:
        if not isinstance(raw["system"], str):
            raise ValidationError({"system": "must be a string"})
        system = raw["system"]
    extra = raw.get("metadata") or {}
    if not isinstance(extra, dict):
        raise ValidationError({"metadata": "must be an object"})
    external_id = raw.get("id", raw.get("external_id"))
    if external_id in (None, ""):
        external_id = "pair-" + hashlib.sha1(orjson.dumps([system, prompt, chosen, rejected])).hexdigest()
    elif isinstance(external_id, bool) or not isinstance(external_id, (str, int)):
        raise ValidationError({"id": "must be a string or an integer"})
    external_id = str(external_id)
    where = chosen_position(external_id=external_id, seed=seed)
    other = "response-2" if where == "response-1" else "response-1"
    metadata = {**extra, "original_chosen": where, "source": "import_pairs"}
    if system is not None:
        metadata["system"] = system
    return {"external_id": external_id, "fields": {"prompt": prompt, where: chosen, other: rejected},
            "metadata": metadata}


def pairs_dataset_check(dataset: Dataset) -> None:
    names = set(dataset.fields.values_list("name", flat=True))
    missing = [f for f in PAIR_FIELDS if f not in names]
    if missing:
        raise ValidationError({"dataset": f"importing pairs needs the fields prompt, response-1 and response-2; "
                                          f"this dataset lacks {', '.join(missing)}"})


def pairs_import(*, dataset: Dataset, stream, seed: int | str = 0, batch_size: int | None = None,
                 on_progress: ProgressFn | None = None, pipeline: bool = False) -> ImportReport:
    """Import JSONL of {prompt, chosen, rejected} (+ optional system, id, metadata) as pairwise records.

    Each record's two answers are shuffled into response-1/response-2 by a hash of its
    external_id and `seed` (stable: re-importing puts them in the same place), and
    metadata.original_chosen keeps where the original chosen answer went, so a judge or an
    annotator can re-check the pair blind.
    """
    pairs_dataset_check(dataset)
    max_bytes = settings.PREFLAB_MAX_RECORD_BYTES

    def items():
        for line_no, raw, size in read_ndjson(stream, max_bytes=max_bytes):
            if isinstance(raw, LineError):
                yield line_no, raw, size
                continue
            try:
                yield line_no, pair_to_record(raw, seed=seed), None
            except ValidationError as exc:
                yield line_no, LineError(validation_message(exc), raw_text(raw)), size

    return records_import(dataset=dataset, stream=None, fmt="ndjson", batch_size=batch_size,
                          on_progress=on_progress, items=items(), pipeline=pipeline)


@transaction.atomic
def pairs_dataset_create(*, workspace: Workspace, name: str, created_by=None, guidelines: str = "",
                         min_submitted: int = 1, allow_ties: bool = False) -> Dataset:
    """A ready pairwise dataset: prompt (text), response-1/response-2 (markdown), ranking `ranking`."""
    fields, questions = pairwise_dataset_spec(responses=2, prompt_kind="text",
                                              ranking_title="Which response is better?")
    return dataset_create(workspace=workspace, name=name, created_by=created_by, guidelines=guidelines,
                          min_submitted=min_submitted, allow_ties=allow_ties, fields=fields, questions=questions)
