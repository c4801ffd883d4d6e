"""The async LLM client every generation and judge job goes through.

    results = chat_many(endpoint, [ChatRequest(key="p1", messages=[{"role": "user", "content": "Hi"}])])

`chat_many` is synchronous: it runs the requests on an asyncio loop in a helper thread (one per
process, keeping each endpoint's HTTP connections warm between calls), keeps at most
`endpoint.max_concurrency` requests in flight per process (its share of them when several processes
run one job together: annotation.job_share) (a pool of workers pulling the next request as soon as
one finishes — the pipe stays full, nothing waits for the slowest request of a batch; calls sharing
an endpoint take its free slots earliest call first: _Slots), applies a
per-attempt timeout of `endpoint.timeout` seconds and retries 429 (honouring Retry-After), 5xx,
timeouts, connection errors, malformed JSON and empty `choices` with exponential backoff and jitter
(tenacity), up to `endpoint.max_retries` retries. One item's failure never raises: its final error
is in `ChatResult.error`. `on_result` and `should_stop` are called in the CALLER's thread (so they
may use the Django ORM) while requests keep flowing in the loop thread.

Settings (Django settings or environment): PREFLAB_LLM_TRANSPORT (below), PREFLAB_LLM_BACKOFF
(first retry wait in seconds, default 1) and PREFLAB_LLM_BACKOFF_MAX (default 60).

Transports (`transport=` or PREFLAB_LLM_TRANSPORT; bench/bench_generation.py measures them):
  "http"          a POST of the /v1/chat/completions JSON (orjson) over kept-alive HTTP/1.1 connections
                  (generation/http1.py) — the default: the least CPU per request (see README figures);
  "aiohttp"       the same POST through aiohttp's client session;
  "openai"        the official AsyncOpenAI client over its aiohttp transport (openai.DefaultAioHttpClient);
  "openai-httpx"  the AsyncOpenAI client over its default httpx transport (the slowest; kept for comparison).
All three send the same body and are parsed by the same code, so results do not depend on the choice.

Endpoints with backend "vllm_offline" are run in-process by generation/backends/vllm_offline.py; the
types both share (ChatRequest, ChatResult, ...) live in generation/llm_types.py.
"""
from __future__ import annotations

import asyncio
import atexit
import heapq
import itertools
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from annotation.job_share import process_share

from .backends import vllm_offline
from .llm_types import CANCELLED, ChatRequest, ChatResult, messages_for, params_for

if TYPE_CHECKING:  # pragma: no cover
    from .models import Endpoint

log = logging.getLogger(__name__)

TRANSPORTS = ("http", "aiohttp", "openai", "openai-httpx")


class LLMConfigError(ValueError):
    """The endpoint cannot be called at all (missing API key variable, no base URL, bad transport)."""


class _Retryable(Exception):
    def __init__(self, message: str, *, raw: Any = None, retry_after: float | None = None):
        super().__init__(message)
        self.raw = raw
        self.retry_after = retry_after


class _Final(Exception):
    def __init__(self, message: str, *, raw: Any = None):
        super().__init__(message)
        self.raw = raw


# --- helpers shared by all backends ----------------------------------------------------------------

def _setting(name: str, default: Any) -> Any:
    try:
        from django.conf import settings

        if settings.configured and hasattr(settings, name):
            return getattr(settings, name)
    except Exception:  # noqa: BLE001 - usable without Django (bench, scripts)
        pass
    return os.environ.get(name, default)


def default_transport() -> str:
    return str(_setting("PREFLAB_LLM_TRANSPORT", "http"))


def api_key_for(endpoint: Endpoint) -> str | None:
    """The API key from the environment variable the endpoint names (never from the database)."""
    name = (endpoint.api_key_env or "").strip()
    if not name:
        return None
    value = os.environ.get(name)
    if value is None:
        raise LLMConfigError(
            f"endpoint {endpoint.name!r}: the environment variable {name} (api_key_env) is not set "
            "in this process; export it where the worker runs")
    return value


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _body_text(data: bytes | str) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return data


