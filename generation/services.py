"""Writes of the generation app: endpoints, generation jobs, and the chunk work of those jobs.

A generation job is an annotation Job of kind "generation" (one job mechanism). Its prompts come
from an uploaded file (JSONL, CSV, Parquet) or from a dataset's records; each prompt gets n
responses ("slots"), each slot planned deterministically to one endpoint with its parameters:

    sample   k = n endpoints drawn from the pool per prompt (seeded by job seed and prompt key)
    each     every endpoint of the pool once (n = pool size)
    samples  one endpoint, n samples (optionally one temperature per slot)

Every completion is stored as a GenerationOutput with the unique key (job, prompt, slot) as it
arrives; once a prompt has all n outputs its record (prompt + response-1..n, with per-response
provenance in metadata) is upserted into the target dataset. A chunk that runs again (a retried
task, a worker killed with SIGKILL, a resume) only calls the LLM for the slots still missing.
"""
from __future__ import annotations

import csv
import os
import random
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import ProtectedError, RestrictedError, Sum
from django.utils import timezone

from annotation.jobs import ChunkContext, JobCancelled, JobFailed, job_create, job_resume_or_retry
from annotation.models import Dataset, Job, JobChunk, JobError, Question, Record, Workspace
from annotation.services import dataset_create, pairwise_dataset_spec, records_upsert, response_field_names
from annotation.validation import field_specs_of, record_validate

from .llm import CANCELLED, ChatRequest, ChatResult, LLMConfigError, chat_many_groups
from .models import Endpoint, GenerationOutput
from .selectors import JOB_KIND, generation_job_panel
STRATEGIES = ("sample", "each", "samples")
PROMPT_FORMATS = ("jsonl", "csv", "parquet")
PARAM_KEYS = ("temperature", "top_p", "top_k", "max_tokens", "seed", "stop", "presence_penalty",
              "frequency_penalty", "repetition_penalty", "min_p", "response_format", "engine")
MAX_N = 16


# --- endpoints ---------------------------------------------------------------------------------

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
KEY_LIKE_RE = re.compile(r"^(sk-|sk_|hf_|gsk_|xai-|pk-|AIza|ghp_|Bearer\s)|^[A-Za-z0-9+/=_-]{32,}$")
ENDPOINT_FIELDS = ("name", "backend", "base_url", "model", "api_key_env", "max_concurrency", "params",
                   "system_prompt", "queue", "timeout", "max_retries", "supports_json_schema")


