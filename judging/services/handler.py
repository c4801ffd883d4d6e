"""The judge job handler: the chunk work of a judge job, what it writes, and its summary."""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.db.models.fields.json import KT
from django.utils import timezone

from annotation.bulk import IdsIn, json_text, rows_upsert
from annotation.jobs import ChunkContext, JobCancelled
from annotation.models import Dataset, Job, JobChunk, JobError, Record, Suggestion
from annotation.services import record_priority_set, records_upsert, suggestions_upsert
from annotation.text import TEXT_CLEANED_KEY
from generation.llm import chat_many
from generation.llm_types import ChatRequest, ChatResult

from .. import judges as J
from ..models import Judge, JudgeOutput, JudgeVerdict
from ..parsers import JudgeParseError, parse_preference, parse_ratings, parse_revision
from ..scoring import (
    JudgeView,
    compare_value,
    margin_of,
    pairwise_ranking,
    pairwise_wins,
    position_bias_of,
    preference_top,
    preference_value,
    priority_from,
    ranking_from_ratings,
    top_fields,
    uncertainty_from_margin,
)
from ..selectors import JOB_KIND, cleaning_flips_count, judge_job_panel
from .jobs import default_chunk_size, first_chunk_size
from .layout import dataset_layout

log = logging.getLogger(__name__)

FLUSH_SECONDS = float(os.environ.get("PREFLAB_JUDGE_FLUSH_SECONDS", "1.0"))  # write batches at least this often
FLUSH_RECORDS = 500


# --- the job handler ---------------------------------------------------------------------------

class _Out:
    """A JudgeOutput row while its chunk runs (a plain object: a model instance per call costs more
    than the call's own bookkeeping); written by flush with rows_upsert."""

    __slots__ = ("record_id", "call_key", "shown_order", "raw_text", "parsed", "error", "attempts", "failed_attempts",
                 "finish_reason", "prompt_tokens", "completion_tokens", "text_cleaned", "stored")

    def __init__(self, *, record_id: int, call_key: str, shown_order: list[str], raw_text: str = "", parsed=None,
                 error: str = "", attempts: int = 0, failed_attempts: list | None = None, finish_reason: str = "",
                 prompt_tokens: int = 0, completion_tokens: int = 0, text_cleaned: dict | None = None,
                 stored: bool = False):
        self.record_id, self.call_key, self.shown_order = record_id, call_key, shown_order
        self.raw_text, self.parsed, self.error, self.attempts = raw_text, parsed, error, attempts
        self.failed_attempts = failed_attempts if failed_attempts is not None else []
        self.finish_reason, self.prompt_tokens, self.completion_tokens = finish_reason, prompt_tokens, completion_tokens
        self.text_cleaned, self.stored = text_cleaned, stored


# what a chunk reads of its records (the prompt, the texts to judge, how to name them in errors)
_RECORD_READ = ("id", "external_id", "fields", "metadata")
_OUT_FIELDS = ("record_id", "call_key", "shown_order", "raw_text", "parsed", "error", "attempts", "failed_attempts",
               "finish_reason", "prompt_tokens", "completion_tokens", "text_cleaned")


@dataclass(slots=True)
class _Verdict:
    """A JudgeVerdict row to write (flush)."""
    record_id: int
    status: str
    result: dict = field(default_factory=dict)
    error: str = ""


@dataclass
class _Pending:
    record: Record
    calls: dict[str, J.PlannedCall]
    outputs: dict[str, _Out]
    answer_field: str | None = None
    unresolved: set[str] = field(default_factory=set)


