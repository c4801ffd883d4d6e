"""The triplet export: a dataset's records, resolved into (prompt, chosen, rejected) rows, streamed."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from django.core.exceptions import ValidationError

from ..agreement.datasets import dataset_competence_votes, judge_key
from ..models import Dataset, Field, Record, Review
from ..quality.standing import excluded_user_ids
from .parameters import Target, export_params_parse, export_target
from .reading import (
    CHUNK_RECORDS,
    REVIEW_VERDICTS,
    Chunk,
    ExportReader,
    Verdict,
    first_then_prefetched,
    old_objects_frozen,
)
from .resolution import PairResult, record_pairs


def triplets_export(*, dataset: Dataset, question: str | None = None, pairs: str = "best_worst",
                    resolve: str = "majority", source: str = "human", include_ties: bool = False,
                    style: str = "standard", min_margin: float | None = None,
                    margin_from: str = "votes", include_both_bad: bool = False,
                    trl_margin: str | None = None, include_gold: bool = False, include_excluded: bool = False,
                    reviews: str = "use", chunk_size: int = CHUNK_RECORDS,
                    on_progress: Callable[[int], None] | None = None) -> Iterator[dict]:
    """Yield the preference triplets of a dataset, streamed (see the package docstring for the rules).

    Raises ValidationError (naming the parameter) before yielding anything when an option is bad.
    `on_progress(n)` is called after each chunk with the number of records it held.
    """
    export_params_parse({"pairs": pairs, "resolve": resolve, "source": source, "style": style,
                         "include_ties": include_ties, "min_margin": min_margin, "margin_from": margin_from,
                         "include_both_bad": include_both_bad, "trl_margin": trl_margin, "include_gold": include_gold,
                         "include_excluded": include_excluded, "reviews": reviews}, with_format=False)
    target = export_target(dataset, question)
    if margin_from == "strength" and not target.graded:
        raise ValidationError({"margin_from": f"'strength' needs a preference question; {target.question.name!r} "
                                              f"is a {target.question.kind} question"})
    if trl_margin == "strength_margin" and not target.graded:
        raise ValidationError({"trl_margin": f"'strength_margin' needs a preference question; {target.question.name!r} "
                                             f"is a {target.question.kind} question"})
    if trl_margin == "judge_margin" and source == "human":
        raise ValidationError({"trl_margin": "'judge_margin' needs source=suggestions or both (judges' scores)"})
    excluded = frozenset() if include_excluded else frozenset(excluded_user_ids(dataset=dataset))
    kinds = dict(dataset.fields.values_list("name", "kind"))
    prompt_field = dataset.prompt_field
    if prompt_field not in kinds:
        raise ValidationError({"prompt_field": f"the dataset's prompt field {prompt_field!r} is not one of its fields"})
    plan = _Plan(target=target, prompt_field=prompt_field, pairs=pairs, resolve=resolve, source=source,
                 include_ties=include_ties, conversational=style == "conversational", min_margin=min_margin,
                 margin_from=margin_from, include_both_bad=include_both_bad, trl_margin=trl_margin,
                 prompt_is_chat=kinds.get(prompt_field) == Field.Kind.CHAT,
                 chat_fields=frozenset(f for f in target.fields if kinds.get(f) == Field.Kind.CHAT),
                 competence=_competence_for_export(dataset, target.question, excluded) if resolve == "weighted" else None)
    reader = ExportReader(dataset_id=dataset.pk, target=target, names=plan.names,
                          conversational=plan.conversational, use_humans=source in ("human", "both"),
                          use_suggestions=plan.use_suggestions, chunk_size=chunk_size,
                          with_voters=resolve == "weighted", include_gold=include_gold,
                          excluded=excluded,
                          with_reviews=reviews == "use" and source in ("human", "both") and _has_verdicts(dataset))
    return _triplets_iter(plan, reader, on_progress)


def _competence_for_export(dataset: Dataset, question, excluded: frozenset):
    """The dataset's competence model as the export weighs votes with it (CompetenceFit.vote reads the
    competences, labels and priors), fitted from the votes as arrays: no per-unit dicts or posteriors,
    which took about a kilobyte a record (a GB at a million records). The answers the export leaves out
    (excluded annotators) are left out of the fit too."""
    return dataset_competence_votes(dataset, question, leave_out=excluded)


def _has_verdicts(dataset: Dataset) -> bool:
    """Whether any record of the dataset has a reviewer's verdict (else no chunk looks for one)."""
    return Review.objects.filter(dataset_id=dataset.pk, decision__in=REVIEW_VERDICTS).exists()


