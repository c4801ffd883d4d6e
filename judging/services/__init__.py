"""Writes of the judging app, by concern: judges, dataset layout, judge jobs, and the job handler
(what a judge job writes: outputs, verdicts, suggestions, record priorities, CLAIR records).

A judge job is an annotation Job of kind "judge" (annotation/jobs.py, the one job mechanism). Its
handler (`JudgeJobHandler`, registered in JudgingConfig.ready) runs one chunk of records:

1. records that already have a verdict in this job are counted and skipped (a re-run after a killed
   worker or a resume re-calls nothing);
2. the calls each remaining record needs (judges.calls_for) are sent through generation.llm.chat_many,
   minus the ones already stored with a parsed result;
3. each answer is parsed; a parse failure keeps its raw text and error and is asked again (the same
   prompt plus a reminder of the format) up to judge.max_parse_retries times;
4. once all calls of a record are settled, the record's verdict, suggestions and priority are
   written in one transaction, in batches (every second or 500 records); a record whose calls failed
   gets an error verdict, a JobError (ctx.error) and no suggestion.

What is written per judged record (agent = "<judge name>:<endpoint model>"):
- on the dataset's ranking question: value = the ranking from the ratings (equal ratings share a
  rank: a tie), score = the margin (best minus second-best rating in raw 1-5 points; for pairwise
  judges the confidence 1 / 0.5 / 0), rationale = the rationales per field, raw = {"ratings",
  "rationales", "aspect", "output" (raw text), "uncertainty", "shown_order", ...};
- on every rating question with "compares": [f1, f2]: 0 tie, 1 if f1 is better, 2 if f2 is;
- the record's priority = mean uncertainty of all agents' ranking suggestions + their
  disagreement (judging/scoring.py has the formula), so contentious records are served first.

CLAIR writes no suggestion on the judged dataset. Each revision becomes a record of the target
dataset (pairwise layout, created if needed) with external_id "clair-<job>-<source record>":
prompt, response-1 = the revision, response-2 = the original answer. The positions are fixed (the
metadata says so: revision_field / original_field, plus source_record and method "clair") because
the annotation UI shuffles the display order per annotator (the target dataset has
shuffle_responses on); the suggestion (agent "clair:<model>") ranks response-1 first. An answer the
judge left unchanged gives no pair (a "skipped" verdict): an identical pair teaches nothing.
"""
from .cleaning import DECISIONS, flip_decide
from .handler import JudgeJobHandler, judge_job_failed_reset, judge_job_summary, judge_position_bias_refresh
from .jobs import default_chunk_size, judge_job_create
from .judges import JUDGE_FIELDS, judge_create, judge_delete, judge_update
from .layout import CLAIR_FIELDS, Layout, clair_target_for, dataset_layout

__all__ = [
    "CLAIR_FIELDS", "DECISIONS", "JUDGE_FIELDS", "JudgeJobHandler", "Layout", "clair_target_for", "dataset_layout",
    "default_chunk_size", "flip_decide", "judge_create", "judge_delete", "judge_job_create", "judge_job_failed_reset",
    "judge_job_summary", "judge_position_bias_refresh", "judge_update",
]
