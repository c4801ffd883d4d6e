"""In-process vLLM on a GPU worker (Endpoint.backend == "vllm_offline").

Thin on purpose: one `vllm.LLM(model=...)` per worker process (cached), the model's chat template
applied by its tokenizer, and ONE `LLM.generate` call per chunk with one SamplingParams per prompt.
Requests that share a conversation and identical sampling parameters (the `samples` strategy
without a seed) are folded into one prompt with SamplingParams(n=k), so vLLM shares the prefix.

Run it on a GPU worker:
    pip install 'preflab[vllm]'
    PREFLAB_GPU_QUEUE=gpu celery -A preflab worker -Q gpu -c 1 --pool solo
An endpoint with backend "vllm_offline" sends its generation chunks to PREFLAB_GPU_QUEUE (or the
endpoint's own queue). `endpoint.params` may hold engine options under "engine" (e.g.
{"engine": {"tensor_parallel_size": 2, "max_model_len": 8192}}); everything else is sampling.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import orjson

from ..llm_types import SAMPLING_KEYS, ChatRequest, ChatResult, messages_for, params_for

_ENGINES: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def _vllm():
    try:
        import vllm
    except ImportError as exc:  # pragma: no cover - message checked by hand
        raise RuntimeError("the vllm_offline backend needs vLLM on this worker: pip install 'preflab[vllm]' "
                           "and run the worker on a GPU machine (queue PREFLAB_GPU_QUEUE)") from exc
    return vllm


def engine_for(endpoint) -> Any:
    """The vllm.LLM of this model in this process (built once; loading weights takes minutes)."""
    engine_kwargs = dict((endpoint.params or {}).get("engine") or {})
    key = (endpoint.model, orjson.dumps(engine_kwargs, option=orjson.OPT_SORT_KEYS))
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            vllm = _vllm()
            engine = vllm.LLM(model=endpoint.model, **engine_kwargs)
            _ENGINES[key] = engine
    return engine


def engines_clear() -> None:
    with _LOCK:
        _ENGINES.clear()


def _sampling_kwargs(params: dict) -> dict:
    out = {k: params[k] for k in SAMPLING_KEYS if k in params}
    if isinstance(out.get("stop"), str):
        out["stop"] = [out["stop"]]
    return out


def chat_offline(endpoint, requests: list[ChatRequest]) -> list[ChatResult]:
    """Generate every request in one LLM.generate call; results in request order."""
    vllm = _vllm()
    llm = engine_for(endpoint)
    tokenizer = llm.get_tokenizer()
    # fold identical (conversation, sampling params) into one prompt with n samples
    groups: dict[bytes, list[int]] = {}
    prompts: list[str] = []
    group_params: list[dict] = []
    group_members: list[list[int]] = []
    for index, request in enumerate(requests):
        params = params_for(endpoint, request)
        params.pop("engine", None)
        messages = messages_for(endpoint, request.messages)
        sampling = _sampling_kwargs(params)
        fold = "seed" not in sampling
        key = orjson.dumps([messages, sampling], option=orjson.OPT_SORT_KEYS) if fold else None
        if key is not None and key in groups:
            group_members[groups[key]].append(index)
            continue
        if key is not None:
            groups[key] = len(prompts)
        prompts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        group_params.append(sampling)
        group_members.append([index])
    sampling_params = [vllm.SamplingParams(n=len(members), **params)
                       for params, members in zip(group_params, group_members)]
    started = time.perf_counter()
    try:
        outputs = llm.generate(prompts, sampling_params=sampling_params, use_tqdm=False)
    except Exception as exc:  # noqa: BLE001 - every item of the chunk gets the error
        latency = time.perf_counter() - started
        return [ChatResult(key=r.key, text=None, finish_reason=None, prompt_tokens=0, completion_tokens=0,
                           latency_s=latency, attempts=1, error=f"vLLM generate failed: {type(exc).__name__}: {exc}",
                           raw=None) for r in requests]
    latency = time.perf_counter() - started
    results: list[ChatResult | None] = [None] * len(requests)
    for output, members in zip(outputs, group_members):
        prompt_tokens = len(getattr(output, "prompt_token_ids", None) or [])
        completions = list(output.outputs)
        for j, index in enumerate(members):
            request = requests[index]
            if j >= len(completions):
                results[index] = ChatResult(key=request.key, text=None, finish_reason=None, prompt_tokens=prompt_tokens,
                                            completion_tokens=0, latency_s=latency, attempts=1,
                                            error="vLLM returned fewer samples than asked", raw=None)
                continue
            c = completions[j]
            results[index] = ChatResult(
                key=request.key, text=c.text, finish_reason=getattr(c, "finish_reason", None),
                prompt_tokens=prompt_tokens, completion_tokens=len(getattr(c, "token_ids", None) or []),
                latency_s=latency, attempts=1, error=None,
                raw={"text": c.text, "finish_reason": getattr(c, "finish_reason", None),
                     "request_id": getattr(output, "request_id", None)})
    return results  # type: ignore[return-value]
