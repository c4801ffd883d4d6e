"""The generation job handler: the chunk work of a generation job (one job mechanism, annotation.jobs)."""

from __future__ import annotations

import time

import orjson
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from annotation.bulk import json_text, rows_upsert
from annotation.imports.postgres import records_batch_upsert
from annotation.jobs import ChunkContext, JobCancelled, JobFailed
from annotation.models import Dataset, Job, JobChunk, JobError, Record
from annotation.text import TEXT_CLEANED_KEY
from annotation.validation import field_specs_of, record_validate

from ..llm import LLMConfigError, chat_many_groups
from ..llm_types import CANCELLED, ChatRequest, ChatResult
from ..models import Endpoint, GenerationOutput
from ..selectors import JOB_KIND, generation_job_panel
from .jobs import slot_plan
from .prompts import Prompt, prompt_messages, prompts_from_dataset, prompts_read

# --- the job handler ---------------------------------------------------------------------------

class GenerationJobHandler:
    kind = JOB_KIND
    items_word = "responses"
    done_word = "generated"
    item_label = "Prompt#slot"
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
                 "completion_tokens", "latency_s", "text_cleaned")


_OUTPUT_COLUMNS = ("job_id", "prompt_key", "slot", "endpoint", "model", "params", "text", "finish_reason", "prompt_tokens",
                   "completion_tokens", "latency_s", "attempts", "text_cleaned", "created_at")


def _outputs_insert(*, job_id: int, rows: list[tuple[dict, int]]) -> int:
    """INSERT ... ON CONFLICT DO NOTHING of new outputs in one batch (annotation.bulk.rows_upsert: COPY on
    PostgreSQL; the ORM's bulk_create costs ~0.5 ms of CPU per row here, on the thread that also feeds
    the HTTP loop). Returns how many rows were inserted: a slot another copy of the chunk stored first
    is not counted again."""
    now = timezone.now()
    return rows_upsert(model=GenerationOutput, columns=_OUTPUT_COLUMNS, conflict=["job_id", "prompt_key", "slot"],
                       update=None, rows=[
                           (job_id, r["prompt_key"], r["slot"], r["endpoint"], r["model"], json_text(r["params"]),
                            r["text"], r["finish_reason"], r["prompt_tokens"], r["completion_tokens"], r["latency_s"],
                            attempts, json_text(r.get("text_cleaned") or None), now)
                           for r, attempts in rows])


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
                   "completion_tokens": result.completion_tokens, "latency_s": round(result.latency_s, 4),
                   "text_cleaned": result.text_cleaned}
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
                if o.get("text_cleaned"):  # the model's text held what cannot be stored: say what was removed
                    metadata[name][TEXT_CLEANED_KEY] = o["text_cleaned"]
            try:
                rows.append(record_validate({"external_id": eid, "fields": fields, "metadata": metadata,
                                             "priority": priority}, self.specs))
            except ValidationError as exc:
                self.ctx.error(item=key, error=f"record not written: {exc.message_dict}")
        if rows:  # COPY on PostgreSQL (the import path), services.records_upsert elsewhere
            records_batch_upsert(dataset=self.dataset, rows=rows)
        self.assembled.update(complete)

    def _external_id(self, key: str) -> str:
        return self.prompts[key].get("external_id") or f"gen-{self.job.pk}-{key}"