def triplets_export_count(dataset: Dataset, *, include_gold: bool = False) -> int:
    """Records an export will walk (for progress bars): gold ones only when asked for."""
    records = Record.objects.filter(dataset_id=dataset.pk)
    return records.count() if include_gold else records.filter(is_gold=False).count()


@dataclass(frozen=True)
class _Plan:
    """What one export resolves and writes, fixed before the first record is read."""

    target: Target
    prompt_field: str
    pairs: str
    resolve: str
    source: str
    include_ties: bool
    conversational: bool
    min_margin: float | None
    margin_from: str
    include_both_bad: bool
    trl_margin: str | None
    prompt_is_chat: bool
    chat_fields: frozenset
    competence: Any = None  # resolve=weighted: the dataset's competence model, fitted before the first row

    @property
    def names(self) -> list[str]:
        """The fields read as text: the prompt, then the ranked ones."""
        return list(dict.fromkeys([self.prompt_field, *self.target.fields]))

    @property
    def use_suggestions(self) -> bool:
        return self.source in ("suggestions", "both")


@dataclass
class _Resolved:
    """One record that gives rows: its row, pairs, number of voters, where the votes came from and
    (suggestions) their raw outputs."""

    row: tuple
    results: list[PairResult]
    voters: int
    origin: str
    raws: list | None
    reviewed_by: str | None = None
    reviewed: bool = False


RESOLVED_CACHE_SIZE = 20_000  # distinct answer combinations whose pairs are kept (a few MB)


def _triplets_iter(plan: _Plan, reader: ExportReader, on_progress: Callable[[int], None] | None) -> Iterator[dict]:
    rows_of = _RowWriter(plan)
    # The pairs of a record depend only on its answers (in their order) and the plan, except under
    # resolve=weighted (who answered counts): records with the same answers are resolved once.
    cache: dict[tuple, list] | None = {} if plan.resolve != "weighted" else None
    with old_objects_frozen():
        for chunk in first_then_prefetched(reader.chunks):
            resolved = [r for r in (_record_resolve(plan, row, chunk, cache) for row in chunk.rows) if r is not None]
            if resolved:
                texts, offset = reader.texts(chunk, [r.row for r in resolved])
                reader.measure([texts[r.row[0]] for r in resolved[:20]], offset)
                for r in resolved:
                    yield from rows_of(r, texts[r.row[0]], offset)  # a list: no generator per record
            if on_progress is not None:
                on_progress(len(chunk.rows))


def _record_resolve(plan: _Plan, row: tuple, chunk: Chunk, cache: dict[tuple, list] | None = None) -> _Resolved | None:
    """The pairs one record gives: from its submitted responses, else (when asked) its suggestions.
    `cache`: answers (as read) -> the pairs they give, for records resolved from human answers."""
    rid = row[0]
    if chunk.reviewed:
        verdict = chunk.reviewed.get(rid)
        if verdict is not None:
            return _verdict_resolve(plan, row, verdict)
    if rid in chunk.both_bad and not plan.include_both_bad:
        return None
    if cache is not None:
        key = chunk.answer_keys.get(rid)
        if key is not None:
            key = tuple(key)
            results = cache.get(key)
            if results is None:
                results = _human_pairs(plan, chunk.human[rid], chunk.strengths.get(rid))
                if len(cache) >= RESOLVED_CACHE_SIZE:
                    cache.clear()
                cache[key] = results
            return _Resolved(row, results, len(key), "human", None) if results else None
    votes = chunk.human.get(rid)
    origin, raws = "human", None
    voters = chunk.voters.get(rid) if votes else None
    scores = chunk.strengths.get(rid) if votes else None  # a graded preference's strengths
    margin_by = "scores" if plan.margin_from == "strength" else "ranks" if plan.resolve == "mean_rank" else "votes"
    if not votes:
        if not plan.use_suggestions or rid not in chunk.suggested:
            return None
        entries = chunk.suggested[rid]
        votes = [e[0] for e in entries]
        scores = [e[1] for e in entries]
        raws = [e[2] for e in entries]
        voters = [judge_key(e[3]) for e in entries]
        origin = "suggestions"
        margin_by = None  # the judges' scores when every one has a score, else the ranks
    results = record_pairs(plan.target.fields, votes, resolve=plan.resolve, pairs=plan.pairs,
                           include_ties=plan.include_ties, scores=scores, margin_by=margin_by,
                           voters=voters, model=plan.competence)
    if plan.min_margin is not None:
        results = [r for r in results if r.margin >= plan.min_margin]
    if plan.trl_margin is not None:  # a row without the chosen margin could not be trained on
        results = [r for r in results if _margins(r, origin)[plan.trl_margin] is not None]
    return _Resolved(row, results, len(votes), origin, raws) if results else None