class _ChunkRun:
    """The state of one chunk while its calls are in flight; writes happen in `flush`."""

    def __init__(self, job: Job, chunk: JobChunk, ctx: ChunkContext):
        self.job, self.chunk, self.ctx = job, chunk, ctx
        self.judge = Judge.objects.select_related("endpoint").get(pk=job.params["judge_id"])
        self.dataset = job.dataset
        self.layout = dataset_layout(self.dataset)
        self.target = (Dataset.objects.get(pk=job.params["target_dataset_id"])
                       if job.params.get("target_dataset_id") else None)
        self.pending: dict[int, _Pending] = {}
        self.dirty_outputs: dict[tuple[int, str], _Out] = {}
        self.settled: list[int] = []
        self.tokens = 0
        self.last_flush = time.monotonic()

    # -- planning --
    def _answer_field(self, record: Record) -> str | None:
        wanted = self.job.params.get("answer_field")
        if wanted:
            return wanted
        chosen = (record.metadata or {}).get("original_chosen")
        if isinstance(chosen, str) and chosen in record.fields:
            return chosen
        return self.layout.fields[0] if self.layout.fields else None

    def plan(self) -> list[tuple[_Pending, str]]:
        ids = list(self.chunk.spec.get("record_ids", []))

        def counts() -> tuple[int, int]:
            # what earlier runs wrote: one verdict per record; a record deleted since the job was
            # planned (its verdict goes with it) counts as failed, so the totals add up
            statuses = list(JudgeVerdict.objects.filter(IdsIn("record_id", ids), job=self.job).values_list("status", flat=True))
            failed = sum(1 for s in statuses if s == JudgeVerdict.Status.FAILED)
            gone = len(ids) - Record.objects.filter(IdsIn("pk", ids)).count()
            return len(statuses) - failed, failed + gone

        self.ctx.counts_set(counts)
        done = set(JudgeVerdict.objects.filter(IdsIn("record_id", ids), job=self.job).values_list("record_id", flat=True))
        todo = [i for i in ids if i not in done]
        stored: dict[tuple[int, str], _Out] = {
            (row[0], row[1]): _Out(**dict(zip(_OUT_FIELDS, row)), stored=True)
            for row in JudgeOutput.objects.filter(IdsIn("record_id", todo), job=self.job).values_list(*_OUT_FIELDS)}
        calls: list[tuple[_Pending, str]] = []
        records = list(Record.objects.filter(IdsIn("pk", todo)).only(*_RECORD_READ).order_by("pk"))
        gone = len(todo) - len(records)
        if gone:  # deleted since the job was planned: counted as failed above
            self.ctx.error(item=f"chunk {self.chunk.index}", error=f"{gone} records were deleted before judging")
        for record in records:
            clair = self.judge.method == Judge.Method.CLAIR
            answer_field = self._answer_field(record) if clair else None
            needed = [answer_field] if clair else self.layout.fields
            missing = [f or "(none)" for f in needed if not f or record.fields.get(f) in (None, "", [])]
            if missing:
                self._fail_unplanned(record, f"the record has no {', '.join(missing)} to judge")
                continue
            planned = J.calls_for(self.judge, record, prompt_field=self.layout.prompt_field, fields=self.layout.fields,
                                  answer_field=answer_field)
            p = _Pending(record=record, calls={c.call_key: c for c in planned}, outputs={}, answer_field=answer_field)
            for key, call in p.calls.items():
                out = stored.get((record.pk, key))
                if out is None:
                    out = _Out(record_id=record.pk, call_key=key, shown_order=call.shown_order)
                p.outputs[key] = out
                if not self._settled(out):
                    p.unresolved.add(key)
                    calls.append((p, key))
            self.pending[record.pk] = p
            if not p.unresolved:
                self.settled.append(record.pk)
        return calls

    def _settled(self, out: _Out) -> bool:
        """A stored output needs no more calls: parsed, a transport error, or out of parse retries."""
        if not out.stored and not out.attempts:
            return False
        if out.parsed is not None and not out.error:
            return True
        return out.attempts > self.judge.max_parse_retries or out.finish_reason == "transport-error"

    def _fail_unplanned(self, record: Record, error: str) -> None:
        with transaction.atomic():
            self._chunk_lock()
            _v, created = JudgeVerdict.objects.get_or_create(
                job=self.job, record=record,
                defaults={"judge": self.judge, "status": JudgeVerdict.Status.FAILED, "error": error})
            self.ctx.error(item=f"record {record.external_id}", error=error)
            if created:
                self.ctx.progress(failed=1)

    def _chunk_lock(self) -> None:
        """Lock the chunk's row until the caller's transaction ends: the writes (and counts) of two
        copies of the chunk running at once happen one after the other."""
        list(JobChunk.objects.select_for_update().filter(pk=self.chunk.pk).values_list("pk", flat=True))

    # -- results --
    def request_for(self, p: _Pending, key: str) -> ChatRequest:
        call = p.calls[key]
        out = p.outputs[key]
        if out.attempts and out.error:
            messages = J.retry_messages(call, out.error)
            params = J.retry_params(call, out.attempts)
        else:
            messages, params = call.messages, call.params
        return ChatRequest(key=f"{p.record.pk}|{key}", messages=messages, params=params)

    def on_result(self, result: ChatResult) -> None:
        if result.cancelled:
            return
        record_id, key = result.key.split("|", 1)
        p = self.pending[int(record_id)]
        out, call = p.outputs[key], p.calls[key]
        out.attempts += 1
        out.prompt_tokens += result.prompt_tokens
        out.completion_tokens += result.completion_tokens
        self.tokens += result.prompt_tokens + result.completion_tokens
        if result.error is not None:
            out.raw_text, out.parsed, out.error = "", None, f"LLM call failed: {result.error}"
            out.finish_reason = "transport-error"
            out.text_cleaned = None
        else:
            out.raw_text = result.text or ""
            out.text_cleaned = result.text_cleaned  # what annotation.text removed from the model's text, if anything
            out.finish_reason = (result.finish_reason or "")[:40]
            try:
                out.parsed = self._parse(call, result)
                out.error = ""
            except JudgeParseError as exc:
                out.parsed = None
                out.error = str(exc) + (" (output cut off: finish_reason=length)"
                                        if result.finish_reason == "length" else "")
                out.failed_attempts = [*(out.failed_attempts or []), {"text": out.raw_text[:20_000], "error": out.error}]
        self.dirty_outputs[(p.record.pk, key)] = out
        if self._settled(out):
            p.unresolved.discard(key)
            if not p.unresolved:
                self.settled.append(p.record.pk)
        if time.monotonic() - self.last_flush >= FLUSH_SECONDS or len(self.settled) >= FLUSH_RECORDS:
            self.flush()

    def _parse(self, call: J.PlannedCall, result: ChatResult) -> dict:
        text = result.text
        if call.kind == "ratings":
            parsed = parse_ratings(text, len(call.shown_order))
            # map back from the shown order (Text 1..n) to the dataset's fields
            return {"ratings": dict(zip(call.shown_order, parsed.ratings)),
                    "rationales": dict(zip(call.shown_order, parsed.rationales)),
                    "aspect": call.meta.get("aspect"), "format": parsed.format}
        if call.kind == "pair":
            pref = parse_preference(text)
            return {"preferred": pref.preferred, "reasoning": pref.reasoning, "format": pref.format}
        rev = parse_revision(text, finish_reason=result.finish_reason)
        return {"revision": rev.revision, "reasoning": rev.reasoning, "format": rev.format}

    def retry_round(self) -> list[tuple[_Pending, str]]:
        return [(p, key) for p in self.pending.values() for key in sorted(p.unresolved)]

    # -- writing --
    def flush(self) -> None:
        self.last_flush = time.monotonic()
        settled, self.settled = self.settled, []
        outputs, self.dirty_outputs = list(self.dirty_outputs.values()), {}
        done = failed = 0
        errors: list[tuple[Record, str, str]] = []
        with transaction.atomic():
            # The same chunk may run twice at once (a redelivered task while the first run is still
            # going): the chunk row lock serializes the two runs' writes, and records another run
            # already settled are neither rewritten nor counted again, so the totals stay exact.
            self._chunk_lock()
            if settled:
                already = set(JudgeVerdict.objects.filter(IdsIn("record_id", settled), job=self.job)
                              .values_list("record_id", flat=True))
                if already:
                    for record_id in already:
                        self.pending.pop(record_id, None)
                    settled = [r for r in settled if r not in already]
            now = timezone.now()
            if outputs:
                rows_upsert(model=JudgeOutput, columns=_OUTPUT_COLUMNS,
                            rows=[_output_row(self.job.pk, self.judge.pk, o, now) for o in outputs],
                            conflict=["job_id", "record_id", "call_key"], update=_OUTPUT_UPDATE)
            verdicts: list[_Verdict] = []
            suggestions: list[dict] = []
            target_rows: list[dict] = []
            target_suggestions: list[dict] = []
            for record_id in settled:
                p = self.pending.pop(record_id)
                verdict, sugg, target = self._verdict(p)
                verdicts.append(verdict)
                suggestions.extend(sugg)
                if target is not None:
                    target_rows.append(target[0])
                    target_suggestions.append(target[1])
                if verdict.status == JudgeVerdict.Status.FAILED:
                    failed += 1
                    raw = "\n\n".join(f"[{k}] {o.raw_text}" for k, o in p.outputs.items() if o.error)
                    errors.append((p.record, verdict.error, raw))
                else:
                    done += 1
            if verdicts:
                rows_upsert(model=JudgeVerdict, columns=_VERDICT_COLUMNS, conflict=["job_id", "record_id"], update=None,
                            rows=[(self.job.pk, v.record_id, self.judge.pk, str(v.status), json_text(v.result), v.error, now)
                                  for v in verdicts])
            if suggestions:
                counts = suggestions_upsert(dataset=self.dataset, items=suggestions)
                if counts.errors:  # a bug, not bad input: the values come from the dataset's own questions
                    raise RuntimeError(f"suggestions rejected: {counts.errors[:3]}")
                self._priorities_update({s["record"] for s in suggestions})
            if target_rows:
                records_upsert(dataset=self.target, rows=target_rows)
                counts = suggestions_upsert(dataset=self.target, items=target_suggestions)
                if counts.errors:
                    raise RuntimeError(f"CLAIR suggestions rejected: {counts.errors[:3]}")
            for record, error, raw in errors:
                self.ctx.error(item=f"record {record.external_id}", error=error, raw=raw)
            if done or failed or self.tokens:
                self.ctx.progress(done=done, failed=failed, tokens=self.tokens)
                self.tokens = 0
        for record, _e, _r in errors:
            log.info("judge job %s: record %s failed", self.job.pk, record.pk)

    def _verdict(self, p: _Pending) -> tuple[_Verdict, list[dict], tuple[dict, dict] | None]:
        errors = [f"{k}: {o.error}" for k, o in p.outputs.items() if o.error or o.parsed is None]
        if errors:
            attempts = max(o.attempts for o in p.outputs.values())
            msg = "; ".join(errors) + f" (after {attempts} attempt{'s' if attempts != 1 else ''})"
            return (_Verdict(record_id=p.record.pk, status=JudgeVerdict.Status.FAILED,
                                 error=msg[:10_000]), [], None)
        if self.judge.method == Judge.Method.CLAIR:
            return self._clair_verdict(p)
        if self.judge.method == Judge.Method.PAIRWISE:
            result, rationale, raw = self._pairwise_result(p)
        else:
            result, rationale, raw = self._ratings_result(p)
        if cleaned := _text_cleaned(p):
            raw[TEXT_CLEANED_KEY] = cleaned
        verdict = _Verdict(record_id=p.record.pk, status=JudgeVerdict.Status.OK,
                               result=result)
        return verdict, self._suggestions(p.record, result, rationale, raw), None

    def _ratings_result(self, p: _Pending) -> tuple[dict, str, dict]:
        fields = self.layout.fields
        per_aspect = {o.parsed["aspect"]: o.parsed for o in p.outputs.values()}
        if len(per_aspect) == 1:
            only = next(iter(per_aspect.values()))
            ratings = {f: only["ratings"][f] for f in fields}
            rationales = {f: only["rationales"][f] for f in fields}
            output: Any = next(iter(p.outputs.values())).raw_text
        else:  # overall = mean of the four aspects
            ratings = {f: round(sum(a["ratings"][f] for a in per_aspect.values()) / len(per_aspect), 4) for f in fields}
            rationales = {f: "\n".join(f"{asp}: {a['rationales'][f]}" for asp, a in per_aspect.items()
                                       if a["rationales"][f]) for f in fields}
            output = {o.parsed["aspect"]: o.raw_text for o in p.outputs.values()}
        ranking = ranking_from_ratings(ratings, fields)
        margin = margin_of(ratings)
        result = {"ratings": ratings, "ranking": ranking, "margin": margin,
                  "uncertainty": uncertainty_from_margin(margin),
                  "shown_order": next(iter(p.outputs.values())).shown_order,
                  "aspects": {asp: a["ratings"] for asp, a in per_aspect.items()} if len(per_aspect) > 1 else None}
        rationale = "\n\n".join(f"{f} ({_fmt(ratings[f])}/5): {rationales[f]}".rstrip(": ").rstrip() for f in fields)
        raw = {"ratings": ratings, "rationales": rationales, "aspect": self.judge.aspect, "output": output,
               "method": self.judge.method, "margin": margin, "uncertainty": result["uncertainty"],
               "shown_order": result["shown_order"], "judge": self.judge.name, "job": self.job.pk}
        if result["aspects"]:
            raw["aspect_ratings"] = result["aspects"]
        return result, rationale, raw

    def _pairwise_result(self, p: _Pending) -> tuple[dict, str, dict]:
        fields = self.layout.fields
        verdicts = J.pair_verdicts(fields, {key: o.parsed["preferred"] for key, o in p.outputs.items()})
        wins = pairwise_wins(verdicts, fields)
        ranking = pairwise_ranking(verdicts, fields)
        confidence = round(sum(v.confidence for v in verdicts) / len(verdicts), 4)
        consistent = all(v.consistent for v in verdicts)
        favoured = next((v.favoured_position for v in verdicts if v.favoured_position), None)
        result = {"ranking": ranking, "wins": wins, "confidence": confidence, "margin": confidence,
                  "uncertainty": round(1.0 - confidence, 4), "consistent": consistent,
                  "pairs": [{"first": v.first, "second": v.second, "winner": v.winner, "confidence": v.confidence,
                             "consistent": v.consistent, "favoured_position": v.favoured_position} for v in verdicts],
                  "inconsistent_pairs": sum(1 for v in verdicts if not v.consistent),
                  "favoured_position": favoured}
        rationale = "\n\n".join(f"[{o.shown_order[0]} as A, {o.shown_order[1]} as B] preferred "
                                f"{o.parsed['preferred']}: {o.parsed['reasoning']}".rstrip(": ")
                                for o in p.outputs.values())
        raw = {"method": "pairwise", "pairs": result["pairs"], "wins": wins, "confidence": confidence,
               "consistent": consistent, "uncertainty": result["uncertainty"], "aspect": self.judge.aspect,
               "output": {k: o.raw_text for k, o in p.outputs.items()}, "judge": self.judge.name,
               "job": self.job.pk}
        # compares questions read "ratings": wins stand in for them
        result["ratings"] = wins
        return result, rationale, raw

    def _suggestions(self, record: Record, result: dict, rationale: str, raw: dict) -> list[dict]:
        agent = self.judge.agent
        out = []
        score = result["margin"]
        if self.layout.ranking_question:
            out.append({"record": record.pk, "question": self.layout.ranking_question, "value": result["ranking"],
                        "score": score, "agent": agent, "rationale": rationale, "raw": raw})
        for qname, compares in self.layout.compares_questions:
            if all(c in result["ratings"] for c in compares):
                out.append({"record": record.pk, "question": qname,
                            "value": compare_value(result["ratings"], compares),
                            "score": score, "agent": agent, "rationale": rationale, "raw": raw})
        for qname, compares, scale in self.layout.preference_questions:
            if all(c in result["ratings"] for c in compares):
                value = preference_value(result["ratings"], compares, scale, result["uncertainty"])
                if value is not None:
                    out.append({"record": record.pk, "question": qname, "value": value,
                                "score": score, "agent": agent, "rationale": rationale, "raw": raw})
        return out

    def _clair_verdict(self, p: _Pending) -> tuple[_Verdict, list[dict], tuple[dict, dict] | None]:
        out = p.outputs["clair"]
        revision, reasoning = out.parsed["revision"], out.parsed["reasoning"]
        original = J.text_of(p.record.fields.get(p.answer_field))
        base = {"answer_field": p.answer_field, "reasoning": reasoning}
        if revision.strip() == original.strip():
            return (_Verdict(record_id=p.record.pk, status=JudgeVerdict.Status.SKIPPED,
                                 result={**base, "note": "the judge left the answer unchanged; no pair written"}),
                    [], None)
        external_id = f"clair-{self.job.pk}-{p.record.pk}"
        row = {"external_id": external_id,
               "fields": {"prompt": p.record.fields.get(self.layout.prompt_field),
                          "response-1": revision, "response-2": original},
               "metadata": {"method": "clair", "source_record": p.record.pk,
                            "source_external_id": p.record.external_id, "source_dataset": self.dataset.pk,
                            "source_field": p.answer_field, "revision_field": "response-1",
                            "original_field": "response-2", "judge": self.judge.name,
                            "model": self.judge.endpoint.model, "job": self.job.pk},
               "priority": 0.0}
        system = _system_prompt_of(p.record)
        if system:  # the pair answers the same conversation: exports put it first in the prompt
            row["metadata"]["system"] = system
        suggestion = {"external_id": external_id, "question": "ranking",
                      "value": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}],
                      "score": 1.0, "agent": self.judge.agent, "rationale": reasoning,
                      "raw": {"method": "clair", "source_record": p.record.pk, "reasoning": reasoning,
                              "output": out.raw_text, "revision_field": "response-1"}}
        if cleaned := _text_cleaned(p):  # the revision is the model's text: the pair says what was removed from it
            row["metadata"][TEXT_CLEANED_KEY] = cleaned
            suggestion["raw"][TEXT_CLEANED_KEY] = cleaned
        verdict = _Verdict(record_id=p.record.pk, status=JudgeVerdict.Status.OK,
                               result={**base, "target_dataset": self.target.pk, "target_external_id": external_id})
        return verdict, [], (row, suggestion)

    def _priorities_update(self, record_ids: set[int]) -> None:
        """Order the annotation queue by the judges' doubt, read from the suggestions of the dataset's
        ranking question, or of its first graded preference when it asks no ranking."""
        question = self.layout.ranking_question or next((q[0] for q in self.layout.preference_questions), None)
        if not question:
            return
        views: dict[int, list[JudgeView]] = defaultdict(list)
        rows = (Suggestion.objects.filter(IdsIn("record_id", record_ids), question__name=question,
                                          question__dataset=self.dataset)
                .annotate(u=KT("raw__uncertainty"))
                .values_list("record_id", "agent", "value", "score", "u"))
        for record_id, agent, value, score, u in rows:
            top = top_fields(value) if question == self.layout.ranking_question else preference_top(value)
            views[record_id].append(JudgeView(agent=agent, top=top, uncertainty=_uncertainty(score, u)))
        record_priority_set(record_ids_to_priority={rid: priority_from(v) for rid, v in views.items()})


