"""preflab's exports train in TRL as they are: DPOTrainer and RewardTrainer on the triplets (with
trl_margin, RewardTrainer gets the `margin` it subtracts in its loss), KTOTrainer on the unpaired rows,
for two steps each on a tiny model built here from a config with a word-level tokenizer (nothing is
downloaded). Needs the `train` extra (torch, transformers, trl); CI installs it."""
import importlib.util

import pytest

from tests.factories import DatasetFactory, RecordFactory, ResponseFactory, UserFactory
from tests.helpers import need

pytestmark = [pytest.mark.django_db]

WORDS = ("the cat sat on a mat dog ran far fast slow red blue green sun moon tree rock water fire "
         "what is one two three four five six seven eight nine ten yes no be brief").split()


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture
def training(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be downloaded
    need(all(_has(m) for m in ("torch", "transformers", "trl", "datasets")), "the train extra (torch, transformers, trl)",
         "not installed (pip install -e '.[train]')")


@pytest.fixture
def exported(admin_client_api, workspace, tmp_path):
    """A dataset of 8 records, each ranked by two annotators who agree; its exports as files."""
    ds = DatasetFactory(workspace=workspace)
    users = [UserFactory(), UserFactory()]
    for i in range(8):
        rec = RecordFactory(dataset=ds, external_id=f"r{i}", metadata={"system": "be brief"},
                            fields={"prompt": f"what is {WORDS[i]} {WORDS[i + 1]}",
                                    "response-1": " ".join(WORDS[i:i + 4 + i % 3]),
                                    "response-2": " ".join(WORDS[i + 5:i + 7])})
        better = "response-1" if i % 2 else "response-2"
        worse = "response-2" if i % 2 else "response-1"
        for user in users:
            ResponseFactory(record=rec, user=user, values={"ranking": [{"value": better, "rank": 1},
                                                                       {"value": worse, "rank": 2}]})

    def fetch(path: str, **query) -> str:
        resp = admin_client_api.get(f"/api/v1/datasets/{ds.pk}/{path}/", {"format": "parquet", **query})
        assert resp.status_code == 200
        out = tmp_path / f"{path}-{len(list(tmp_path.iterdir()))}.parquet"
        out.write_bytes(b"".join(resp.streaming_content))
        return str(out)

    return fetch


def _tokenizer(directory):
    """A character-level tokenizer (a BPE without merges): prompt + completion tokenize as the two
    apart, as TRL expects."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
    chars = sorted({c for c in " ".join(WORDS) + " :abcdefghijklmnopqrstuvwxyz"})
    vocab = {w: i for i, w in enumerate(specials + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                                   eos_token="<eos>")
    # a chat template for the conversational exports: role words and contents, separated by spaces
    fast.chat_template = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
                          "{% if add_generation_prompt %}assistant : {% endif %}")
    fast.save_pretrained(directory)
    return PreTrainedTokenizerFast.from_pretrained(directory)


def _model(tokenizer, directory, *, reward: bool = False) -> str:
    """A tiny Llama built from a config (random weights), saved where the trainers load it (and their
    reference model) from."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaConfig

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, num_labels=1)
    model = (AutoModelForSequenceClassification if reward else AutoModelForCausalLM).from_config(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def _args(tmp_path, cls, **kw):
    return cls(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=2, learning_rate=1e-3,
               logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, seed=0, **kw)


def _steps_with_finite_loss(trainer) -> list[float]:
    import math

    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses), trainer.state.log_history
    return losses


@pytest.mark.parametrize("style", ["standard", "conversational"])
def test_dpo_trainer_on_the_triplet_export(training, exported, tmp_path, style):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tokenizer = _tokenizer(tmp_path / "tok")
    data = Dataset.from_parquet(exported("triplets", style=style), cache_dir=str(tmp_path / "cache"))
    assert data.num_rows == 8 and "margin" not in data.column_names
    trainer = DPOTrainer(model=_model(tokenizer, tmp_path / "model"), args=_args(tmp_path, DPOConfig, max_length=160),
                         train_dataset=data,
                         processing_class=tokenizer)
    _steps_with_finite_loss(trainer)


def test_reward_trainer_reads_trl_margin_and_only_that(training, exported, tmp_path):
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    tokenizer = _tokenizer(tmp_path / "tok")
    plain = Dataset.from_parquet(exported("triplets"), cache_dir=str(tmp_path / "c1"))
    with_margin = Dataset.from_parquet(exported("triplets", trl_margin="vote_margin"), cache_dir=str(tmp_path / "c2"))
    assert "margin" not in plain.column_names and with_margin["margin"] == with_margin["vote_margin"] == [1.0] * 8
    for data in (plain, with_margin):
        trainer = RewardTrainer(model=_model(tokenizer, tmp_path / "model", reward=True),
                                args=_args(tmp_path, RewardConfig, max_length=160), train_dataset=data,
                                processing_class=tokenizer)
        batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
        # the margin goes into the loss only when the export was asked for one
        assert ("margin" in batch) == ("margin" in data.column_names)
        _steps_with_finite_loss(trainer)


@pytest.mark.parametrize("style", ["standard", "conversational"])
def test_kto_trainer_on_the_unpaired_export(training, exported, tmp_path, style):
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    tokenizer = _tokenizer(tmp_path / "tok")
    data = Dataset.from_parquet(exported("unpaired", style=style), cache_dir=str(tmp_path / "cache"))
    assert data.num_rows == 16 and sorted(data["label"]) == [False] * 8 + [True] * 8
    trainer = KTOTrainer(model=_model(tokenizer, tmp_path / "model"), args=_args(tmp_path, KTOConfig, max_length=160),
                         train_dataset=data,
                         processing_class=tokenizer)
    _steps_with_finite_loss(trainer)