def _parse_success(key: str, data: bytes | str, attempts: int, latency: float) -> ChatResult:
    """Parse a 200 body; malformed JSON or no choices are retryable errors."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:  # orjson refuses JSON's escape of a lone surrogate ("\ud800"); Python's json reads it (cleaned in ChatResult)
            doc = json.loads(data)
        except ValueError:
            raise _Retryable("malformed JSON in the response body", raw=_body_text(data)[:100_000])
    if not isinstance(doc, dict):
        raise _Retryable("the response body is not a JSON object", raw=doc)
    choices = doc.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise _Retryable("the response has no choices", raw=doc)
    choice = choices[0]
    message = choice.get("message") or {}
    text = message.get("content") if isinstance(message, dict) else None
    usage = doc.get("usage") or {}
    return ChatResult(key=key, text=text, finish_reason=choice.get("finish_reason"),
                      prompt_tokens=int(usage.get("prompt_tokens") or 0),
                      completion_tokens=int(usage.get("completion_tokens") or 0),
                      latency_s=latency, attempts=attempts, error=None, raw=doc)


def _check_status(status: int, data: bytes | str, retry_after: str | None) -> None:
    if status == 200:
        return
    text = _body_text(data)[:2000]
    try:
        raw: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        raw = text
    if status == 429:
        raise _Retryable(f"HTTP 429 rate limited: {text[:300]}", raw=raw, retry_after=_retry_after(retry_after))
    if status >= 500 or status == 408:
        raise _Retryable(f"HTTP {status}: {text[:300]}", raw=raw, retry_after=_retry_after(retry_after))
    raise _Final(f"HTTP {status}: {text[:500]}", raw=raw)


# --- transports --------------------------------------------------------------------------------

class _HttpTransport:
    def __init__(self, endpoint: Endpoint, concurrency: int, api_key: str | None):
        from .http1 import Http1Pool

        url = endpoint.base_url.rstrip("/") + "/chat/completions"
        try:
            self.pool = Http1Pool(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else None)
        except ValueError as exc:
            raise LLMConfigError(f"endpoint {endpoint.name!r}: {exc}")

    async def send(self, body: dict) -> tuple[int, bytes, str | None]:
        try:
            status, headers, data = await self.pool.post(orjson.dumps(body))
        except OSError as exc:  # ConnectionError, refused, reset, TLS errors (ssl.SSLError is an OSError)
            raise _Retryable(f"connection error: {type(exc).__name__}: {exc}")
        return status, data, headers.get("retry-after")

    async def close(self) -> None:
        await self.pool.close()


class _AiohttpTransport:
    def __init__(self, endpoint: Endpoint, concurrency: int, api_key: str | None):
        import aiohttp

        self._aiohttp = aiohttp
        self.url = endpoint.base_url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=300),
            headers=headers, timeout=aiohttp.ClientTimeout(total=None), skip_auto_headers=("User-Agent",))

    async def send(self, body: dict) -> tuple[int, bytes, str | None]:
        try:
            async with self.session.post(self.url, data=orjson.dumps(body)) as resp:
                data = await resp.read()
                return resp.status, data, resp.headers.get("Retry-After")
        except self._aiohttp.ClientError as exc:
            raise _Retryable(f"connection error: {type(exc).__name__}: {exc}")

    async def close(self) -> None:
        await self.session.close()


class _OpenAITransport:
    """The official client; its own retries are off (ours apply), its raw body is parsed like the others."""

    def __init__(self, endpoint: Endpoint, concurrency: int, api_key: str | None, *, aiohttp: bool):
        import openai

        self._openai = openai
        http_client = None
        if aiohttp:
            http_client = openai.DefaultAioHttpClient(
                limits=openai.DEFAULT_CONNECTION_LIMITS.__class__(
                    max_connections=concurrency, max_keepalive_connections=concurrency))
        else:
            http_client = openai.DefaultAsyncHttpxClient(
                limits=openai.DEFAULT_CONNECTION_LIMITS.__class__(
                    max_connections=concurrency, max_keepalive_connections=concurrency))
        self.client = openai.AsyncOpenAI(api_key=api_key or "no-key", base_url=endpoint.base_url,
                                         max_retries=0, timeout=float(endpoint.timeout) + 5.0,
                                         http_client=http_client)

    async def send(self, body: dict) -> tuple[int, bytes, str | None]:
        openai = self._openai
        body = dict(body)
        model, messages = body.pop("model"), body.pop("messages")
        try:
            resp = await self.client.chat.completions.with_raw_response.create(
                model=model, messages=messages, extra_body=body or None)
            return resp.status_code, resp.content, resp.headers.get("retry-after")
        except openai.APIStatusError as exc:
            return exc.status_code, exc.response.content, exc.response.headers.get("retry-after")
        except openai.APITimeoutError as exc:
            raise _Retryable(f"timeout: {exc}")
        except openai.APIConnectionError as exc:
            raise _Retryable(f"connection error: {exc}")

    async def close(self) -> None:
        await self.client.close()


def _make_transport(name: str, endpoint: Endpoint, concurrency: int, api_key: str | None):
    if name == "http":
        transport = _HttpTransport(endpoint, concurrency, api_key)
    elif name == "aiohttp":
        transport = _AiohttpTransport(endpoint, concurrency, api_key)
    elif name == "openai":
        transport = _OpenAITransport(endpoint, concurrency, api_key, aiohttp=True)
    elif name == "openai-httpx":
        transport = _OpenAITransport(endpoint, concurrency, api_key, aiohttp=False)
    else:
        raise LLMConfigError(f"unknown LLM transport {name!r}; one of {', '.join(TRANSPORTS)}")
    transport.slots = _Slots(concurrency)  # at most max_concurrency requests in flight
    return transport


class _Slots:
    """An endpoint's slots in one process: at most `limit` calls at once. A freed slot goes to the
    waiting call of the EARLIEST chat_many (lowest `order`), first come first served within one.

    With plain first-come-first-served, two chunks running at once (job_run_inline's overlap, the
    threads of a worker) advance in step and finish together, so the pipe drains at each chunk
    boundary while the next chunk is planned. Served oldest call first, one chunk finishes while the
    next one fills the slots it frees, and the chunk after that is planned while the pipe is still full."""

    def __init__(self, limit: int):
        self.free = limit
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._arrival = itertools.count()

    async def acquire(self, order: int) -> None:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (order, next(self._arrival), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # handed a slot, then cancelled: give it on
                self.release()
            raise  # a cancelled waiter stays in the heap and is skipped by release

    def release(self) -> None:
        while self._waiters:
            _order, _n, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)
                return
        self.free += 1


_CALL_ORDER = itertools.count()  # each chat_many call's place in line for the endpoints' slots (_Slots)


# --- the async engine --------------------------------------------------------------------------

@dataclass
class _Group:
    endpoint: Any
    requests: list[ChatRequest]
    api_key: str | None
    offset: int  # index of this group's first request in the flat result list


def _retry_kwargs(max_retries: int, backoff: tuple[float, float]) -> dict:
    """tenacity's settings for a call's retries. tenacity is imported on the first retry, not at start-up
    (~15 ms of every process's start): most runs retry nothing."""
    from tenacity import retry_if_exception_type, stop_after_attempt

    return dict(stop=stop_after_attempt(max_retries + 1), wait=_wait_strategy(*backoff),
                retry=retry_if_exception_type(_Retryable), reraise=True)


def _wait_strategy(initial: float, maximum: float):
    from tenacity import wait_exponential_jitter

    backoff = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)

    def wait(retry_state) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        delay = backoff(retry_state)
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, maximum * 5))
        return delay

    return wait


