"""Best-of-n: for each prompt with n generations, the best one by judge score, as SFT rows.

This is the data step of AlpacaFarm's best-of-n and expert iteration: sample n responses per prompt
(generation writes them as the fields response-1..n of one record), let a judge score them
(judging writes a Suggestion per record with the ranking and, in `raw["ratings"]`, the rating of
each response), keep the best response, fine-tune on (prompt, completion).

Choosing the best
    * with one judge (or `agent=` naming one): its rank-1 response;
    * with several judges: the lowest mean rank across judges (a judge that did not rank a field
      does not count for it);
    * a tie at the top (two responses sharing the best rank / mean rank) is broken by the mean
      rating from `raw["ratings"]` when the judges gave ratings; if still tied the record is left
      out (`include_ties=true` keeps it and takes the first tied response in the question's order).

Rows (JSONL): prompt, completion, model, score, plus record_id, external_id, field, n, agents,
margin. `score` is the chosen response's mean judge rating when ratings exist, else the suggestion
score (the judge's margin or confidence). `min_score` drops rows below it. With a chat prompt
field, `prompt` is the message list and `completion` is [{"role": "assistant", "content": ...}] —
TRL's conversational prompt-completion format; otherwise both are strings.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError

from annotation.models import Dataset, Field, Record, Suggestion
from annotation.selectors import dataset_pages, ranking_question

from .leaderboards import record_models


def _rating_of(raw: Any, field: str) -> float | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("ratings"), dict):
        return None
    value = raw["ratings"].get(field)
    if isinstance(value, dict):
        value = value.get("rating", value.get("value"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _has_text(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, list) and bool(value)


def _completion_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # a chat field: the last assistant turn
        for m in reversed(value):
            if isinstance(m, dict) and m.get("role") == "assistant":
                return str(m.get("content") or "")
    return ""


def best_of_n_params(params: dict) -> dict:
    """Parse query/CLI parameters: agent, min_score, include_ties, min_n. Bad values: ValidationError."""
    out: dict[str, Any] = {"agent": params.get("agent") or None}
    raw = params.get("min_score")
    if raw not in (None, ""):
        try:
            out["min_score"] = float(raw)
        except (TypeError, ValueError):
            raise ValidationError({"min_score": "must be a number"}) from None
    else:
        out["min_score"] = None
    ties = str(params.get("include_ties", "false")).lower()
    if ties not in ("true", "false", "1", "0"):
        raise ValidationError({"include_ties": "must be true or false"})
    out["include_ties"] = ties in ("true", "1")
    raw_n = params.get("min_n", 2)
    try:
        out["min_n"] = int(raw_n)
    except (TypeError, ValueError):
        raise ValidationError({"min_n": "must be an integer"}) from None
    if out["min_n"] < 1:
        raise ValidationError({"min_n": "must be at least 1"})
    return out


def best_of_n_rows(*, dataset: Dataset, agent: str | None = None, min_score: float | None = None,
                   include_ties: bool = False, min_n: int = 2, batch: int = 1000) -> Iterator[dict]:
    """Stream the SFT rows of a dataset (see the module doc). Records without a suggestion, or with
    fewer than `min_n` non-empty responses, give no row."""
    question = ranking_question(dataset)
    if question is None:
        raise ValidationError({"question": "best-of-n needs a ranking question (the judge's ranking of the responses)"})
    fields = list((question.options or {}).get("values", []))
    prompt_field = dataset.prompt_field
    kinds = dict(dataset.fields.values_list("name", "kind"))
    chat_prompt = kinds.get(prompt_field) == Field.Kind.CHAT
    if agent is not None and not Suggestion.objects.filter(question=question, agent=agent).exists():
        raise ValidationError({"agent": f"no suggestion of agent {agent!r} in this dataset"})
    for records in dataset_pages(Record.objects.filter(dataset=dataset).values_list("pk", "external_id", "fields",
                                                                                    "metadata"),
                                 dataset_id=dataset.pk, size=batch):
        suggestions: dict[int, list[tuple[str, Any, float | None, Any]]] = defaultdict(list)
        qs = Suggestion.objects.filter(record_id__in=[r[0] for r in records], question=question)
        if agent is not None:
            qs = qs.filter(agent=agent)
        for record_id, agent_name, value, score, raw in qs.values_list("record_id", "agent", "value", "score", "raw"):
            suggestions[record_id].append((agent_name, value, score, raw))
        for record_id, external_id, rec_fields, metadata in records:
            row = _best_row(record_id, external_id, rec_fields or {}, metadata, suggestions.get(record_id, []),
                            fields=fields, prompt_field=prompt_field, chat_prompt=chat_prompt,
                            include_ties=include_ties, min_n=min_n)
            if row is None or (min_score is not None and (row["score"] is None or row["score"] < min_score)):
                continue
            yield row


def _judges_means(present: list[str], suggestions) -> tuple[dict[str, float], dict[str, float], list[str], list[float]]:
    """(mean rank, mean rating) per field over the judges that ranked / rated it, the judges' agents
    and their suggestion scores."""
    from annotation.agreement import ranks_from_value

    rank_sum: dict[str, float] = defaultdict(float)
    rank_n: dict[str, int] = defaultdict(int)
    rating_sum: dict[str, float] = defaultdict(float)
    rating_n: dict[str, int] = defaultdict(int)
    agents, scores = [], []
    for agent_name, value, score, raw in suggestions:
        ranks = ranks_from_value(value)
        if not ranks:
            continue
        agents.append(agent_name)
        if score is not None:
            scores.append(float(score))
        for f in present:
            if f in ranks:
                rank_sum[f] += ranks[f]
                rank_n[f] += 1
            rating = _rating_of(raw, f)
            if rating is not None:
                rating_sum[f] += rating
                rating_n[f] += 1
    ranked = [f for f in present if rank_n[f]]
    mean_rank = {f: rank_sum[f] / rank_n[f] for f in ranked}
    mean_rating = {f: rating_sum[f] / rating_n[f] for f in ranked if rating_n[f]}
    return mean_rank, mean_rating, agents, scores


def _prompt_completion(prompt_value: Any, text: str, *, chat_prompt: bool) -> tuple[Any, Any]:
    """TRL's conversational prompt-completion pair with a chat prompt field, else two strings."""
    if chat_prompt:
        prompt = prompt_value if isinstance(prompt_value, list) else [{"role": "user", "content": str(prompt_value or "")}]
        return prompt, [{"role": "assistant", "content": text}]
    return (prompt_value if isinstance(prompt_value, str) else _completion_text(prompt_value)), text