_OUTPUT_COLUMNS = ("job_id", "record_id", "judge_id", "call_key", "shown_order", "raw_text", "parsed", "error", "attempts",
                   "failed_attempts", "finish_reason", "prompt_tokens", "completion_tokens", "text_cleaned", "created_at",
                   "updated_at")
_OUTPUT_UPDATE = ("raw_text", "parsed", "error", "attempts", "failed_attempts", "finish_reason", "prompt_tokens",
                  "completion_tokens", "shown_order", "text_cleaned", "updated_at")
_VERDICT_COLUMNS = ("job_id", "record_id", "judge_id", "status", "result", "error", "created_at")


def _output_row(job_id: int, judge_id: int, o: _Out, now) -> tuple:
    """One output as a row of _OUTPUT_COLUMNS (a stored one keeps its created_at: not updated)."""
    return (job_id, o.record_id, judge_id, o.call_key, json_text(o.shown_order or []), o.raw_text or "",
            json_text(o.parsed), o.error or "", o.attempts, json_text(o.failed_attempts or []), o.finish_reason or "",
            o.prompt_tokens, o.completion_tokens, json_text(o.text_cleaned), now, now)


def _system_prompt_of(record) -> str | None:
    """A record's system prompt: metadata["system"] (where imports and exports keep it), else a text
    field named "system"."""
    for value in ((record.metadata or {}).get("system"), (record.fields or {}).get("system")):
        if isinstance(value, str) and value.strip():
            return value
    return None


