"""A fake judge for the test LLM server: it prefers the answer with the higher "quality=N" tag."""
from __future__ import annotations

import json
import random
import re

from annotation.models import Record
from judging.services import judge_create

QUALITY_RE = re.compile(r"quality=(\d+)")
TEXT_RE = re.compile(r"<Text (\d+)>\n(.*?)\n</Text \1>", re.DOTALL)
PAIR_RE = re.compile(r"=== Answer A ===\n(.*?)\n\n=== Answer B ===\n(.*?)\n\n", re.DOTALL)


def user_prompt(body: dict) -> str:
    return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")


def quality(text: str) -> int:
    m = QUALITY_RE.search(text)
    return int(m.group(1)) if m else 0


def judge_responder(body: dict) -> str:
    """Answers both judge methods: UltraFeedback ratings (1-5 = quality, clipped) or a pairwise pick."""
    prompt = user_prompt(body)
    texts = TEXT_RE.findall(prompt)
    if texts:
        return json.dumps({"ratings": [{"text": int(n), "rating": max(1, min(5, quality(t))), "rationale": f"q{quality(t)}"}
                                       for n, t in texts]})
    m = PAIR_RE.search(prompt)
    if m:
        qa, qb = quality(m.group(1)), quality(m.group(2))
        pick = "tie" if qa == qb else ("A" if qa > qb else "B")
        return json.dumps({"reasoning": f"A has {qa}, B has {qb}.", "preferred": pick})
    return "I cannot help with that."


def make_judge(workspace, endpoint, name="uf", **kw):
    return judge_create(workspace=workspace, name=name, endpoint=endpoint, **kw)


def pair_records(dataset, n: int, *, seed: int = 0, prefix: str = "r", models=("base", "new")) -> list[Record]:
    """n records whose better answer (higher quality) sits at a seeded random position."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        good, bad = rng.randint(3, 5), rng.randint(1, 2)
        first_good = rng.random() < 0.5
        q1, q2 = (good, bad) if first_good else (bad, good)
        out.append(Record(dataset=dataset, external_id=f"{prefix}{i}",
                          fields={"prompt": f"Question {i}?", "response-1": f"answer one quality={q1}",
                                  "response-2": f"answer two quality={q2}" + "!" * i},
                          metadata={"response-1": {"model": models[0]}, "response-2": {"model": models[1]}}))
    return Record.objects.bulk_create(out)


def judge_best(record: Record) -> str:
    f = record.fields
    return "response-1" if quality(f["response-1"]) > quality(f["response-2"]) else "response-2"
