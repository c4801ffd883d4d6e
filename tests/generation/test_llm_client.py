"""generation.llm.chat_many against the OpenAI-compatible test server, over every transport."""
import time

import pytest

from generation.llm import LLMConfigError, chat_many, chat_many_groups
from generation.llm_types import CANCELLED, ChatRequest

pytestmark = pytest.mark.django_db

TRANSPORTS = ["http", "aiohttp", "openai", "openai-httpx"]


def _reqs(n, prefix="p"):
    return [ChatRequest(key=f"{prefix}{i}", messages=[{"role": "user", "content": f"question {i}"}]) for i in range(n)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_success_text_usage_and_order(llm_server, llm_endpoint, transport):
    ep = llm_endpoint(params={"temperature": 0.7, "max_tokens": 64})
    llm_server.latency = 0.01
    results = chat_many(ep, _reqs(20), transport=transport)
    assert [r.key for r in results] == [f"p{i}" for i in range(20)]
    for i, r in enumerate(results):
        assert r.error is None, r.error
        assert r.text.endswith(f"answer to: question {i}")
        assert r.finish_reason == "stop"
        assert r.prompt_tokens == 2 and r.completion_tokens > 0
        assert r.attempts == 1 and r.latency_s > 0
        assert r.raw["choices"][0]["message"]["content"] == r.text
    assert llm_server.count == 20
    body = llm_server.requests[0]
    assert body["model"] == ep.model and body["temperature"] == 0.7 and body["max_tokens"] == 64


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_500_then_success(llm_server, llm_endpoint, transport):
    ep = llm_endpoint()
    llm_server.fail("500", times=2)
    [r] = chat_many(ep, _reqs(1), transport=transport)
    assert r.error is None and r.attempts == 3
    assert llm_server.count == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_429_honours_retry_after(llm_server, llm_endpoint, transport):
    ep = llm_endpoint()
    llm_server.fail("429", times=1, retry_after=0.6)
    started = time.perf_counter()
    [r] = chat_many(ep, _reqs(1), transport=transport)
    elapsed = time.perf_counter() - started
    assert r.error is None and r.attempts == 2
    assert elapsed >= 0.6  # backoff alone would be ~0.01 s in tests


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_timeout_is_retried(llm_server, llm_endpoint, transport):
    ep = llm_endpoint(timeout=0.3)
    llm_server.fail("hang", times=1)
    started = time.perf_counter()
    [r] = chat_many(ep, _reqs(1), transport=transport)
    assert r.error is None and r.attempts == 2
    assert 0.3 <= time.perf_counter() - started < 4


@pytest.mark.parametrize("kind,message", [("malformed", "malformed JSON"), ("empty", "no choices")])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_bodies_retried_then_final_error_kept(llm_server, llm_endpoint, transport, kind, message):
    ep = llm_endpoint(max_retries=2)
    llm_server.fail(kind, times=1)
    [ok] = chat_many(ep, _reqs(1), transport=transport)
    assert ok.error is None and ok.attempts == 2
    llm_server.fail(kind, times=10)
    [bad] = chat_many(ep, _reqs(1), transport=transport)
    assert bad.attempts == 3 and bad.text is None
    assert message in bad.error
    if kind == "malformed":
        assert isinstance(bad.raw, str) and bad.raw.startswith('{"id": "x"')  # the raw body is kept
    else:
        assert bad.raw["choices"] == []


def test_one_items_failure_does_not_affect_others(llm_server, llm_endpoint):
    ep = llm_endpoint(max_retries=1, max_concurrency=4)
    llm_server.fail("500", times=100, when=lambda body: body["messages"][-1]["content"] == "question 3")
    results = chat_many(ep, _reqs(8))
    assert [r.key for r in results] == [f"p{i}" for i in range(8)]
    assert [r.error is None for r in results] == [True, True, True, False, True, True, True, True]
    assert "HTTP 500" in results[3].error and results[3].attempts == 2


def test_client_error_is_not_retried(llm_server, llm_endpoint):
    ep = llm_endpoint()
    [r] = chat_many(ep, [ChatRequest(key="x", messages=[{"role": "user", "content": "hi"}],
                                     params={"model": None})])  # None params are dropped, model stays
    assert r.error is None
    bad = llm_endpoint(model="")
    [r] = chat_many(bad, _reqs(1))
    assert r.error.startswith("HTTP 400") and r.attempts == 1


@pytest.mark.parametrize("transport", ["http", "aiohttp", "openai"])
def test_concurrency_limit_respected_and_pipe_kept_full(llm_server, llm_endpoint, transport):
    ep = llm_endpoint(max_concurrency=5)
    chat_many(ep, _reqs(5, "warm"), transport=transport)  # client start-up is not what is measured
    # odd requests take 0.4 s, even ones 0.05 s: a pool that refills a slot as soon as it frees
    # needs ~(20 * 0.4 + 20 * 0.05) / 5 = 1.8 s; sending batches of 5 and waiting for the slowest
    # of each would need 8 * 0.4 = 3.2 s
    llm_server.latency = lambda body: 0.4 if int(body["messages"][-1]["content"].split()[-1]) % 2 else 0.05
    started = time.perf_counter()
    results = chat_many(ep, _reqs(40), transport=transport)
    elapsed = time.perf_counter() - started
    assert all(r.error is None for r in results)
    assert llm_server.max_in_flight == 5
    assert elapsed < 2.7


def test_system_prompt_and_param_merge(llm_server, llm_endpoint):
    ep = llm_endpoint(system_prompt="Be brief.", params={"temperature": 0.2, "top_p": 0.9, "seed": 1})
    chat_many(ep, [ChatRequest(key="a", messages=[{"role": "user", "content": "x"}], params={"temperature": 1.0}),
                   ChatRequest(key="b", messages=[{"role": "system", "content": "Own."},
                                                  {"role": "user", "content": "y"}])])
    by_last = {b["messages"][-1]["content"]: b for b in llm_server.requests}
    assert by_last["x"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert by_last["x"]["temperature"] == 1.0 and by_last["x"]["top_p"] == 0.9 and by_last["x"]["seed"] == 1
    assert by_last["y"]["messages"][0] == {"role": "system", "content": "Own."} and len(by_last["y"]["messages"]) == 2


def test_api_key_from_the_named_env_var(llm_server, llm_endpoint, monkeypatch):
    ep = llm_endpoint(api_key_env="PREFLAB_TEST_LLM_KEY")
    monkeypatch.delenv("PREFLAB_TEST_LLM_KEY", raising=False)
    with pytest.raises(LLMConfigError, match="PREFLAB_TEST_LLM_KEY"):
        chat_many(ep, _reqs(1))
    assert llm_server.count == 0
    monkeypatch.setenv("PREFLAB_TEST_LLM_KEY", "sk-test")
    [r] = chat_many(ep, _reqs(1))
    assert r.error is None


def test_on_result_in_callers_thread_and_should_stop(llm_server, llm_endpoint):
    import threading

    ep = llm_endpoint(max_concurrency=2)
    llm_server.latency = 0.1
    seen, threads = [], set()

    def on_result(r):
        seen.append(r.key)
        threads.add(threading.get_ident())

    results = chat_many(ep, _reqs(40), on_result=on_result, should_stop=lambda: len(seen) >= 4)
    assert threads == {threading.get_ident()}
    done = [r for r in results if r.error is None]
    cut = [r for r in results if r.error == CANCELLED]
    assert 4 <= len(done) < 16 and len(done) + len(cut) == 40
    assert sorted(seen) == sorted(r.key for r in done)
    assert llm_server.count < 18


def test_groups_run_endpoints_together(llm_server, llm_endpoint):
    a, b = llm_endpoint(max_concurrency=3), llm_endpoint(max_concurrency=3)
    llm_server.latency = 0.3
    started = time.perf_counter()
    results = chat_many_groups([(a, _reqs(6, "a")), (b, _reqs(6, "b"))])
    assert time.perf_counter() - started < 1.1  # both endpoints in parallel (~0.6 s), not one after the other (1.2 s)
    assert [r.key for r in results] == [f"a{i}" for i in range(6)] + [f"b{i}" for i in range(6)]
    assert llm_server.max_in_flight == 6
    with pytest.raises(ValueError, match="duplicate"):
        chat_many_groups([(a, _reqs(1)), (b, _reqs(1))])


def test_connection_refused_is_final_error_after_retries(llm_endpoint):
    ep = llm_endpoint(base_url="http://127.0.0.1:9/v1", max_retries=1)
    [r] = chat_many(ep, _reqs(1))
    assert r.attempts == 2 and "connection error" in r.error


def test_limit_holds_across_concurrent_calls_and_queueing_is_not_a_timeout(llm_server, llm_endpoint):
    """Two chunks on the threads of one worker share the endpoint's limit; waiting for a free slot
    does not count against the per-request timeout."""
    import threading

    ep = llm_endpoint(max_concurrency=3, timeout=0.5, max_retries=0)
    llm_server.latency = 0.3
    out = {}

    def call(prefix):
        out[prefix] = chat_many(ep, _reqs(6, prefix))

    threads = [threading.Thread(target=call, args=(p,)) for p in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert llm_server.max_in_flight == 3  # not 6
    assert all(r.error is None for rs in out.values() for r in rs)  # 12 requests × 0.3 s / 3 slots = 1.2 s > 0.5 s


def test_the_earlier_of_two_concurrent_calls_is_served_first(llm_server, llm_endpoint):
    """Two chunks on the threads of one process share the endpoint's slots oldest call first: the first
    finishes while the second fills the slots it frees (FIFO would finish both together, draining the pipe
    at every chunk boundary), and the limit still holds."""
    import threading
    import time

    ep = llm_endpoint(max_concurrency=3)
    llm_server.latency = 0.15
    ended = {}

    def call(prefix):
        results = chat_many(ep, _reqs(9, prefix))
        assert all(r.error is None for r in results)
        ended[prefix] = time.perf_counter()

    first = threading.Thread(target=call, args=("x",))
    first.start()
    time.sleep(0.05)  # the second call queues behind the first one's requests
    second = threading.Thread(target=call, args=("y",))
    second.start()
    first.join()
    second.join()
    assert llm_server.max_in_flight == 3
    # 18 requests, 3 slots, 0.15 s each: the first call's 9 in ~0.45 s, the second's end ~0.45 s later
    assert ended["y"] - ended["x"] > 0.3, ended
