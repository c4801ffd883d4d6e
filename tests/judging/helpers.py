"""Realistic judge outputs for the test server's responder, and small builders."""
from __future__ import annotations

import json
import re

from annotation.models import Question, Record
from judging.services import judge_create
from tests.factories import RecordFactory

TEXT_RE = re.compile(r"<Text (\d+)>\n(.*?)\n</Text \1>", re.DOTALL)


def user_prompt(body: dict) -> str:
    return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")


def shown_texts(body: dict) -> list[str]:
    """The responses in the order the judge was shown them (Text 1..n)."""
    return [t for _n, t in TEXT_RE.findall(user_prompt(body))]


def rate_by_content(text: str) -> int:
    """The fake judge: responses containing GOOD get 5, BAD get 1, OK get 3, others 2."""
    if "GOOD" in text:
        return 5
    if "BAD" in text:
        return 1
    if "OK" in text:
        return 3
    return 2


def ratings_as_json(ratings: list[int]) -> str:
    return json.dumps({"ratings": [{"text": i + 1, "rating": r, "rationale": f"reason {i + 1} for {r}"}
                                   for i, r in enumerate(ratings)]})


def ratings_as_markdown(ratings: list[int]) -> str:
    parts = ["Here is my assessment of each text.\n"]
    for i, r in enumerate(ratings, start=1):
        parts.append(f"#### Output for Text {i}\n**Rating**: {r}\n**Rationale**: Text {i} deserves a {r}.\n")
    parts.append("I hope this evaluation is useful.")
    return "\n".join(parts)


def content_rater(fmt: str = "json"):
    def respond(body: dict) -> str:
        ratings = [rate_by_content(t) for t in shown_texts(body)]
        return ratings_as_json(ratings) if fmt == "json" else ratings_as_markdown(ratings)
    return respond


def make_judge(workspace, endpoint, name="uf", **kw):
    return judge_create(workspace=workspace, name=name, endpoint=endpoint, **kw)


def add_records(dataset, rows: list[dict]) -> list[Record]:
    return [RecordFactory(dataset=dataset, external_id=f"r{i}", fields=row.get("fields", row),
                          metadata=row.get("metadata", {}))
            for i, row in enumerate(rows)]


def ranking_question(dataset) -> Question:
    return dataset.questions.get(kind="ranking")
