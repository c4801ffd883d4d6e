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
