"""A small OpenAI-compatible server for tests and benchmarks (no network, no model).

A real HTTP/1.1 server (keep-alive; an asyncio protocol, see _HttpProtocol) on 127.0.0.1 in its own
event-loop thread:

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
It speaks just the HTTP/1.1 the clients use (Content-Length or chunked request bodies, keep-alive,
Connection: close, Expect: 100-continue) with no web framework: the benches run it beside the client on
a 2-core machine, where aiohttp.web's ~0.25 ms of CPU per request took a core's tenth from the code
measured. A request whose client goes away (a client timeout on a "hang") is cancelled.
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
        self._connections: set[_HttpProtocol] = set()
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
    async def _chat(self, raw: bytes) -> tuple[int, dict, bytes]:
        """(status, extra headers, JSON body) of one POST /v1/chat/completions."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return 400, {}, _error("invalid JSON body")
        if not isinstance(body, dict) or not body.get("messages") or not body.get("model"):
            return 400, {}, _error("model and messages are required")
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
                    return 500, {}, _error("injected server error")
                if failure.kind == "429":
                    return 429, {"Retry-After": f"{failure.retry_after:g}"}, _error("injected rate limit")
            latency = self.latency(body) if callable(self.latency) else self.latency
            if latency:
                await asyncio.sleep(latency)
            if failure is not None and failure.kind == "malformed":
                return 200, {}, b'{"id": "x", "choices": [{"message": {"content": "trunc'
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
            return 200, {}, payload
        finally:
            self.in_flight -= 1

    def _models(self) -> tuple[int, dict, bytes]:
        models = sorted({r.get("model") for r in self.requests if r.get("model")}) or ["test-model"]
        return 200, {}, orjson.dumps({"object": "list", "data": [
            {"id": m, "object": "model", "owned_by": "preflab-tests"} for m in models]})

    async def _answer(self, method: str, path: str, body: bytes) -> tuple[int, dict, bytes]:
        if path == "/v1/chat/completions":
            return await self._chat(body) if method == "POST" else (405, {"Allow": "POST"}, _error("use POST"))
        if path == "/v1/models":
            return self._models() if method in ("GET", "HEAD") else (405, {"Allow": "GET"}, _error("use GET"))
        return 404, {}, _error(f"no route {path}")

    # --- life cycle ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(loop.create_server(
                lambda: _HttpProtocol(self), self.host, self.port, backlog=1024, reuse_address=True))
            self.port = server.sockets[0].getsockname()[1]
        except BaseException as exc:  # noqa: BLE001
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        server.close()
        for conn in list(self._connections):  # kept-alive connections: closed, not waited for
            conn.transport.close()
        loop.run_until_complete(asyncio.sleep(0))
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


def _error(message: str) -> bytes:
    return orjson.dumps({"error": {"message": message}})


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 429: "Too Many Requests",
            500: "Internal Server Error"}


class _HttpProtocol(asyncio.Protocol):
    """One client connection: requests read one after the other (no pipelining needed by any client),
    each answered by LLMTestServer._answer in a task of its own, cancelled if the client goes away."""

    def __init__(self, server: LLMTestServer):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.task: asyncio.Task | None = None
        self.continued = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server._connections.add(self)

    def connection_lost(self, exc) -> None:
        self.server._connections.discard(self)
        if self.task is not None:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.task is None:
            self._next()

    def _next(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            self.transport.close()
            return
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._chunked(start)
            if body is None:
                return self._continue(headers)
        else:
            length = int(headers.get("content-length") or 0)
            if len(self.buf) < start + length:
                return self._continue(headers)
            body = bytes(self.buf[start:start + length])
            del self.buf[:start + length]
        self.continued = False
        keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        self.task = asyncio.ensure_future(self._respond(method, target.split("?", 1)[0], body, keep))

    def _continue(self, headers: dict) -> None:
        if headers.get("expect", "").lower() == "100-continue" and not self.continued:
            self.continued = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _chunked(self, pos: int) -> bytes | None:
        """The whole chunked body starting at pos (removed from the buffer with its head), or None if it
        has not all arrived."""
        body = bytearray()
        while True:
            eol = self.buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(self.buf[pos:eol]).split(b";", 1)[0], 16)
            pos = eol + 2
            if size == 0:
                end = self.buf.find(b"\r\n", pos)  # no trailers from our clients: the empty line
                if end < 0:
                    return None
                del self.buf[:end + 2]
                return bytes(body)
            if len(self.buf) < pos + size + 2:
                return None
            body += self.buf[pos:pos + size]
            pos += size + 2

    async def _respond(self, method: str, path: str, body: bytes, keep: bool) -> None:
        try:
            status, extra, payload = await self.server._answer(method, path, body)
        except Exception as exc:  # noqa: BLE001 - a responder that raised: a 500, as a web framework would
            status, extra, payload = 500, {}, _error(f"{type(exc).__name__}: {exc}")
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Content-Type: application/json",
                f"Content-Length: {len(payload)}", *(f"{k}: {v}" for k, v in extra.items())]
        if not keep:
            head.append("Connection: close")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (b"" if method == "HEAD" else payload))
        self.task = None
        if not keep:
            self.transport.close()
        elif self.buf:
            self._next()


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
