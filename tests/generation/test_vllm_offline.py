"""The vllm_offline backend with a stand-in `vllm` module that records every call (no GPU here)."""
import sys
import types
from dataclasses import dataclass, field

import pytest

from annotation.jobs import job_run_inline
from annotation.models import Record
from generation.backends import vllm_offline
from generation.llm import chat_many
from generation.llm_types import ChatRequest
from generation.services import generation_job_create
from tests.factories import EndpointFactory

pytestmark = pytest.mark.django_db


@dataclass
class _Completion:
    text: str
    token_ids: list
    finish_reason: str = "length"


@dataclass
class _Output:
    request_id: str
    prompt_token_ids: list
    outputs: list = field(default_factory=list)


class _Tokenizer:
    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        assert tokenize is False and add_generation_prompt is True
        return "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|assistant|>"


@pytest.fixture
def fake_vllm(monkeypatch):
    calls = {"llm": [], "generate": [], "sampling": []}

    class SamplingParams:
        def __init__(self, **kwargs):
            calls["sampling"].append(kwargs)
            self.kwargs = kwargs

    class LLM:
        def __init__(self, model, **kwargs):
            calls["llm"].append({"model": model, **kwargs})
            self.model = model

        def get_tokenizer(self):
            return _Tokenizer()

        def generate(self, prompts, sampling_params=None, use_tqdm=True):
            calls["generate"].append({"prompts": list(prompts), "sampling_params": [s.kwargs for s in sampling_params]})
            outs = []
            for i, (prompt, sp) in enumerate(zip(prompts, sampling_params)):
                outs.append(_Output(request_id=str(i), prompt_token_ids=list(range(len(prompt.split("|")))),
                                    outputs=[_Completion(text=f"{self.model} sample {j} t={sp.kwargs.get('temperature')} "
                                                              f"for {prompt}", token_ids=[1] * (5 + j))
                                             for j in range(sp.kwargs["n"])]))
            return outs

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    vllm_offline.engines_clear()
    yield calls
    vllm_offline.engines_clear()


def test_one_generate_call_per_chunk_with_chat_template(workspace, fake_vllm):
    ep = EndpointFactory(workspace=workspace, name="local", backend="vllm_offline", model="org/tiny-chat",
                         system_prompt="Be kind.",
                         params={"temperature": 0.6, "top_p": 0.9, "top_k": 40, "max_tokens": 256,
                                 "stop": "###", "engine": {"max_model_len": 4096}})
    reqs = [ChatRequest(key=f"k{i}", messages=[{"role": "user", "content": f"q{i}"}]) for i in range(3)]
    reqs.append(ChatRequest(key="hot", messages=[{"role": "user", "content": "q9"}], params={"temperature": 1.1, "seed": 5}))
    results = chat_many(ep, reqs)
    assert [r.key for r in results] == ["k0", "k1", "k2", "hot"]
    assert all(r.error is None for r in results)
    assert fake_vllm["llm"] == [{"model": "org/tiny-chat", "max_model_len": 4096}]
    [call] = fake_vllm["generate"]
    assert call["prompts"][0] == "<|system|>Be kind.<|user|>q0<|assistant|>"
    assert call["sampling_params"][0] == {"n": 1, "temperature": 0.6, "top_p": 0.9, "top_k": 40, "max_tokens": 256,
                                          "stop": ["###"]}
    assert call["sampling_params"][3]["temperature"] == 1.1 and call["sampling_params"][3]["seed"] == 5
    assert results[0].text.startswith("org/tiny-chat sample 0 t=0.6") and results[0].completion_tokens == 5
    assert results[0].finish_reason == "length" and results[0].prompt_tokens > 0
    chat_many(ep, reqs[:1])
    assert len(fake_vllm["llm"]) == 1  # the engine is built once per worker process
    assert len(fake_vllm["generate"]) == 2


def test_samples_strategy_folds_into_n(workspace, fake_vllm, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')
    ep = EndpointFactory(workspace=workspace, name="gpu", backend="vllm_offline", model="m",
                         params={"temperature": 0.8})
    job = generation_job_create(workspace=workspace, dataset_name="vllm-ds", endpoints=[ep], strategy="samples", n=3,
                                prompts_source={"file": str(path)}, start=False)
    assert job.queue == "gpu"  # settings.PREFLAB_GPU_QUEUE
    job = job_run_inline(job=job)
    assert job.done == 6
    [call] = fake_vllm["generate"]
    assert len(call["prompts"]) == 2 and [s["n"] for s in call["sampling_params"]] == [3, 3]
    rec = Record.objects.get(dataset=job.dataset, fields__prompt="a")
    assert [rec.fields[f"response-{i}"].split(" t=")[0] for i in (1, 2, 3)] == ["m sample 0", "m sample 1", "m sample 2"]
    assert rec.metadata["response-3"]["completion_tokens"] == 7