async def _attempt(transport, request: ChatRequest, body: dict, timeout: float, attempts: int, timing: list,
                   order: int) -> ChatResult:
    """One call: a slot of the endpoint, the per-attempt timeout, the status check and the parse
    (raises _Retryable / _Final). timing[0] is set to the call's duration."""
    # The endpoint's slots are shared by every call in this process (two chunks on the threads of
    # one worker, or of an inline run): wait for one BEFORE the timeout starts counting.
    await transport.slots.acquire(order)
    try:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                status, data, retry_after = await transport.send(body)
        except TimeoutError:
            timing[0] = time.perf_counter() - started
            raise _Retryable(f"timeout: no answer within {timeout:g}s")
        timing[0] = time.perf_counter() - started
    finally:
        transport.slots.release()
    _check_status(status, data, retry_after)
    return _parse_success(request.key, data, attempts, timing[0])


async def _call_one(transport, endpoint, request: ChatRequest, body: dict, retry: tuple[int, tuple[float, float]],
                    order: int) -> ChatResult:
    attempts = 1
    timing = [0.0]
    timeout = float(endpoint.timeout)
    try:
        try:
            # the first attempt outside tenacity (most calls need no other): its bookkeeping costs a
            # good share of a request's CPU
            return await _attempt(transport, request, body, timeout, attempts, timing, order)
        except _Retryable as exc:
            failed: _Retryable | None = exc
        # Retries: tenacity sees the first attempt fail again (replayed, not re-sent), so the waits
        # and the number of attempts are exactly what they would be with tenacity from the start.
        from tenacity import AsyncRetrying

        async for attempt in AsyncRetrying(**_retry_kwargs(*retry)):
            with attempt:
                if failed is not None:
                    replay, failed = failed, None
                    raise replay
                attempts += 1
                return await _attempt(transport, request, body, timeout, attempts, timing, order)
    except (_Retryable, _Final) as exc:
        return ChatResult(key=request.key, text=None, finish_reason=None, prompt_tokens=0, completion_tokens=0,
                          latency_s=timing[0], attempts=attempts, error=str(exc), raw=exc.raw)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unexpected client error is this item's final error
        return ChatResult(key=request.key, text=None, finish_reason=None, prompt_tokens=0, completion_tokens=0,
                          latency_s=timing[0], attempts=attempts, error=f"{type(exc).__name__}: {exc}", raw=None)
    raise AssertionError("unreachable")  # pragma: no cover