def _text_cleaned(p: _Pending) -> dict:
    """{call key: what annotation.text removed from that output} for the record's outputs that needed it."""
    return {key: o.text_cleaned for key, o in p.outputs.items() if o.text_cleaned}


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}"


def _uncertainty(score: Any, stated: Any) -> float:
    """Uncertainty of any agent's ranking suggestion: the judge's own figure (raw.uncertainty), else
    from its margin."""
    if stated not in (None, ""):
        try:
            return min(1.0, max(0.0, float(stated)))
        except (TypeError, ValueError):
            pass
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        return uncertainty_from_margin(min(max(float(score), 0.0), 4.0))
    return 0.5


class JudgeJobHandler:
    kind = JOB_KIND
    items_word = "records"
    done_word = "judged"
    item_label = "Record"
    detail_template = "judging/partials/job_panel.html"

    def detail_context(self, job: Job) -> dict:
        return judge_job_panel(job)

    def retry_failed(self, job: Job) -> bool:
        return judge_job_failed_reset(job=job)

    def plan(self, job: Job, plan_input: object = None) -> list[dict]:
        ids = job.params.get("record_ids")
        if ids is None:
            ids = list(Record.objects.filter(dataset=job.dataset).order_by("pk").values_list("pk", flat=True))
        judge = Judge.objects.select_related("endpoint").get(pk=job.params["judge_id"])
        processes = job.params.get("processes", 1)
        size = job.params.get("chunk_size") or default_chunk_size(judge, records=len(ids), processes=processes)
        first = size if job.params.get("chunk_size") or processes > 1 else first_chunk_size(judge, size)
        job.total = len(ids)
        bounds = [0, *range(first, len(ids), size)] if ids else []
        return [{"record_ids": ids[start:end]} for start, end in zip(bounds, [*bounds[1:], len(ids)])]

    def run_chunk(self, job: Job, chunk: JobChunk, ctx: ChunkContext) -> None:
        ctx.check_cancelled()
        run = _ChunkRun(job, chunk, ctx)
        todo = run.plan()
        stopped = {"flag": False}

        def should_stop() -> bool:
            try:
                ctx.check_cancelled()
            except JobCancelled:
                stopped["flag"] = True
            return stopped["flag"]

        while todo:
            requests = [run.request_for(p, key) for p, key in todo]
            chat_many(run.judge.endpoint, requests, on_result=run.on_result, should_stop=should_stop)
            run.flush()
            if stopped["flag"]:
                raise JobCancelled()
            todo = run.retry_round()
            if todo:
                ctx.check_cancelled()
        run.flush()

    def finish(self, job: Job) -> None:
        # The counters are recomputed from the verdicts (one per job and record): a chunk that ran
        # twice at once after a worker was killed (redelivery) may have counted its records twice.
        # Every planned record now has a verdict or was deleted (counted failed).
        judged = JudgeVerdict.objects.filter(job=job).exclude(status=JudgeVerdict.Status.FAILED).count()
        job.done = judged
        job.failed = max(0, job.total - judged) if job.total else JudgeVerdict.objects.filter(
            job=job, status=JudgeVerdict.Status.FAILED).count()
        job.result = judge_job_summary(job=job)
        judge = Judge.objects.filter(pk=job.params.get("judge_id")).first()
        if judge is not None and judge.method == Judge.Method.PAIRWISE:
            judge_position_bias_refresh(judge=judge)


