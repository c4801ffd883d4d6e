"""A small OpenAI-compatible server for tests and benchmarks (no network, no model).

A real HTTP server (aiohttp.web) on 127.0.0.1 in its own event-loop thread:

    server = LLMTestServer(latency=0.05).start()
    server.base_url            # "http://127.0.0.1:PORT/v1"
    server.fail("500", times=2)                    # the next 2 requests answer HTTP 500
    server.fail("429", times=1, retry_after=0.2)   # then one 429 with Retry-After
    server.fail("hang", times=1)                   # one request never answers (past the client timeout)
    server.fail("malformed", model="m2")           # only requests for model m2
    server.fail_rate("500", 0.1, seed=1)           # 10 % of requests fail, reproducibly
    server.responder = lambda body: "custom text"  # the assistant content
    server.latency = 0.2 or lambda body: ...       # seconds per answer (a number, or per request)
    server.requests / server.count / server.max_in_flight   # what was received
    server.stop()

POST /v1/chat/completions answers a chat completion; GET /v1/models lists the models seen.
Standalone (for bench/ and manual checks):  python -m tests.llm_server --port 8103 --latency 0.2
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

FAILURE_KINDS = ("500", "429", "hang", "malformed", "empty")


@dataclass
class _Failure:
    kind: str
    remaining: int | None = 1  # None: unlimited (probability-driven)
    probability: float = 1.0
    model: str | None = None
    retry_after: float = 0.2
    when: Callable[[dict], bool] | None = None
    rng: random.Random | None = None


def default_responder(body: dict) -> str:
    """Deterministic text from the prompt, model, temperature and seed."""
    messages = body.get("messages") or []
    last = ""
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            last = content if isinstance(content, str) else orjson.dumps(content).decode()
            break
    digest = hashlib.sha1(orjson.dumps([messages, body.get("model"), body.get("temperature"), body.get("seed")],
                                       option=orjson.OPT_SORT_KEYS)).hexdigest()[:10]
    return f"[{body.get('model')} t={body.get('temperature')} s={body.get('seed')} #{digest}] answer to: {last[:200]}"


class LLMTestServer:
    def __init__(self, *, latency: float | Callable[[dict], float] = 0.0, responder: Callable[[dict], str] | None = None,
                 host: str = "127.0.0.1", port: int = 0, record: bool = True, hang_seconds: float = 3600.0,
                 usage: tuple[int, int] | None = None):
        self.latency = latency
        self.responder = responder or default_responder
        self.host = host
        self.port = port
        self.record = record
        self.hang_seconds = hang_seconds
        self.usage = usage  # fixed (prompt_tokens, completion_tokens); default: word counts
        self.requests: list[dict] = []
        self.count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.failures_served: dict[str, int] = {}
        self._plan: deque[_Failure] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --- configuration ---------------------------------------------------------------------------
    def fail(self, kind: str, *, times: int = 1, model: str | None = None, retry_after: float = 0.2,
             when: Callable[[dict], bool] | None = None) -> LLMTestServer:
        """Queue `times` failures of `kind` (for one model, or requests matching `when`, if given)."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure {kind!r}; one of {FAILURE_KINDS}")
        with self._lock:
            self._plan.append(_Failure(kind=kind, remaining=times, model=model, retry_after=retry_after, when=when))
        return self

    def fail_rate(self, kind: str, probability: float, *, seed: int = 0, model: str | None = None,
                  retry_after: float = 0.2) -> LLMTestServer:
        """Fail a share of requests (seeded, so a run is reproducible for a given request order)."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure {kind!r}; one of {FAILURE_KINDS}")
        with self._lock:
            self._plan.append(_Failure(kind=kind, remaining=None, probability=probability, model=model,
                                       retry_after=retry_after, rng=random.Random(seed)))
        return self

    def clear_failures(self) -> None:
        with self._lock:
            self._plan.clear()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.count = 0
            self.max_in_flight = 0
            self.failures_served.clear()

    def _pick_failure(self, body: dict) -> _Failure | None:
        with self._lock:
            for f in list(self._plan):
                if f.model is not None and body.get("model") != f.model:
                    continue
                if f.when is not None and not f.when(body):
                    continue
                if f.remaining is None:
                    if f.rng.random() < f.probability:
                        return f
                    continue
                f.remaining -= 1
                if f.remaining <= 0:
                    self._plan.remove(f)
                return f
        return None

    # --- HTTP ------------------------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return web.json_response({"error": {"message": "invalid JSON body"}}, status=400)
        if not isinstance(body, dict) or not body.get("messages") or not body.get("model"):
            return web.json_response({"error": {"message": "model and messages are required"}}, status=400)
        self.count += 1
        if self.record:
            self.requests.append(body)
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight
        try:
            failure = self._pick_failure(body) if self._plan else None
            if failure is not None:
                self.failures_served[failure.kind] = self.failures_served.get(failure.kind, 0) + 1
                if failure.kind == "hang":
                    await asyncio.sleep(self.hang_seconds)
                if failure.kind == "500":
                    return web.json_response({"error": {"message": "injected server error"}}, status=500)
                if failure.kind == "429":
                    return web.json_response({"error": {"message": "injected rate limit"}}, status=429,
                                             headers={"Retry-After": f"{failure.retry_after:g}"})
            latency = self.latency(body) if callable(self.latency) else self.latency
            if latency:
                await asyncio.sleep(latency)
            if failure is not None and failure.kind == "malformed":
                return web.Response(body=b'{"id": "x", "choices": [{"message": {"content": "trunc', status=200,
                                    content_type="application/json")
            content = self.responder(body)
            created = int(time.time())
            if self.usage:
                prompt_tokens, completion_tokens = self.usage
            else:
                prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
                completion_tokens = len(content.split())
            choices: list[Any] = [] if failure is not None and failure.kind == "empty" else [{
                "index": 0, "message": {"role": "assistant", "content": content},
                "finish_reason": "stop", "logprobs": None}]
            doc = {"id": f"chatcmpl-{self.count}", "object": "chat.completion", "created": created,
                   "model": body["model"], "choices": choices,
                   "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                             "total_tokens": prompt_tokens + completion_tokens}}
            try:
                payload = orjson.dumps(doc)
            except orjson.JSONEncodeError:  # a lone surrogate in the content: sent as JSON's escape ("\ud800")
                payload = json.dumps(doc).encode()
            return web.Response(body=payload, content_type="application/json")
        finally:
            self.in_flight -= 1

    async def _models(self, request: web.Request) -> web.Response:
        models = sorted({r.get("model") for r in self.requests if r.get("model")}) or ["test-model"]
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model", "owned_by": "preflab-tests"}
                                                             for m in models]})

    # --- life cycle ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            app = web.Application(client_max_size=64 * 1024**2)
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_get("/v1/models", self._models)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port, backlog=1024, reuse_address=True)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # noqa: BLE001
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def start(self) -> LLMTestServer:
        self._thread = threading.Thread(target=self._run, name="llm-test-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            async def _shutdown():
                for task in asyncio.all_tasks():
                    if task is not asyncio.current_task():
                        task.cancel()
                self._loop.stop()

            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(_shutdown()))
            self._thread.join(10)

    def __enter__(self) -> LLMTestServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible test server (no model).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8103)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds each answer takes")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of requests answered HTTP 500")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    server = LLMTestServer(latency=args.latency, host=args.host, port=args.port, record=False)
    if args.fail_rate:
        server.fail_rate("500", args.fail_rate, seed=args.seed)
    server.start()
    print(f"OpenAI-compatible test server on {server.base_url} (latency {args.latency}s)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