async def _run_groups(groups: list[_Group], results: list, out: deque, stop: threading.Event,
                      transport_name: str, backoff: tuple[float, float]) -> None:
    loop_stop = asyncio.Event()
    order = next(_CALL_ORDER)

    async def watch_stop():
        while not stop.is_set():
            await asyncio.sleep(0.05)
        loop_stop.set()

    async def run_group(group: _Group) -> None:
        endpoint = group.endpoint
        # several processes running one job together split the endpoint's limit (annotation.jobs.job_run_processes)
        limit = process_share(max(1, int(endpoint.max_concurrency or 1)))
        concurrency = min(limit, len(group.requests))
        transport = _ENGINE.transport(transport_name, endpoint, limit, group.api_key)
        retry = (int(endpoint.max_retries), backoff)
        items = iter(enumerate(group.requests, start=group.offset))

        async def worker():
            for index, request in items:
                if loop_stop.is_set():
                    return
                body = {"model": endpoint.model, "messages": messages_for(endpoint, request.messages),
                        **params_for(endpoint, request)}
                result = await _call_one(transport, endpoint, request, body, retry, order)
                results[index] = result
                out.append(result)  # deque.append is atomic; the caller's thread drains it in batches

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        try:
            stopper = asyncio.create_task(loop_stop.wait())
            pending = set(workers)
            while pending:
                done, pending = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(stopper)
                if stopper in done:
                    for w in pending:
                        w.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    break
            stopper.cancel()
        finally:
            _ENGINE.release(transport)

    watcher = asyncio.create_task(watch_stop())
    try:
        await asyncio.gather(*(run_group(g) for g in groups))
    finally:
        watcher.cancel()