def judge_job_failed_reset(*, job: Job) -> bool:
    """Make the failed records of a finished judge job be judged again (JudgeJobHandler.retry_failed).

    Their failed verdicts and job errors go; their unsettled outputs start over from attempt 0 (the
    raw text and error of every failed attempt stay in failed_attempts, the parsed outputs are
    kept and not asked again); the chunks holding them are set to pending. False if none failed."""
    failed = set(JudgeVerdict.objects.filter(job=job, status=JudgeVerdict.Status.FAILED)
                 .values_list("record_id", flat=True))
    if not failed:
        return False
    external_ids = Record.objects.filter(pk__in=failed).values_list("external_id", flat=True)
    JobError.objects.filter(job=job, item__in=[f"record {e}" for e in external_ids]).delete()
    JudgeVerdict.objects.filter(job=job, record_id__in=failed).delete()
    unsettled = Q(parsed__isnull=True) | ~Q(error="")
    JudgeOutput.objects.filter(unsettled, job=job, record_id__in=failed).update(attempts=0, finish_reason="")
    chunks = [index for index, spec in job.chunks.values_list("index", "spec")
              if failed.intersection((spec or {}).get("record_ids", []))]
    job.chunks.filter(index__in=chunks).update(status=JobChunk.Status.PENDING)
    return True


