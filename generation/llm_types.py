"""The types every LLM backend shares (the HTTP client in generation/llm.py, the in-process vLLM
backend in generation/backends/vllm_offline.py): requests, results, and how an endpoint's defaults
merge into a request. Its own module so the backends import it, not each other."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from annotation.text import text_clean, unstorable_text

if TYPE_CHECKING:  # pragma: no cover
    from .models import Endpoint

CANCELLED = "cancelled before completion"  # ChatResult.error of items a should_stop() cut off
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "max_tokens", "seed", "stop")


@dataclass
class ChatRequest:
    key: str                      # caller's id for the item (unique within a call)
    messages: list[dict]          # OpenAI chat messages
    params: dict = field(default_factory=dict)  # overrides: temperature, top_p, top_k, max_tokens, seed, stop, response_format ...


@dataclass
class ChatResult:
    key: str
    text: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float              # duration of the final attempt
    attempts: int
    error: str | None             # final error after retries; None on success
    raw: Any                      # raw response JSON, or raw body text when it was not valid JSON
    # what annotation.text cleaned out of `text` ({"nul_removed", "surrogates_replaced"}), None if nothing
    text_cleaned: dict | None = None

    def __post_init__(self) -> None:
        """A model's text is kept less what PostgreSQL cannot store (annotation.text: NUL, lone surrogates),
        cleaned here for every backend and counted in text_cleaned, so whoever stores the output can say so
        and no output fails a job for its content. The raw response is cleaned the same way."""
        if isinstance(self.text, str):
            text, cleaning = text_clean(self.text)
            if cleaning:
                self.text, self.text_cleaned = text, cleaning.note()
        if self.raw is not None and unstorable_text(self.raw) is not None:
            self.raw = text_clean(self.raw)[0]

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def cancelled(self) -> bool:
        return self.error == CANCELLED


def messages_for(endpoint: Endpoint, messages: list[dict]) -> list[dict]:
    """The endpoint's system prompt goes first unless the messages bring their own."""
    system = (endpoint.system_prompt or "").strip()
    if system and not any(m.get("role") == "system" for m in messages):
        return [{"role": "system", "content": system}, *messages]
    return messages


def params_for(endpoint: Endpoint, request: ChatRequest) -> dict:
    """Endpoint defaults, overridden by the request's params; None means "leave out"."""
    merged = {**(endpoint.params or {}), **(request.params or {})}
    # "engine" holds vllm_offline engine options (vllm.LLM arguments), never request parameters
    return {k: v for k, v in merged.items() if v is not None and k != "engine"}