class _Engine:
    """One event-loop thread per process, with its HTTP sessions kept between calls.

    Keeping the loop and the connections alive means a job's second chunk (and every judge call)
    starts with warm keep-alive connections instead of opening max_concurrency new ones; it also
    makes the per-endpoint limit hold across chunks run by the threads of one worker. Sessions
    idle for IDLE_SECONDS are closed. A forked child (Celery prefork) builds its own engine.
    """

    IDLE_SECONDS = 300.0

    def __init__(self):
        self.pid: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lock = threading.Lock()
        self.transports: dict[tuple, list] = {}  # key -> [transport, users, last_used]

    def loop_for_call(self) -> asyncio.AbstractEventLoop:
        with self.lock:
            if self.loop is None or self.pid != os.getpid() or not self.loop.is_running():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run():
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=run, name="preflab-llm-loop", daemon=True).start()
                ready.wait(10)
                self.loop, self.pid, self.transports = loop, os.getpid(), {}
            return self.loop

    # the methods below run in the loop thread only
    def transport(self, name: str, endpoint, limit: int, api_key: str | None):
        key = (name, endpoint.pk, endpoint.name, endpoint.base_url, api_key, limit)
        now = time.monotonic()
        for k, entry in list(self.transports.items()):
            if entry[1] == 0 and now - entry[2] > self.IDLE_SECONDS:
                del self.transports[k]
                asyncio.ensure_future(entry[0].close())
        entry = self.transports.get(key)
        if entry is None:
            entry = self.transports[key] = [_make_transport(name, endpoint, limit, api_key), 0, now]
        entry[1] += 1
        entry[0]._engine_key = key
        return entry[0]

    def release(self, transport) -> None:
        entry = self.transports.get(getattr(transport, "_engine_key", None))
        if entry is not None:
            entry[1] -= 1
            entry[2] = time.monotonic()

    async def close_all(self) -> None:
        entries, self.transports = list(self.transports.values()), {}
        for entry in entries:
            await entry[0].close()

    def shutdown(self) -> None:
        """Close every kept session (tests, interpreter exit)."""
        loop = self.loop
        if loop is not None and loop.is_running() and self.pid == os.getpid():
            try:
                asyncio.run_coroutine_threadsafe(self.close_all(), loop).result(timeout=5)
            except Exception:  # noqa: BLE001 - best effort at exit
                pass


_ENGINE = _Engine()
atexit.register(_ENGINE.shutdown)
if hasattr(os, "register_at_fork"):  # a forked child (Celery prefork) starts with a fresh engine
    os.register_at_fork(after_in_child=_ENGINE.__init__)


def chat_many_groups(groups: list[tuple[Endpoint, Iterable[ChatRequest]]], *,
                     on_result: Callable[[ChatResult], None] | None = None,
                     should_stop: Callable[[], bool] | None = None,
                     transport: str | None = None) -> list[ChatResult]:
    """Like chat_many for several endpoints at once (each with its own concurrency limit), all in
    one loop. Keys must be unique across groups. Results come back flat, in the given order."""
    transport = transport or default_transport()
    if transport not in TRANSPORTS:
        raise LLMConfigError(f"unknown LLM transport {transport!r}; one of {', '.join(TRANSPORTS)}")
    prepared, offline, size = _groups_prepare(groups)
    results: list[ChatResult | None] = [None] * size
    stop_flag = threading.Event()

    def stopping() -> bool:
        if stop_flag.is_set():
            return True
        if should_stop is not None and should_stop():
            stop_flag.set()
        return stop_flag.is_set()

    # In-process vLLM first (it runs in this thread), then the HTTP endpoints.
    for endpoint, reqs, off in offline:
        if stopping():
            break
        for i, result in enumerate(vllm_offline.chat_offline(endpoint, reqs)):
            results[off + i] = result
            if on_result is not None:
                on_result(result)

    if prepared and not stop_flag.is_set():
        _http_groups_run(prepared, results, stop_flag, transport, on_result=on_result,
                         check_stop=stopping if should_stop is not None else None)
    for i, r in enumerate(results):
        if r is None:
            key = _key_at(groups_flat=[g for g in prepared], offline=offline, index=i)
            results[i] = ChatResult(key=key, text=None, finish_reason=None, prompt_tokens=0, completion_tokens=0,
                                    latency_s=0.0, attempts=0, error=CANCELLED, raw=None)
    return results  # type: ignore[return-value]


