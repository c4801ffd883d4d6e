"""Writes of the generation app, by concern: endpoints, prompts, jobs, and the job handler (the chunk
work of those jobs).

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
from .endpoints import (
    ENDPOINT_FIELDS,
    PARAM_KEYS,
    endpoint_create,
    endpoint_delete,
    endpoint_update,
    endpoint_values_validate,
    generation_params_validate,
)
from .jobs import (
    MAX_N,
    STRATEGIES,
    generation_dataset_check,
    generation_dataset_create,
    generation_job_create,
    generation_job_resume,
    slot_plan,
)
from .prompts import (
    PROMPT_FORMATS,
    Prompt,
    prompt_format_of,
    prompt_messages,
    prompts_file_save,
    prompts_from_dataset,
    prompts_read,
)

__all__ = [
    "ENDPOINT_FIELDS", "MAX_N", "PARAM_KEYS", "PROMPT_FORMATS", "STRATEGIES", "Prompt",
    "endpoint_create", "endpoint_delete", "endpoint_update", "endpoint_values_validate", "generation_dataset_check",
    "generation_dataset_create", "generation_job_create", "generation_job_resume", "generation_params_validate",
    "prompt_format_of", "prompt_messages", "prompts_file_save", "prompts_from_dataset", "prompts_read", "slot_plan",
]