def _human_pairs(plan: _Plan, votes: list, scores: list | None) -> list[PairResult]:
    """The pairs of human answers under a plan that does not weigh who gave them (not resolve=weighted);
    the same as _record_resolve's own path for them."""
    margin_by = "scores" if plan.margin_from == "strength" else "ranks" if plan.resolve == "mean_rank" else "votes"
    results = record_pairs(plan.target.fields, votes, resolve=plan.resolve, pairs=plan.pairs,
                           include_ties=plan.include_ties, scores=scores, margin_by=margin_by)
    if plan.min_margin is not None:
        results = [r for r in results if r.margin >= plan.min_margin]
    if plan.trl_margin is not None:
        results = [r for r in results if _margins(r, "human")[plan.trl_margin] is not None]
    return results


def _verdict_resolve(plan: _Plan, row: tuple, verdict: Verdict) -> _Resolved | None:
    """The pairs of a reviewed record: from the reviewer's verdict, as if it were the record's only answer
    (one voter: agreement 1, vote_margin 1; the votes stay in the database and in reviews=ignore)."""
    if verdict.ranks is None or (verdict.both_bad and not plan.include_both_bad):
        return None
    scores = [verdict.strength] if plan.target.graded else None
    margin_by = "scores" if plan.margin_from == "strength" else "ranks" if plan.resolve == "mean_rank" else "votes"
    # one vote: competence weights do not apply (resolve=weighted reads it as a majority of one)
    results = record_pairs(plan.target.fields, [verdict.ranks], resolve="mean_rank" if plan.resolve == "mean_rank"
                           else "majority", pairs=plan.pairs, include_ties=plan.include_ties, scores=scores,
                           margin_by=margin_by)
    if plan.min_margin is not None:
        results = [r for r in results if r.margin >= plan.min_margin]
    if plan.trl_margin is not None:
        results = [r for r in results if _margins(r, "human")[plan.trl_margin] is not None]
    return _Resolved(row, results, 1, "human", None, verdict.reviewer, True) if results else None