def _endpoint_validate(values: dict, *, workspace: Workspace, instance: Endpoint | None = None) -> dict:
    unknown = set(values) - set(ENDPOINT_FIELDS)
    if unknown:
        if unknown & {"api_key", "key", "token", "secret"}:
            raise ValidationError({sorted(unknown)[0]: "API keys are never stored: put the key in an environment "
                                                        "variable of the worker and give its NAME in api_key_env"})
        raise ValidationError({sorted(unknown)[0]: "unknown field"})
    out = dict(values)
    name = out.get("name", instance.name if instance else None)
    if not name or not re.match(r"^[A-Za-z0-9_-]{1,100}$", str(name)):
        raise ValidationError({"name": "letters, digits, '-' and '_' only (1-100 characters)"})
    dup = Endpoint.objects.filter(workspace=workspace, name=name)
    if instance is not None:
        dup = dup.exclude(pk=instance.pk)
    if dup.exists():
        raise ValidationError({"name": f"an endpoint named {name!r} exists in this workspace"})
    backend = out.get("backend", instance.backend if instance else Endpoint.Backend.OPENAI_COMPATIBLE)
    if backend not in Endpoint.Backend.values:
        raise ValidationError({"backend": f"must be one of {', '.join(Endpoint.Backend.values)}"})
    model = out.get("model", instance.model if instance else "")
    if not model or len(str(model)) > 300:
        raise ValidationError({"model": "required, at most 300 characters"})
    base_url = out.get("base_url", instance.base_url if instance else "")
    if backend == Endpoint.Backend.OPENAI_COMPATIBLE:
        if not base_url or not re.match(r"^https?://[^\s/]+", str(base_url)):
            raise ValidationError({"base_url": "an http(s) URL of the OpenAI-compatible API, e.g. http://vllm:8000/v1"})
        if "@" in str(base_url).split("//", 1)[-1].split("/", 1)[0]:
            raise ValidationError({"base_url": "credentials in the URL are not stored; use api_key_env"})
    if "api_key_env" in out:
        env_name = (out["api_key_env"] or "").strip()
        looks_like_key = (KEY_LIKE_RE.match(env_name) and not env_name.isupper()) or (
            len(env_name) >= 20 and "_" not in env_name and any(c.isdigit() for c in env_name))
        if env_name and (looks_like_key or not ENV_NAME_RE.match(env_name)):
            raise ValidationError({"api_key_env": "the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                                                  "never the key itself; keys are not stored"})
        out["api_key_env"] = env_name
    if "max_concurrency" in out:
        v = out["max_concurrency"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 4096:
            raise ValidationError({"max_concurrency": "an integer from 1 to 4096"})
    if "max_retries" in out:
        v = out["max_retries"]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 20:
            raise ValidationError({"max_retries": "an integer from 0 to 20"})
    if "timeout" in out:
        v = out["timeout"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 3600:
            raise ValidationError({"timeout": "seconds, more than 0 and at most 3600"})
        out["timeout"] = float(v)
    if "params" in out:
        out["params"] = generation_params_validate(out["params"] or {}, where="params")
    if "queue" in out and out["queue"] and not re.match(r"^[A-Za-z0-9_.:-]{1,64}$", out["queue"]):
        raise ValidationError({"queue": "a Celery queue name: letters, digits, '_', '.', ':' and '-'"})
    return out


def generation_params_validate(params: Any, *, where: str = "params") -> dict:
    if not isinstance(params, dict):
        raise ValidationError({where: "an object of generation parameters"})
    for key, value in params.items():
        if key in ("api_key", "key", "token"):
            raise ValidationError({f"{where}.{key}": "API keys are never stored; use api_key_env"})
        if key in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "repetition_penalty", "min_p"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValidationError({f"{where}.{key}": "must be a number"})
            if key == "temperature" and not 0 <= value <= 5:
                raise ValidationError({f"{where}.{key}": "from 0 to 5"})
            if key == "top_p" and not 0 < value <= 1:
                raise ValidationError({f"{where}.{key}": "more than 0 and at most 1"})
        elif key in ("top_k", "max_tokens", "seed"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError({f"{where}.{key}": "must be an integer"})
            if key == "max_tokens" and value < 1:
                raise ValidationError({f"{where}.{key}": "at least 1"})
        elif key == "stop":
            if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(s, str) for s in value))):
                raise ValidationError({f"{where}.{key}": "a string or a list of strings"})
        elif key in ("response_format", "engine"):
            if not isinstance(value, dict):
                raise ValidationError({f"{where}.{key}": "must be an object"})
        elif key not in PARAM_KEYS and not re.match(r"^[a-z_][a-z0-9_]{0,63}$", key):
            raise ValidationError({f"{where}.{key}": "not a generation parameter name"})
    return dict(params)


@transaction.atomic
def endpoint_create(*, workspace: Workspace, **values: Any) -> Endpoint:
    clean = _endpoint_validate(values, workspace=workspace)
    return Endpoint.objects.create(workspace=workspace, **clean)


@transaction.atomic
def endpoint_update(*, endpoint: Endpoint, **changes: Any) -> Endpoint:
    clean = _endpoint_validate(changes, workspace=endpoint.workspace, instance=endpoint)
    for key, value in clean.items():
        setattr(endpoint, key, value)
    endpoint.save()
    return endpoint


def endpoint_delete(*, endpoint: Endpoint) -> None:
    """Delete an endpoint unless a running generation job or a judge still uses it (400 naming them)."""
    running = [pk for pk, params in Job.objects.filter(kind=JOB_KIND, workspace=endpoint.workspace_id,
                                                       status__in=Job.ACTIVE).values_list("pk", "params")
               if endpoint.name in (params or {}).get("endpoints", [])]
    if running:
        raise ValidationError({"endpoint": f"used by running generation job(s) {', '.join(map(str, running))}; "
                                           "cancel them first"})
    try:
        with transaction.atomic():
            endpoint.delete()
    except (ProtectedError, RestrictedError) as exc:
        users = sorted({str(o) for o in exc.protected_objects} if isinstance(exc, ProtectedError)
                       else {str(o) for o in exc.restricted_objects})
        raise ValidationError({"endpoint": f"still used by {', '.join(users[:10])}; delete or change those first"})


# --- prompts -----------------------------------------------------------------------------------

@dataclass
class Prompt:
    key: str
    prompt: Any          # a string, or a chat (list of {role, content})
    external_id: str | None = None  # the record id to write (the prompt's id, or a source record's)

    def to_spec(self) -> dict:
        return {"key": self.key, "prompt": self.prompt, "external_id": self.external_id}


def prompts_file_save(*, uploaded, filename: str) -> str:
    """Keep an uploaded prompt file under MEDIA_ROOT/generation/; returns its path."""
    folder = Path(settings.MEDIA_ROOT) / "generation"
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(filename or "prompts"))[-100:] or "prompts"
    path = folder / f"{uuid.uuid4().hex[:12]}-{safe}"
    with open(path, "wb") as out:
        if hasattr(uploaded, "chunks"):
            for chunk in uploaded.chunks():
                out.write(chunk)
        elif isinstance(uploaded, (bytes, bytearray)):
            out.write(uploaded)
        else:
            while True:
                block = uploaded.read(1 << 20)
                if not block:
                    break
                out.write(block)
    return str(path)


def prompt_format_of(path: str, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in PROMPT_FORMATS:
            raise ValidationError({"format": f"must be one of {', '.join(PROMPT_FORMATS)}"})
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix in ("csv", "tsv"):
        return "csv"
    if suffix in ("parquet", "pq"):
        return "parquet"
    raise ValidationError({"prompts": "cannot tell the format from the file name; give format jsonl, csv or parquet"})


def _prompt_value(value: Any, where: str) -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise ValidationError({"prompts": f"{where}: the prompt is empty"})
        return value
    if isinstance(value, list) and value:
        for i, m in enumerate(value):
            if (not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool")
                    or not isinstance(m.get("content"), str)):
                raise ValidationError({"prompts": f"{where}: message {i} needs a role and a string content"})
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise ValidationError({"prompts": f"{where}: the prompt must be a non-empty string or a list of chat messages"})


def prompts_read(*, path: str, fmt: str | None = None, column: str = "prompt",
                 id_column: str | None = None) -> list[Prompt]:
    """Read a prompt file; a bad line raises ValidationError naming the line (nothing is written)."""
    fmt = prompt_format_of(path, fmt)
    column = column or "prompt"
    rows: Iterable[tuple[int, dict]]
    try:
        if fmt == "jsonl":
            rows = _jsonl_rows(path)
        elif fmt == "csv":
            rows = _csv_rows(path)
        else:
            rows = _parquet_rows(path, [c for c in (column, id_column) if c])
        out: list[Prompt] = []
        seen: set[str] = set()
        for line, row in rows:
            where = f"line {line}" if fmt != "parquet" else f"row {line}"
            if column not in row:
                raise ValidationError({"column": f"{where}: no column {column!r} (columns: {', '.join(map(str, row))})"})
            prompt = _prompt_value(row[column], where)
            if id_column:
                if id_column not in row or row[id_column] in (None, ""):
                    raise ValidationError({"id_column": f"{where}: no value in column {id_column!r}"})
                key = str(row[id_column])
                if len(key) > 200:
                    raise ValidationError({"id_column": f"{where}: the id is longer than 200 characters"})
                external_id = key
            else:
                key, external_id = str(line), None
            if key in seen:
                raise ValidationError({"id_column": f"{where}: duplicate id {key!r}"})
            seen.add(key)
            out.append(Prompt(key=key, prompt=prompt, external_id=external_id))
    except FileNotFoundError:
        raise ValidationError({"prompts": f"no such file: {path}"})
    except UnicodeDecodeError as exc:
        raise ValidationError({"prompts": f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})"})
    if not out:
        raise ValidationError({"prompts": "the file has no prompts"})
    return out


def _jsonl_rows(path: str):
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValidationError({"prompts": f"line {line_no}: not valid JSON ({exc})"})
            if not isinstance(row, dict):
                raise ValidationError({"prompts": f"line {line_no}: each line must be a JSON object"})
            yield line_no, row


def _csv_rows(path: str):
    with open(path, newline="", encoding="utf-8-sig") as f:
        sample = f.read(65536)
        f.seek(0)
        delimiter = "\t" if path.endswith(".tsv") or sample.count("\t") > sample.count(",") else ","
        reader = csv.DictReader(f, delimiter=delimiter)
        for row in reader:
            # reader.line_num is the physical line where this row ends (the header is line 1)
            yield reader.line_num, row


def _parquet_rows(path: str, columns: list[str]):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise ValidationError({"prompts": f"not a readable Parquet file: {exc}"})
    names = pf.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValidationError({"column": f"no column {missing[0]!r} in the Parquet file (columns: {', '.join(names)})"})
    row_no = 0
    for batch in pf.iter_batches(columns=columns, batch_size=2048):
        for row in batch.to_pylist():
            row_no += 1
            yield row_no, row


def prompts_from_dataset(*, dataset: Dataset, field: str | None = None) -> list[Prompt]:
    field = field or dataset.prompt_field
    if not dataset.fields.filter(name=field).exists():
        raise ValidationError({"prompts_dataset": f"the dataset {dataset.name!r} has no field {field!r}"})
    out = []
    for external_id, fields in (Record.objects.filter(dataset=dataset).order_by("id")
                                .values_list("external_id", "fields").iterator(chunk_size=2000)):
        value = (fields or {}).get(field)
        if value in (None, "", []):
            continue
        out.append(Prompt(key=external_id, prompt=_prompt_value(value, f"record {external_id}"),
                          external_id=external_id))
    if not out:
        raise ValidationError({"prompts_dataset": f"no record of {dataset.name!r} has a {field!r} value"})
    return out


def prompt_messages(prompt: Any) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


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


# --- the job handler ---------------------------------------------------------------------------

class GenerationJobHandler:
    kind = JOB_KIND
    items_word = "responses"
    detail_template = "generation/partials/job_panel.html"

    def detail_context(self, job: Job) -> dict:
        return generation_job_panel(job)

    def retry_failed(self, job: Job) -> bool:
        """The chunks with failed slots run again; a re-run only calls the LLM for missing slots."""
        if not job.failed and not JobError.objects.filter(job=job).exists():
            return False
        job.chunks.filter(failed__gt=0).update(status=JobChunk.Status.PENDING)
        return True

    def plan(self, job: Job, plan_input: list[Prompt] | None = None) -> list[dict]:
        """plan_input: the prompts generation_job_create read; without them, read from the source."""
        prompts = plan_input if plan_input is not None else _prompts_for_params(job.params)
        n = int(job.params["n"])
        size = int(job.params.get("chunk_size") or 256)
        job.total = len(prompts) * n
        specs = []
        for start in range(0, len(prompts), size):
            specs.append({"prompts": [p.to_spec() for p in prompts[start:start + size]]})
        return specs

    def run_chunk(self, job: Job, chunk: JobChunk, ctx: ChunkContext) -> None:
        try:
            GenerationChunkRun(job, chunk, ctx).run()
        except (LLMConfigError, ValidationError) as exc:
            # A configuration problem (API key variable not set on this worker, endpoint deleted):
            # retrying cannot help. The job fails now with the reason; the chunk stays pending,
            # so a resume after the fix runs it.
            message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            raise JobFailed(message) from exc

    def finish(self, job: Job) -> None:
        outputs = GenerationOutput.objects.filter(job=job)
        totals = outputs.aggregate(p=Sum("prompt_tokens"), c=Sum("completion_tokens"))
        job.done = outputs.count()
        job.failed = JobError.objects.filter(job=job, item__contains="#").count()
        job.tokens = (totals["p"] or 0) + (totals["c"] or 0)
        records = Record.objects.filter(dataset_id=job.dataset_id, metadata__generation__job=job.pk).count()
        started = job.started_at or job.created_at
        seconds = max(1e-9, (timezone.now() - started).total_seconds())
        job.result = {"records": records, "responses": job.done, "failed_responses": job.failed,
                      "prompt_tokens": totals["p"] or 0, "completion_tokens": totals["c"] or 0,
                      "seconds": round(seconds, 2), "responses_per_second": round(job.done / seconds, 2)}


def _prompts_for_params(params: dict) -> list[Prompt]:
    source = params["source"]
    if source["type"] == "file":
        return prompts_read(path=source["path"], fmt=source["format"], column=source["column"],
                            id_column=source.get("id_column"))
    return prompts_from_dataset(dataset=Dataset.objects.get(pk=source["dataset"]), field=source.get("field"))


FLUSH_EVERY = 512        # results
FLUSH_SECONDS = 1.0
OUTPUT_FIELDS = ("prompt_key", "slot", "endpoint", "model", "params", "text", "finish_reason", "prompt_tokens",
                 "completion_tokens", "latency_s")


def _outputs_insert(*, job_id: int, rows: list[tuple[dict, int]]) -> int:
    """INSERT ... ON CONFLICT DO NOTHING of new outputs in one executemany (the ORM's bulk_create
    costs ~0.5 ms of CPU per row here, on the thread that also feeds the HTTP loop). Returns how many
    rows were inserted: a slot another copy of the chunk stored first is not counted again."""
    table = GenerationOutput._meta.db_table
    json_param = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    sql = (f'INSERT INTO "{table}" (job_id, prompt_key, slot, endpoint, model, params, text, finish_reason, '
           f"prompt_tokens, completion_tokens, latency_s, attempts, created_at) VALUES "
           f"(%s, %s, %s, %s, %s, {json_param}, %s, %s, %s, %s, %s, %s, %s) "
           f"ON CONFLICT (job_id, prompt_key, slot) DO NOTHING")
    now = timezone.now()
    if connection.vendor == "sqlite":
        now = now.isoformat(sep=" ").replace("+00:00", "")
    params = [(job_id, r["prompt_key"], r["slot"], r["endpoint"], r["model"], orjson.dumps(r["params"]).decode(),
               r["text"], r["finish_reason"], r["prompt_tokens"], r["completion_tokens"], r["latency_s"], attempts, now)
              for r, attempts in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
        return max(cursor.rowcount, 0)


class GenerationChunkRun:
    """One chunk: call the LLMs for the missing slots, store outputs in batches, assemble records.

    The chunk's outputs are kept in memory (loaded from the database at the start, so a re-run
    knows what exists), so a flush is: one bulk INSERT of new outputs, one counter UPDATE, and one
    upsert of the records that became complete.
    """

    def __init__(self, job: Job, chunk: JobChunk, ctx: ChunkContext):
        self.job, self.chunk, self.ctx = job, chunk, ctx
        p = job.params
        self.n = int(p["n"])
        self.strategy = p["strategy"]
        self.pool = list(p["endpoints"])
        self.seed = int(p.get("seed") or 0)
        self.temperatures = p.get("temperatures")
        self.overrides = p.get("overrides") or {}
        self.endpoints = {e.name: e for e in Endpoint.objects.filter(workspace_id=job.workspace_id, name__in=self.pool)}
        missing = [name for name in self.pool if name not in self.endpoints]
        if missing:
            raise ValidationError({"endpoints": f"endpoint {missing[0]!r} was deleted; re-create it to run this job"})
        self.prompts = {s["key"]: s for s in chunk.spec["prompts"]}
        self.dataset = job.dataset
        self.specs = field_specs_of(self.dataset)
        self.buffer: list[ChatResult] = []
        self.slot_info: dict[str, dict] = {}
        self.last_flush = time.monotonic()
        self.assembled: set[str] = set()
        self.outputs: dict[str, dict[int, dict]] = {}
        self.rerun = False
        self.error_items: set[str] = set()

    def _slot_params(self, endpoint: Endpoint, slot: int, slot_params: dict) -> dict:
        merged = {**(endpoint.params or {}), **self.overrides.get(endpoint.name, {}), **slot_params}
        merged.pop("engine", None)
        if self.strategy == "samples" and "seed" in merged and merged["seed"] is not None:
            merged["seed"] = int(merged["seed"]) + slot  # same endpoint n times: different samples
        return merged

    def run(self) -> None:
        keys = list(self.prompts)
        for start in range(0, len(keys), 1000):
            for row in (GenerationOutput.objects.filter(job=self.job, prompt_key__in=keys[start:start + 1000])
                        .values(*OUTPUT_FIELDS)):
                self.outputs.setdefault(row["prompt_key"], {})[row["slot"]] = row
        stored = sum(len(v) for v in self.outputs.values())
        self.rerun = stored > 0
        # what earlier runs stored is done (counted from the rows, under the chunk's lock, so a copy of
        # this chunk running at the same time cannot have counted them too); failed slots run again
        self.ctx.counts_set(lambda: (self._stored_count(keys), 0))
        self.error_items = set(JobError.objects.filter(job=self.job, item__contains="#").values_list("item", flat=True))
        groups: dict[str, list[ChatRequest]] = {name: [] for name in self.pool}
        for key, spec in self.prompts.items():
            messages = prompt_messages(spec["prompt"])
            have = self.outputs.get(key, {})
            for slot, (ep_name, slot_params) in enumerate(slot_plan(
                    prompt_key=key, strategy=self.strategy, pool=self.pool, n=self.n, seed=self.seed,
                    temperatures=self.temperatures)):
                if slot in have:
                    continue
                endpoint = self.endpoints[ep_name]
                params = self._slot_params(endpoint, slot, slot_params)
                item = f"{key}#{slot}"
                self.slot_info[item] = {"prompt_key": key, "slot": slot, "endpoint": endpoint, "params": params}
                # the request carries the full merged params, so what is stored is what was sent
                groups[ep_name].append(ChatRequest(key=item, messages=messages, params=params))
        work = [(self.endpoints[name], reqs) for name, reqs in groups.items() if reqs]
        cancelled = False
        if work:
            def should_stop() -> bool:
                nonlocal cancelled
                try:
                    self.ctx.check_cancelled()
                except JobCancelled:
                    cancelled = True
                return cancelled

            chat_many_groups(work, on_result=self._on_result, should_stop=should_stop)
        self._flush()
        if cancelled:
            raise JobCancelled()
        self._assemble(keys)

    def _stored_count(self, keys: list[str]) -> int:
        return sum(GenerationOutput.objects.filter(job=self.job, prompt_key__in=keys[start:start + 1000]).count()
                   for start in range(0, len(keys), 1000))

    def _on_result(self, result: ChatResult) -> None:
        self.buffer.append(result)
        if len(self.buffer) >= FLUSH_EVERY or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self._flush()

    def _flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.buffer:
            return
        buffer, self.buffer = self.buffer, []
        rows, new, failed, tokens, touched = [], [], [], 0, set()
        for result in buffer:
            if result.error == CANCELLED:
                continue
            info = self.slot_info[result.key]
            error = result.error
            if error is None and not (result.text or "").strip():
                error = f"the model returned no text (finish_reason={result.finish_reason})"
            if error is not None:
                failed.append((result, info, error))
                continue
            endpoint = info["endpoint"]
            row = {"prompt_key": info["prompt_key"], "slot": info["slot"], "endpoint": endpoint.name,
                   "model": endpoint.model, "params": info["params"], "text": result.text,
                   "finish_reason": result.finish_reason or "", "prompt_tokens": result.prompt_tokens,
                   "completion_tokens": result.completion_tokens, "latency_s": round(result.latency_s, 4)}
            rows.append((row, result.attempts))
            new.append(row)
            tokens += result.prompt_tokens + result.completion_tokens
            touched.add(info["prompt_key"])
        recovered = [r.key for r in buffer if r.error is None and r.key in self.error_items]
        inserted = 0
        with transaction.atomic():
            if rows:
                inserted = _outputs_insert(job_id=self.job.pk, rows=rows)
            if recovered:
                JobError.objects.filter(job_id=self.job.pk, item__in=recovered).delete()
                self.error_items.difference_update(recovered)
            for result, info, error in failed:
                raw = result.raw if isinstance(result.raw, str) else orjson.dumps(result.raw).decode() if result.raw else ""
                self.ctx.error(item=result.key, error=f"{info['endpoint'].name}: {error} (after {result.attempts} attempts)",
                               raw=raw)
                self.error_items.add(result.key)
            self.ctx.progress(done=inserted, failed=len(failed), tokens=tokens)
        for row in new:
            self.outputs.setdefault(row["prompt_key"], {}).setdefault(row["slot"], row)
        if touched:
            self._assemble(sorted(touched))

    def _assemble(self, keys: list[str]) -> None:
        """Upsert the records of the prompts (among keys) that have all n outputs."""
        complete = [k for k in keys if k not in self.assembled and len(self.outputs.get(k, {})) == self.n]
        if not complete:
            return
        ext_ids = {k: self._external_id(k) for k in complete}
        # a record may exist already: one this job wrote before (a re-run), or the prompt's own
        # record (ids from the file, or prompts taken from this dataset): keep its other fields
        maybe_existing = [eid for k, eid in ext_ids.items() if self.rerun or self.prompts[k].get("external_id")]
        existing = {}
        for start in range(0, len(maybe_existing), 1000):
            existing.update({eid: (fields, metadata, priority) for eid, fields, metadata, priority in
                             Record.objects.filter(dataset=self.dataset, external_id__in=maybe_existing[start:start + 1000])
                             .values_list("external_id", "fields", "metadata", "priority")})
        rows = []
        prompt_field = self.dataset.prompt_field
        for key in complete:
            outs = self.outputs[key]
            eid = ext_ids[key]
            old_fields, old_meta, priority = existing.get(eid, ({}, {}, 0.0))
            fields = {**(old_fields or {}), prompt_field: self.prompts[key]["prompt"]}
            metadata = dict(old_meta or {})
            metadata["generation"] = {"job": self.job.pk, "strategy": self.strategy, "prompt_key": key}
            for slot in range(self.n):
                o = outs[slot]
                name = f"response-{slot + 1}"
                fields[name] = o["text"]
                metadata[name] = {"endpoint": o["endpoint"], "model": o["model"], "params": o["params"],
                                  "prompt_tokens": o["prompt_tokens"], "completion_tokens": o["completion_tokens"],
                                  "latency_s": o["latency_s"], "finish_reason": o["finish_reason"]}
            try:
                rows.append(record_validate({"external_id": eid, "fields": fields, "metadata": metadata,
                                             "priority": priority}, self.specs))
            except ValidationError as exc:
                self.ctx.error(item=key, error=f"record not written: {exc.message_dict}")
        if rows:
            records_upsert(dataset=self.dataset, rows=rows)
        self.assembled.update(complete)

    def _external_id(self, key: str) -> str:
        return self.prompts[key].get("external_id") or f"gen-{self.job.pk}-{key}"
