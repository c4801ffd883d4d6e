"""Generated AlpacaEval-style annotations with known structure, shared by the evaluation tests."""
import math

import numpy as np

REFERENCE = "ref"
# name: (skill against the reference, length of its outputs relative to the reference's)
MODELS = {"concise_strong": (0.9, 0.6), "verbose_weak": (-0.6, 1.9), "plain": (0.0, 1.0), "long_strong": (1.3, 1.5),
          "short_weak": (-1.2, 0.7)}
GAMED = {"ref_verbose": (0.0, 1.9), "ref_concise": (0.0, 0.55)}


def instruction(i: int) -> str:
    return f"Instruction {i}: explain something."


def annotations(seed: int = 0, n_instructions: int = 80, models=MODELS, length_bias: float = 1.2,
                difficulty_sd: float = 1.5, soft: bool = True) -> tuple[list[dict], np.ndarray]:
    """Records in AlpacaEval's format, every model on every instruction in order (output_1 = the reference). The
    judge prefers the model by skill - difficulty, and longer outputs by length_bias * tanh(length gap / 600).
    Preferences: 1, 2, ties 1.5 and legacy 0, fractional ones (a weighted judge) and a few None (judge failures)."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, difficulty_sd, n_instructions)
    ref_lengths = rng.integers(150, 1500, n_instructions)
    records = []
    for model, (skill, length_ratio) in models.items():
        for i in range(n_instructions):
            len_ref = int(ref_lengths[i])
            len_model = max(1, int(len_ref * length_ratio * rng.uniform(0.6, 1.4)))
            logit = skill - difficulty[i] + length_bias * math.tanh((len_model - len_ref) / 600)
            records.append({"instruction": instruction(i), "generator_1": REFERENCE, "generator_2": model,
                            "output_1": "r" * len_ref, "output_2": "m" * len_model,
                            "preference": _preference(rng, 1 / (1 + math.exp(-logit)), soft)})
    return records, difficulty


def _preference(rng, p_model: float, soft: bool):
    u = rng.random()
    if soft and u < 0.03:
        return None
    if soft and u < 0.18:
        return round(1 + p_model, 2)  # a weighted judge's soft preference
    if u < 0.26:
        return 1.5 if u < 0.23 else 0  # ties, also in the legacy encoding
    return 2 if rng.random() < p_model else 1


def gamed_annotations(seed: int = 1, n_instructions: int = 80) -> list[dict]:
    """The reference against length-gamed copies of itself (as AlpacaEval's verbose / concise baselines)."""
    records, _ = annotations(seed, n_instructions, models=GAMED, soft=False)
    return records
