"""Judge jobs: creating one, and the size of its chunks."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from annotation.jobs import job_create
from annotation.models import Dataset, Job, Record, Workspace

from .. import judges as J
from ..models import Judge
from ..selectors import JOB_KIND
from .layout import clair_target_for, dataset_layout

log = logging.getLogger(__name__)


# --- jobs --------------------------------------------------------------------------------------

def judge_job_create(*, workspace: Workspace, dataset: Dataset, judge: Judge, records: Iterable | None = None,
                     created_by=None, target_dataset: Dataset | str | None = None, answer_field: str | None = None,
                     chunk_size: int | None = None, processes: int = 1, start: bool = True) -> Job:
    """Plan a judge job over `records` (ids or Records; None = every record of the dataset). `processes`:
    how many processes will share its chunks (job_run_inline(processes=)), so the default chunk size
    gives each of them an even share."""
    if dataset.workspace_id != workspace.pk:
        raise ValidationError({"dataset": "no such dataset in this workspace"})
    if judge.workspace_id != workspace.pk:
        raise ValidationError({"judge": "no such judge in this workspace"})
    layout = dataset_layout(dataset)
    if not layout.prompt_field:
        raise ValidationError({"dataset": f"the prompt field {dataset.prompt_field!r} is not a field of the dataset"})
    params: dict[str, Any] = {"judge_id": judge.pk, "judge": judge.name, "method": judge.method,
                              "agent": judge.agent, "aspect": judge.aspect}
    if judge.method == Judge.Method.CLAIR:
        field_names = set(dataset.fields.values_list("name", flat=True))
        if answer_field is not None and answer_field not in field_names:
            raise ValidationError({"answer_field": f"{answer_field!r} is not a field of this dataset"})
        if answer_field is None and not layout.fields:
            raise ValidationError({"answer_field": "name the field holding the answer to revise"})
        params["answer_field"] = answer_field
    else:
        if len(layout.fields) < 2:
            raise ValidationError({"dataset": "a judge needs a ranking question (or a comparison rating) over at "
                                              "least two response fields"})
        if answer_field is not None:
            raise ValidationError({"answer_field": "only CLAIR judges revise one answer field"})
        if target_dataset is not None:
            raise ValidationError({"target_dataset": "only CLAIR judges write to a target dataset"})
    if records is not None:
        ids = sorted({r.pk if isinstance(r, Record) else r for r in records})
        if not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValidationError({"records": "a non-empty list of record ids"})
        found = set(Record.objects.filter(dataset=dataset, pk__in=ids).values_list("pk", flat=True))
        missing = [i for i in ids if i not in found]
        if missing:
            raise ValidationError({"records": f"not records of this dataset: {', '.join(map(str, missing[:10]))}"})
        params["record_ids"] = ids
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or not 1 <= chunk_size <= 5000:
            raise ValidationError({"chunk_size": "an integer from 1 to 5000"})
        params["chunk_size"] = chunk_size
    if processes > 1:
        params["processes"] = processes
    with transaction.atomic():
        if judge.method == Judge.Method.CLAIR:
            target = clair_target_for(workspace=workspace, source=dataset, target=target_dataset,
                                       created_by=created_by)
            if target.pk == dataset.pk:
                raise ValidationError({"target_dataset": "must differ from the judged dataset"})
            params["target_dataset_id"] = target.pk
        job = job_create(kind=JOB_KIND, workspace=workspace, dataset=dataset, created_by=created_by,
                         name=f"{judge.name} on {dataset.name}"[:200], params=params,
                         queue=judge.endpoint.queue or settings.PREFLAB_CPU_QUEUE, start=start)
    return job


CHUNKS_PER_PROCESS = 4  # chunks each process of a shared job gets (default_chunk_size)


def default_chunk_size(judge: Judge, *, records: int = 0, processes: int = 1) -> int:
    """Enough records per chunk to keep the endpoint's concurrency busy (calls per record vary). With
    `processes` sharing the job, chunks small enough that each process gets about CHUNKS_PER_PROCESS of
    them (processes take the next chunk as they finish one, so the last ones end close together), yet
    each still a couple of pipe-fulls of that process's share of the endpoint's slots."""
    per_record = _calls_per_record(judge)
    concurrency = int(judge.endpoint.max_concurrency or 1)
    size = max(50, min(5000, (16 * concurrency) // per_record))
    if processes > 1 and records:
        even = -(-records // (processes * CHUNKS_PER_PROCESS))
        size = min(size, max(50, (2 * concurrency) // (processes * per_record), even))
    return size


def first_chunk_size(judge: Judge, size: int) -> int:
    """The first chunk of a job run by one process: two pipe-fulls of the endpoint's slots, not `size`. A
    chunk is planned whole before its first call goes out (~40 µs a record), and job_run_inline plans its
    first two chunks at once: small, the first one starts calling within milliseconds, and the next,
    planned meanwhile, fills the slots it frees (generation.llm serves the earlier chunk first)."""
    return min(size, max(50, (2 * int(judge.endpoint.max_concurrency or 1)) // _calls_per_record(judge)))


def _calls_per_record(judge: Judge) -> int:
    """LLM calls a judge makes per record: both orders for pairwise, one revision for CLAIR, one per aspect."""
    return max(1, {Judge.Method.PAIRWISE: 2, Judge.Method.CLAIR: 1}.get(judge.method, len(J.aspects_for(judge))))
