"""Generation jobs: the target dataset, the slot plan of each prompt, creating and resuming a job."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from annotation.jobs import job_create, job_resume_or_retry
from annotation.models import Dataset, Job, Question, Workspace
from annotation.services import dataset_create, pairwise_dataset_spec, response_field_names

from ..models import Endpoint
from ..selectors import JOB_KIND
from .endpoints import generation_params_validate
from .prompts import Prompt, prompt_format_of, prompts_from_dataset, prompts_read

STRATEGIES = ("sample", "each", "samples")
MAX_N = 16


# --- target dataset ----------------------------------------------------------------------------

def generation_dataset_check(*, dataset: Dataset, n: int) -> None:
    """The target needs its prompt field, response-1..n and a ranking question over them."""
    names = set(dataset.fields.values_list("name", flat=True))
    if dataset.prompt_field not in names:
        raise ValidationError({"dataset": f"{dataset.name!r} has no prompt field {dataset.prompt_field!r}"})
    wanted = response_field_names(n)
    missing = [f for f in wanted if f not in names]
    if missing:
        raise ValidationError({"dataset": f"{dataset.name!r} needs the fields {', '.join(wanted)} "
                                          f"for n={n}; missing: {', '.join(missing)}"})
    extra = sorted(f for f in names if f.startswith("response-") and f not in wanted
                   and dataset.fields.filter(name=f, required=True).exists())
    if extra:
        raise ValidationError({"dataset": f"{dataset.name!r} requires {', '.join(extra)}, which n={n} would not fill"})
    rankings = dataset.questions.filter(kind=Question.Kind.RANKING)
    if not any(set((q.options or {}).get("values", [])) == set(wanted) for q in rankings):
        raise ValidationError({"dataset": f"{dataset.name!r} needs a ranking question over {', '.join(wanted)}"})


def generation_dataset_create(*, workspace: Workspace, name: str, n: int, chat_prompts: bool = False,
                              created_by=None) -> Dataset:
    fields, questions = pairwise_dataset_spec(responses=n, prompt_kind="chat" if chat_prompts else "text",
                                              ranking_title="Rank the responses (best first)")
    return dataset_create(workspace=workspace, name=name, fields=fields, questions=questions, created_by=created_by)


# --- slot plans --------------------------------------------------------------------------------

def slot_plan(*, prompt_key: str, strategy: str, pool: list[str], n: int, seed: int,
              temperatures: list[float] | None) -> list[tuple[str, dict]]:
    """(endpoint name, slot params) for each of the n slots of one prompt; deterministic."""
    if strategy == "sample":
        rng = random.Random(f"{seed}\x1f{prompt_key}")
        return [(name, {}) for name in rng.sample(pool, n)]
    if strategy == "each":
        return [(name, {}) for name in pool]
    slots = []
    for i in range(n):
        params = {"temperature": temperatures[i]} if temperatures else {}
        slots.append((pool[0], params))
    return slots


# --- jobs --------------------------------------------------------------------------------------

def _endpoints_resolve(workspace: Workspace, endpoints: Iterable) -> list[Endpoint]:
    out: list[Endpoint] = []
    for e in endpoints:
        if isinstance(e, Endpoint):
            if e.workspace_id != workspace.pk:
                raise ValidationError({"endpoints": f"endpoint {e.name!r} belongs to another workspace"})
            out.append(e)
            continue
        qs = Endpoint.objects.filter(workspace=workspace)
        found = qs.filter(pk=e).first() if isinstance(e, int) else qs.filter(name=str(e)).first()
        if found is None:
            raise ValidationError({"endpoints": f"no endpoint {e!r} in this workspace"})
        out.append(found)
    if not out:
        raise ValidationError({"endpoints": "choose at least one endpoint"})
    if len({e.pk for e in out}) != len(out):
        raise ValidationError({"endpoints": "an endpoint is listed twice"})
    return out


def generation_job_create(*, workspace: Workspace, dataset: Dataset | None = None, dataset_name: str | None = None,
                          endpoints: Iterable, prompts_source: dict, n: int | None = None, strategy: str = "sample",
                          k: int | None = None, seed: int = 0, temperatures: list[float] | None = None,
                          overrides: dict | None = None, created_by=None, chunk_size: int | None = None,
                          name: str = "", start: bool = True) -> Job:
    """Validate everything, then create the job (kind "generation") and enqueue its chunks.

    prompts_source: {"file": path, "format": "jsonl|csv|parquet" (default from the name),
    "column": "prompt", "id_column": None} or {"dataset": Dataset | id, "field": None}.
    n defaults to 2 (`each`: the pool size). The target is `dataset` (checked: prompt + response-1..n + a ranking question) or a new
    dataset named `dataset_name`. Nothing is written if anything is wrong (ValidationError).
    The prompts are read once, here, and handed to the handler's plan() through job_create.
    """
    pool = _endpoints_resolve(workspace, endpoints)
    n = _responses_per_prompt(pool=pool, strategy=strategy, n=n, k=k)
    temperatures = _temperatures_check(temperatures, strategy=strategy, n=n)
    overrides = _options_check(pool=pool, seed=seed, overrides=overrides, chunk_size=chunk_size)
    prompts, source = _prompts_load(workspace=workspace, prompts_source=prompts_source)
    with transaction.atomic():
        dataset = _target_dataset(workspace=workspace, dataset=dataset, dataset_name=dataset_name, n=n,
                                  prompts=prompts, created_by=created_by)
        if source["type"] == "dataset" and source["dataset"] != dataset.pk:
            for p in prompts:
                p.external_id = None  # another dataset: records get the job's own ids
        if chunk_size is None:
            in_flight = sum(e.max_concurrency for e in pool)
            chunk_size = max(128, min(2048, (in_flight * 16) // n))  # ~16 pipe-fulls of requests per chunk
        params = {
            "endpoints": [e.name for e in pool], "endpoint_ids": [e.pk for e in pool], "n": n,
            "strategy": strategy, "seed": seed, "temperatures": temperatures, "overrides": overrides,
            "source": source, "chunk_size": chunk_size, "prompt_count": len(prompts),
        }
        return job_create(kind=JOB_KIND, workspace=workspace, dataset=dataset, created_by=created_by,
                          name=name or f"generate {len(prompts)} prompts × {n}", params=params,
                          queue=_queue_for(pool), input_file=source.get("path", ""), start=start,
                          plan_input=prompts)


def _responses_per_prompt(*, pool: list[Endpoint], strategy: str, n: int | None, k: int | None) -> int:
    """n, the responses per prompt, checked against the strategy and the pool."""
    if strategy not in STRATEGIES:
        raise ValidationError({"strategy": f"must be one of {', '.join(STRATEGIES)}"})
    if strategy == "each":
        if n not in (None, len(pool)):
            raise ValidationError({"n": f"strategy 'each' gives one response per endpoint: n is the pool size ({len(pool)})"})
        n = len(pool)
    if strategy == "sample":
        if k is not None and n is not None and k != n:
            raise ValidationError({"k": "k (endpoints drawn per prompt) is the number of responses n; give one of them"})
        n = k if k is not None else n
    n = 2 if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= MAX_N:
        raise ValidationError({"n": f"responses per prompt: an integer from 2 to {MAX_N}"})
    if strategy == "sample" and n > len(pool):
        raise ValidationError({"n": f"cannot draw {n} different endpoints from a pool of {len(pool)}"})
    if strategy == "samples" and len(pool) != 1:
        raise ValidationError({"endpoints": "strategy 'samples' uses exactly one endpoint"})
    return n


def _temperatures_check(temperatures: Any, *, strategy: str, n: int) -> list[float] | None:
    if temperatures is None:
        return None
    if strategy != "samples":
        raise ValidationError({"temperatures": "only for strategy 'samples'"})
    if (not isinstance(temperatures, list) or len(temperatures) != n
            or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 5 for t in temperatures)):
        raise ValidationError({"temperatures": f"a list of {n} numbers from 0 to 5, one per response"})
    return [float(t) for t in temperatures]


def _options_check(*, pool: list[Endpoint], seed: Any, overrides: Any, chunk_size: Any) -> dict:
    """Checks the seed, the per-endpoint overrides and the chunk size; returns the overrides."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValidationError({"seed": "must be an integer"})
    overrides = overrides or {}
    if not isinstance(overrides, dict):
        raise ValidationError({"overrides": "an object of endpoint name to parameters"})
    names = {e.name for e in pool}
    for ep_name, params in overrides.items():
        if ep_name not in names:
            raise ValidationError({"overrides": f"{ep_name!r} is not one of the job's endpoints"})
        generation_params_validate(params, where=f"overrides.{ep_name}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or not 1 <= chunk_size <= 10_000):
        raise ValidationError({"chunk_size": "an integer from 1 to 10000"})
    return overrides


def _prompts_load(*, workspace: Workspace, prompts_source: Any) -> tuple[list[Prompt], dict]:
    """The prompts (read and checked before anything is written) and the source as stored in params."""
    if not isinstance(prompts_source, dict):
        raise ValidationError({"prompts": "give a prompt file or a source dataset"})
    if prompts_source.get("file"):
        path = str(prompts_source["file"])
        fmt = prompt_format_of(path, prompts_source.get("format") or None)
        column = prompts_source.get("column") or "prompt"
        id_column = prompts_source.get("id_column") or None
        prompts = prompts_read(path=path, fmt=fmt, column=column, id_column=id_column)
        return prompts, {"type": "file", "path": path, "format": fmt, "column": column, "id_column": id_column}
    if prompts_source.get("dataset") is not None:
        src = prompts_source["dataset"]
        if not isinstance(src, Dataset):
            src = Dataset.objects.filter(pk=src, workspace=workspace).first()
        if src is None or src.workspace_id != workspace.pk:
            raise ValidationError({"prompts_dataset": "no such dataset in this workspace"})
        prompts = prompts_from_dataset(dataset=src, field=prompts_source.get("field"))
        return prompts, {"type": "dataset", "dataset": src.pk, "field": prompts_source.get("field") or src.prompt_field}
    raise ValidationError({"prompts": "give a prompt file or a source dataset"})


def _target_dataset(*, workspace: Workspace, dataset: Dataset | None, dataset_name: str | None, n: int,
                    prompts: list[Prompt], created_by) -> Dataset:
    """The dataset the records go to: given (and checked), or created as `dataset_name`."""
    if dataset is None:
        if not dataset_name:
            raise ValidationError({"dataset": "choose a target dataset or give a name for a new one"})
        dataset = generation_dataset_create(workspace=workspace, name=dataset_name, n=n, created_by=created_by,
                                            chat_prompts=any(isinstance(p.prompt, list) for p in prompts))
    elif dataset.workspace_id != workspace.pk:
        raise ValidationError({"dataset": "no such dataset in this workspace"})
    generation_dataset_check(dataset=dataset, n=n)
    return dataset


def _queue_for(pool: list[Endpoint]) -> str:
    for e in pool:
        if e.backend == Endpoint.Backend.VLLM_OFFLINE:
            return e.queue or settings.PREFLAB_GPU_QUEUE
    for e in pool:
        if e.queue:
            return e.queue
    return settings.PREFLAB_CPU_QUEUE


def generation_job_resume(*, job: Job) -> Job:
    """Resume a cancelled/failed job, or retry the failed slots of a finished one."""
    if job.kind != JOB_KIND:
        raise ValidationError({"job": "not a generation job"})
    return job_resume_or_retry(job=job)
