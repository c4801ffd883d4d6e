"""Model endpoints: where generation and judging send their LLM calls.

API keys are never stored: an endpoint names the environment variable that holds its key.
"""
from django.db import models

from annotation.models import Workspace


class Endpoint(models.Model):
    class Backend(models.TextChoices):
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible server (vllm serve, OpenAI, TGI, llama.cpp, Ollama)"
        VLLM_OFFLINE = "vllm_offline", "vLLM in-process on a GPU worker"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="endpoints")
    name = models.SlugField(max_length=100)
    backend = models.CharField(max_length=32, choices=Backend.choices, default=Backend.OPENAI_COMPATIBLE)
    base_url = models.CharField(max_length=500, blank=True, default="", help_text="e.g. http://vllm:8000/v1")
    model = models.CharField(max_length=300)
    api_key_env = models.CharField(max_length=100, blank=True, default="",
                                   help_text="NAME of the environment variable holding the API key")
    max_concurrency = models.PositiveIntegerField(default=16)
    # temperature, top_p, top_k, max_tokens, seed, stop
    params = models.JSONField(default=dict, blank=True)
    system_prompt = models.TextField(blank=True, default="")
    queue = models.CharField(max_length=64, blank=True, default="", help_text="Celery queue; empty = default")
    timeout = models.FloatField(default=120.0)
    max_retries = models.PositiveSmallIntegerField(default=5)
    supports_json_schema = models.BooleanField(
        default=True, help_text="The server accepts response_format json_schema (vLLM guided decoding, OpenAI).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="uniq_endpoint_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.model})"


class GenerationOutput(models.Model):
    """One completion of a generation job, stored as it arrives: the unique key (job, prompt, slot)
    makes every write idempotent, so a re-run chunk or a redelivered task never duplicates a response.
    A record is assembled from a prompt's outputs once all its n slots exist."""

    job = models.ForeignKey("annotation.Job", on_delete=models.CASCADE, related_name="generation_outputs")
    prompt_key = models.CharField(max_length=255)
    slot = models.PositiveSmallIntegerField(help_text="0-based; the response field is response-{slot+1}")
    endpoint = models.CharField(max_length=100)
    model = models.CharField(max_length=300)
    params = models.JSONField(default=dict, blank=True)
    text = models.TextField()
    finish_reason = models.CharField(max_length=40, blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_s = models.FloatField(default=0.0)
    attempts = models.PositiveSmallIntegerField(default=1)
    # what annotation.text cleaned out of the model's text before it was stored (NUL, lone surrogates)
    text_cleaned = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "prompt_key", "slot"]
        constraints = [models.UniqueConstraint(fields=["job", "prompt_key", "slot"], name="uniq_generation_output")]

    def __str__(self) -> str:
        return f"job {self.job_id} {self.prompt_key}#{self.slot}"