def judge_job_summary(*, job: Job) -> dict:
    # counted in SQL: reading every verdict's result (10,000 JSON documents) took ~0.2 s at the end of a job
    statuses = dict(JudgeVerdict.objects.filter(job=job).order_by().values("status").annotate(n=Count("pk"))
                    .values_list("status", "n"))
    summary: dict[str, Any] = {"verdicts": statuses}
    if job.params.get("method") == Judge.Method.PAIRWISE:
        bias_items = []
        for result in JudgeVerdict.objects.filter(job=job, status=JudgeVerdict.Status.OK).values_list(
                "result", flat=True).iterator():
            if isinstance(result, dict):
                bias_items.extend((pair["consistent"], pair.get("favoured_position")) for pair in result.get("pairs") or [])
        summary["position_bias"] = position_bias_of(bias_items).as_dict()
    if job.params.get("target_dataset_id"):
        summary["target_dataset_id"] = job.params["target_dataset_id"]
    if job.dataset_id and job.params.get("method") != Judge.Method.CLAIR:
        summary["cleaning_flips"] = cleaning_flips_count(dataset=job.dataset, agent=job.params.get("agent"))
    return summary


def judge_position_bias_refresh(*, judge: Judge) -> dict:
    """The judge's position-bias rate over every pair it judged in both orders."""
    items = []
    for result in JudgeVerdict.objects.filter(judge=judge, status=JudgeVerdict.Status.OK).values_list("result", flat=True).iterator():
        for pair in (result or {}).get("pairs") or []:
            items.append((pair["consistent"], pair.get("favoured_position")))
    bias = position_bias_of(items).as_dict()
    Judge.objects.filter(pk=judge.pk).update(position_bias=bias)
    judge.position_bias = bias
    return bias