def _best_row(record_id, external_id, rec_fields, metadata, suggestions, *, fields, prompt_field, chat_prompt,
              include_ties, min_n) -> dict | None:
    present = [f for f in fields if _has_text(rec_fields.get(f))]
    if len(present) < min_n or not suggestions:
        return None
    mean_rank, mean_rating, agents, scores = _judges_means(present, suggestions)
    if not mean_rank:
        return None
    ranked = list(mean_rank)
    best_rank = min(mean_rank.values())
    tied = [f for f in ranked if mean_rank[f] == best_rank]
    if len(tied) > 1 and all(f in mean_rating for f in tied):
        top = max(mean_rating[f] for f in tied)
        tied = [f for f in tied if mean_rating[f] == top]
    if len(tied) > 1 and not include_ties:
        return None
    best = tied[0]
    if best in mean_rating:
        score = round(mean_rating[best], 4)
        others = sorted((mean_rating[f] for f in ranked if f != best and f in mean_rating), reverse=True)
        margin = round(score - others[0], 4) if others else None
    else:
        score = round(sum(scores) / len(scores), 4) if scores else None
        margin = score
    prompt, completion = _prompt_completion(rec_fields.get(prompt_field), _completion_text(rec_fields.get(best)),
                                            chat_prompt=chat_prompt)
    return {"prompt": prompt, "completion": completion, "model": record_models(metadata, [best]).get(best),
            "score": score, "margin": margin, "record_id": record_id, "external_id": external_id, "field": best,
            "n": len(present), "agents": sorted(set(agents)), "tied": len(tied) > 1}