def _groups_prepare(groups) -> tuple[list[_Group], list[tuple[Any, list[ChatRequest], int]], int]:
    """(HTTP groups, in-process vLLM groups with their offsets, number of requests); checks the keys
    are unique and every HTTP endpoint can be called."""
    prepared: list[_Group] = []
    offline: list[tuple[Any, list[ChatRequest], int]] = []
    keys: set[str] = set()
    offset = 0
    for endpoint, reqs in groups:
        reqs = list(reqs)
        for r in reqs:
            if r.key in keys:
                raise ValueError(f"duplicate ChatRequest key {r.key!r}")
            keys.add(r.key)
        if not reqs:
            continue
        if endpoint.backend == "vllm_offline":
            offline.append((endpoint, reqs, offset))
        else:
            if not (endpoint.base_url or "").strip():
                raise LLMConfigError(f"endpoint {endpoint.name!r} has no base URL")
            prepared.append(_Group(endpoint=endpoint, requests=reqs, api_key=api_key_for(endpoint), offset=offset))
        offset += len(reqs)
    return prepared, offline, offset


def _http_groups_run(prepared: list[_Group], results: list, stop_flag: threading.Event, transport: str, *,
                     on_result: Callable[[ChatResult], None] | None,
                     check_stop: Callable[[], bool] | None) -> None:
    """Run the HTTP groups on the engine's loop; hand results to on_result in this thread."""
    out: deque = deque()
    finished_event = threading.Event()
    backoff = (float(_setting("PREFLAB_LLM_BACKOFF", 1.0)), float(_setting("PREFLAB_LLM_BACKOFF_MAX", 60.0)))
    failure: list[BaseException] = []

    future = asyncio.run_coroutine_threadsafe(
        _run_groups(prepared, results, out, stop_flag, transport, backoff), _ENGINE.loop_for_call())

    def finished(f):
        if not f.cancelled() and f.exception() is not None:
            failure.append(f.exception())
        finished_event.set()

    future.add_done_callback(finished)
    next_check = time.monotonic() + 0.25
    try:
        while True:
            # Drain in batches every 20 ms rather than waking this thread once per result:
            # at ~1000 results/s, per-item wake-ups cost the loop thread the GIL.
            ended = finished_event.wait(0.02)
            while out:
                item = out.popleft()
                if on_result is not None:
                    on_result(item)
            if ended and not out:
                break
            if check_stop is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + 0.25
                check_stop()
    finally:
        stop_flag.set()  # normal end: a no-op; an exception here (on_result raised): stop the loop
        try:
            future.result()
        except BaseException:  # noqa: BLE001 - kept in `failure` by finished()
            pass
    if failure:
        raise failure[0]


def _key_at(*, groups_flat: list[_Group], offline: list, index: int) -> str:
    for g in groups_flat:
        if g.offset <= index < g.offset + len(g.requests):
            return g.requests[index - g.offset].key
    for _endpoint, reqs, off in offline:
        if off <= index < off + len(reqs):
            return reqs[index - off].key
    raise IndexError(index)  # pragma: no cover


def chat_many(endpoint: Endpoint, requests: Iterable[ChatRequest], *,
              on_result: Callable[[ChatResult], None] | None = None,
              should_stop: Callable[[], bool] | None = None,
              transport: str | None = None) -> list[ChatResult]:
    """Send every request to the endpoint; results in request order (see the module docstring)."""
    return chat_many_groups([(endpoint, requests)], on_result=on_result, should_stop=should_stop,
                            transport=transport)