class _RowWriter:
    """Turns a resolved record and its texts into the export's row dicts."""

    def __init__(self, plan: _Plan):
        self.plan = plan
        self.position = {name: i for i, name in enumerate(plan.names)}
        self.with_ratings = plan.source != "human"
        # standard style, no chat fields: the texts go out as they are
        self.plain_text = not plan.conversational and not plan.chat_fields

    def __call__(self, r: _Resolved, t: tuple, offset: int) -> list[dict]:
        position, plan = self.position, self.plan
        row = r.row
        prompt = self._prompt(t[offset + position[plan.prompt_field]], row)
        human = r.origin == "human"
        rows = []
        for pair in r.results:
            if self.plain_text:
                chosen = t[offset + position[pair.chosen]] or ""
                rejected = t[offset + position[pair.rejected]] or ""
            else:
                chosen = _side(t[offset + position[pair.chosen]], pair.chosen in plan.chat_fields, plan.conversational)
                rejected = _side(t[offset + position[pair.rejected]], pair.rejected in plan.chat_fields,
                                 plan.conversational)
            out = {"prompt": prompt, "chosen": chosen, "rejected": rejected, "record_id": row[0],
                   "external_id": row[1], "chosen_field": pair.chosen, "rejected_field": pair.rejected,
                   "annotators": r.voters, "agreement": pair.agreement, "vote_margin": pair.vote_margin,
                   "rank_margin": pair.rank_margin, "strength_margin": pair.score_margin if human else None,
                   "judge_margin": None if human else pair.score_margin, "tie": pair.tie, "source": r.origin,
                   "reviewed": r.reviewed, "reviewed_by": r.reviewed_by}
            if self.with_ratings:
                out["ratings"] = _ratings(r.raws, pair.chosen, pair.rejected) if r.raws else None
            if plan.trl_margin is not None:
                out["margin"] = out[plan.trl_margin]
            rows.append(out)
        return rows

    def _prompt(self, prompt_raw: Any, row: tuple):
        """The prompt as text (standard) or as messages with the record's system prompt (conversational)."""
        if not self.plan.conversational:
            return _flatten(_chat(prompt_raw)) if self.plan.prompt_is_chat else (prompt_raw or "")
        system = row[2]
        if self.plan.prompt_is_chat:
            prompt = [{"role": m.get("role"), "content": m.get("content", "")}
                      for m in (_chat(prompt_raw) or []) if isinstance(m, dict)]
            if system and not any(m["role"] == "system" for m in prompt):
                prompt.insert(0, {"role": "system", "content": system})
            return prompt
        prompt = [{"role": "user", "content": prompt_raw or ""}]
        if system:
            prompt.insert(0, {"role": "system", "content": system})
        return prompt


def _margins(pair: PairResult, origin: str) -> dict[str, float | None]:
    """The pair's margin columns, each with one meaning (see the package docs; _RowWriter writes the same)."""
    human = origin == "human"
    return {"vote_margin": pair.vote_margin, "rank_margin": pair.rank_margin,
            "strength_margin": pair.score_margin if human else None,
            "judge_margin": None if human else pair.score_margin}


# --- texts -------------------------------------------------------------------------------------

def _chat(value: Any) -> list | None:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value if isinstance(value, list) else None


def _last(messages: list | None, role: str) -> str:
    if not messages:
        return ""
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == role and isinstance(m.get("content"), str):
            return m["content"]
    return ""


def _flatten(messages: list | None) -> str:
    """A chat prompt as one readable text (the standard style): a single user turn as it is; a
    conversation as its turns, each after its role ("User: ...", "Assistant: ..."), every turn kept."""
    turns = [m for m in messages or [] if isinstance(m, dict) and isinstance(m.get("content"), str)]
    if len(turns) == 1 and turns[0].get("role") == "user":
        return turns[0]["content"]
    return "\n\n".join(f"{str(m.get('role', '')).capitalize()}: {m['content']}" for m in turns)


def _completion(messages: list | None) -> list:
    """The assistant turns after the last user turn: what TRL takes as chosen/rejected."""
    if not messages:
        return []
    last_user = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"), default=-1)
    return [{"role": m.get("role"), "content": m.get("content", "")} for m in messages[last_user + 1:]
            if isinstance(m, dict)]


def _side(raw: Any, is_chat: bool, conversational: bool):
    if is_chat:
        messages = _chat(raw)
        if conversational:
            return _completion(messages)
        return _last(messages, "assistant")
    if conversational:
        return [{"role": "assistant", "content": raw or ""}]
    return raw or ""


def _rating_of(raw: Any, field: str) -> float | None:
    if not isinstance(raw, dict):
        return None
    ratings = raw.get("ratings")
    if not isinstance(ratings, dict):
        return None
    value = ratings.get(field)
    if isinstance(value, dict):
        value = value.get("rating", value.get("value"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _ratings(raws: list, chosen: str, rejected: str) -> dict | None:
    """Per-field ratings from the suggestions' raw output (mean across agents), when they have them."""
    c = [x for x in (_rating_of(r, chosen) for r in raws) if x is not None]
    r_ = [x for x in (_rating_of(r, rejected) for r in raws) if x is not None]
    if not c and not r_:
        return None
    return {"chosen": sum(c) / len(c) if c else None, "rejected": sum(r_) / len(r_) if r_ else None}
