"""Streamed export of preference triplets (prompt, chosen, rejected) for reward models and DPO.

`triplets_export` walks a dataset's records in id order, a chunk at a time (keyset pagination on
(dataset_id, id)), fetches the chunk's submitted responses (and suggestions when asked) in one
query each, resolves each record's ranking across annotators and yields row dicts. Nothing is
loaded per dataset and nothing is queried per row. Only the fields an export needs are read,
as text (jsonb_to_record on PostgreSQL: one de-TOAST per record; fields->>'name' elsewhere), so
no record JSON is parsed in Python (chat fields excepted). Chunks hold up to CHUNK_RECORDS
records and about CHUNK_BYTES of text; the first one is small so the first bytes leave at once.
On PostgreSQL the next chunk is read on a second thread while the current one is written out.

Writers turn rows into JSONL (orjson), CSV (csv module) or Parquet (pyarrow, row groups of
~10k rows) byte chunks; the API, the CLI and the "export" job all use them.

Resolution rules (per record, per pair of ranked fields):
- every submitted response gives one vote per pair: the field with the lower rank wins, equal
  ranks are a tie vote; discarded and draft responses never count;
- majority: the pair's winner has strictly more votes than the other side;
  agreement = winning votes / submitted responses of the record,
  margin = (winning votes - losing votes) / submitted responses;
  the resolved order of the fields is their Copeland score (pairs won minus pairs lost);
- mean_rank: mean rank per field (lower is better); margin = difference of the mean ranks;
  agreement = share of annotators whose own ranking puts the pair in the resolved order;
- pairs without a strict winner are left out unless include_ties (then margin 0, chosen and
  rejected in field order, agreement = share of annotators who ranked the pair as a tie).
Suggestions (source=suggestions) are votes too, one per agent; their margin is the mean over
agents of the agent's score (signed: + when the agent agrees with the resolved winner, - when
not, 0 for a tie) when every agent gave a score, else the mean rank difference; the `ratings`
column carries per-field ratings found in the suggestions' raw output ({"ratings": {field: n}}).
source=both uses the humans where a record has a submitted response, its suggestions otherwise.
Pairs: best_worst = the single best vs the single worst field (left out when several tie for
either end, unless include_ties); all = every pair with a strict winner; best_vs_rest = the best
field vs each other one. min_margin drops rows whose margin is below it.
"""
from __future__ import annotations

import io
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import orjson
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models.fields.json import KT

from .agreement import ranks_from_value
from .models import Dataset, Field, Question, Record, Response, Suggestion
from .selectors import ranked_question_of
from .validation import bool_param

PAIRS = ("best_worst", "all", "best_vs_rest")
RESOLVE = ("majority", "mean_rank")
SOURCES = ("human", "suggestions", "both")
STYLES = ("standard", "conversational")
FORMATS = ("jsonl", "csv", "parquet")
EXTENSIONS = {"jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}
CONTENT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8",
                 "parquet": "application/vnd.apache.parquet"}
BASE_COLUMNS = ("prompt", "chosen", "rejected", "record_id", "external_id", "chosen_field", "rejected_field",
                "annotators", "agreement", "margin", "source")
CHUNK_RECORDS = 5_000  # at most; fewer when records are large (CHUNK_BYTES of text per chunk)
CHUNK_BYTES = 16 << 20
MIN_CHUNK_RECORDS = 20
FIRST_CHUNK_RECORDS = 100  # a small first chunk: the first bytes leave quickly


_MISSING = object()


def columns_for(source: str) -> tuple[str, ...]:
    return BASE_COLUMNS + (("ratings",) if source != "human" else ())


# --- parameters --------------------------------------------------------------------------------

def export_params_parse(params: dict, *, with_format: bool = True) -> dict:
    """Check export options (query string, CLI or job params). Raises ValidationError naming the bad one."""
    allowed = {"format", "question", "pairs", "resolve", "source", "include_ties", "style", "min_margin"}
    unknown = set(params) - allowed
    if unknown:
        raise ValidationError({sorted(unknown)[0]: f"unknown parameter; known: {', '.join(sorted(allowed))}"})
    out: dict[str, Any] = {}
    for name, choices, default in (("pairs", PAIRS, "best_worst"), ("resolve", RESOLVE, "majority"),
                                   ("source", SOURCES, "human"), ("style", STYLES, "standard")):
        value = params.get(name) or default
        if value not in choices:
            raise ValidationError({name: f"must be one of {', '.join(choices)}, not {str(value)[:40]!r}"})
        out[name] = value
    if with_format:
        fmt = params.get("format") or "jsonl"
        if fmt not in FORMATS:
            raise ValidationError({"format": f"must be one of {', '.join(FORMATS)}, not {str(fmt)[:40]!r}"})
        out["format"] = fmt
    out["include_ties"] = bool_param("include_ties", params.get("include_ties"))
    question = params.get("question")
    out["question"] = question or None
    min_margin = params.get("min_margin")
    if min_margin in (None, ""):
        out["min_margin"] = None
    else:
        try:
            out["min_margin"] = float(min_margin)
        except (TypeError, ValueError):
            raise ValidationError({"min_margin": f"must be a number, not {str(min_margin)[:40]!r}"})
    return out


@dataclass(frozen=True)
class Target:
    """What is being compared: the question and the fields it orders."""

    question: Question
    fields: tuple[str, ...]
    compares: bool  # a rating question with options.compares (0 = tie, 1 = first better, 2 = second)


def export_target(dataset: Dataset, question: str | None = None) -> Target:
    """The question to export: the named one, else the first ranking, else the first comparison rating."""
    questions = list(dataset.questions.all())
    if question:
        q = next((q for q in questions if q.name == question), None)
        if q is None:
            raise ValidationError({"question": f"no question {question!r} in this dataset"})
    else:
        q = ranked_question_of(questions)
        if q is None:
            raise ValidationError({"question": "this dataset has no ranking question and no comparison rating "
                                               "(a rating with options.compares) to export"})
    options = q.options or {}
    if q.kind == Question.Kind.RANKING:
        return Target(q, tuple(options.get("values") or ()), False)
    if q.kind == Question.Kind.RATING and options.get("compares"):
        return Target(q, tuple(options["compares"]), True)
    raise ValidationError({"question": f"{q.name!r} is a {q.kind} question; triplets need a ranking question "
                                      "or a rating with options.compares"})


# --- resolution --------------------------------------------------------------------------------

@dataclass
class PairResult:
    chosen: str
    rejected: str
    agreement: float
    margin: float
    tie: bool


def resolve_pairs(fields: tuple[str, ...], votes: list[dict[str, int]], *, resolve: str, pairs: str,
                  include_ties: bool, scores: list[float | None] | None = None) -> list[PairResult]:
    """The pairs of one record, resolved across its voters (annotators or suggestion agents)."""
    n = len(votes)
    if n == 0:
        return []
    present = [f for f in fields if any(f in v for v in votes)]
    if len(present) < 2:
        return []
    index = {f: i for i, f in enumerate(present)}
    # pairwise tallies, for a < b in field order: (votes a better, votes b better, tie votes)
    tally: dict[tuple[str, str], tuple[int, int, int]] = {}
    for i, a in enumerate(present):
        for b in present[i + 1:]:
            wa = wb = t = 0
            for v in votes:
                ra = v.get(a)
                rb = v.get(b)
                if ra is None or rb is None:
                    continue
                if ra < rb:
                    wa += 1
                elif rb < ra:
                    wb += 1
                else:
                    t += 1
            tally[(a, b)] = (wa, wb, t)
    if resolve == "majority":
        score = dict.fromkeys(present, 0)
        for (a, b), (wa, wb, _t) in tally.items():
            if wa > wb:
                score[a] += 1
                score[b] -= 1
            elif wb > wa:
                score[b] += 1
                score[a] -= 1
        key = {f: -score[f] for f in present}
        means = None
    else:
        means = {}
        for f in present:
            ranks = [v[f] for v in votes if f in v]
            means[f] = sum(ranks) / len(ranks)
        key = means
    use_scores = scores is not None and len(scores) == n and all(s is not None for s in scores)

    def pair(a: str, b: str) -> PairResult | None:
        if index[a] > index[b]:
            a, b = b, a
        wa, wb, t = tally[(a, b)]
        if means is None:
            winner = a if wa > wb else b if wb > wa else None
        else:
            winner = a if means[a] < means[b] else b if means[b] < means[a] else None
        if winner is None:
            if not include_ties:
                return None
            return PairResult(a, b, t / n, 0.0, True)
        loser = b if winner == a else a
        w_votes, l_votes = (wa, wb) if winner == a else (wb, wa)
        agreement = w_votes / n
        if use_scores:
            signed = []
            for v, s in zip(votes, scores):
                rw, rl = v.get(winner), v.get(loser)
                if rw is None or rl is None or rw == rl:
                    signed.append(0.0)
                else:
                    signed.append(float(s) if rw < rl else -float(s))
            margin = sum(signed) / len(signed)
        elif scores is not None:  # suggestions without scores: rank difference
            diffs = [v[loser] - v[winner] for v in votes if winner in v and loser in v]
            margin = sum(diffs) / len(diffs) if diffs else 0.0
        elif means is None:
            margin = (w_votes - l_votes) / n
        else:
            margin = means[loser] - means[winner]
        return PairResult(winner, loser, agreement, float(margin), False)

    out: list[PairResult] = []
    if pairs == "all":
        for a, b in tally:
            r = pair(a, b)
            if r is not None:
                out.append(r)
        return out
    best_key = min(key.values())
    worst_key = max(key.values())
    best = [f for f in present if key[f] == best_key]
    worst = [f for f in present if key[f] == worst_key]
    if (len(best) > 1 or (pairs == "best_worst" and len(worst) > 1)) and not include_ties:
        return []
    top = best[0]
    if pairs == "best_worst":
        bottom = worst[-1]
        if bottom == top:
            return []
        r = pair(top, bottom)
        return [r] if r is not None else []
    for f in present:  # best_vs_rest
        if f == top:
            continue
        r = pair(top, f)
        if r is not None:
            out.append(r)
    return out


class _PgTexts:
    """PostgreSQL reads of record texts with jsonb_to_record: the fields value is de-TOASTed once
    per record and the needed keys come out as text (fields->>'a', fields->>'b', ... would
    decompress it once per key: about twice the server time)."""

    def __init__(self, dataset_id: int, names: list[str], with_system: bool):
        table = Record._meta.db_table
        columns = ", ".join('"{}" text'.format(n.replace('"', '""')) for n in names)
        source = (f'FROM "{table}" r CROSS JOIN LATERAL jsonb_to_record(r."fields") AS x({columns}) '
                  'WHERE r."dataset_id" = %s ')
        system = """, r."metadata" ->> 'system'""" if with_system else ""
        self.dataset_id = dataset_id
        self.chunk_sql = (f'SELECT r."id", r."external_id"{system}, x.* {source}'
                          'AND (r."dataset_id", r."id") > (%s, %s) ORDER BY r."dataset_id", r."id" LIMIT %s')
        self.of_sql = f'SELECT r."id", x.* {source}AND r."id" = ANY(%s)'

    def chunk(self, *, after_id: int, limit: int) -> list[tuple]:
        """(id, external_id, [system], *texts) of the next `limit` records after `after_id`."""
        with connection.cursor() as cursor:
            cursor.execute(self.chunk_sql, [self.dataset_id, self.dataset_id, after_id, limit])
            return cursor.fetchall()

    def of(self, *, ids: list[int]) -> list[tuple]:
        """(id, *texts) of the given records."""
        with connection.cursor() as cursor:
            cursor.execute(self.of_sql, [self.dataset_id, ids])
            return cursor.fetchall()


# --- prefetching --------------------------------------------------------------------------------

def prefetch_possible() -> bool:
    """Whether the next chunk may be read on a second thread (its own DB connection): PostgreSQL,
    and no transaction open on this thread (the other connection could not see its rows)."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


def _first_then_prefetched(make: Callable[[], Iterator]) -> Iterator:
    """The first item read here (the first bytes leave without waiting for a new connection),
    the rest on a second thread when prefetch_possible()."""
    it = make()
    try:
        first = next(it)
    except StopIteration:
        return
    yield first
    if prefetch_possible():
        yield from _prefetched(lambda: it)
    else:
        yield from it


def _prefetched(make: Callable[[], Iterator]) -> Iterator:
    """Run the iterator `make()` on a second thread, one item ahead: while the caller turns a
    chunk into rows, the database already reads the next one. Errors are raised to the caller;
    closing this generator (a client that went away) stops the thread."""
    q: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in make():
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(_Failed(exc))
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, name="preflab-export-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)


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


def _completion(messages: list | None) -> list:
    """The assistant turns after the last user turn: what TRL takes as chosen/rejected."""
    if not messages:
        return []
    last_user = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"), default=-1)
    return [{"role": m.get("role"), "content": m.get("content", "")} for m in messages[last_user + 1:]
            if isinstance(m, dict)]


# --- the export --------------------------------------------------------------------------------

def triplets_export(*, dataset: Dataset, question: str | None = None, pairs: str = "best_worst",
                    resolve: str = "majority", source: str = "human", include_ties: bool = False,
                    style: str = "standard", min_margin: float | None = None,
                    chunk_size: int = CHUNK_RECORDS,
                    on_progress: Callable[[int], None] | None = None) -> Iterator[dict]:
    """Yield the preference triplets of a dataset, streamed (see the module docstring for the rules).

    Raises ValidationError (naming the parameter) before yielding anything when an option is bad.
    `on_progress(n)` is called after each chunk with the number of records it held.
    """
    export_params_parse({"pairs": pairs, "resolve": resolve, "source": source, "style": style,
                         "include_ties": include_ties, "min_margin": min_margin}, with_format=False)
    target = export_target(dataset, question)
    kinds = dict(dataset.fields.values_list("name", "kind"))
    prompt_field = dataset.prompt_field
    if prompt_field not in kinds:
        raise ValidationError({"prompt_field": f"the dataset's prompt field {prompt_field!r} is not one of its fields"})
    return _triplets_iter(dataset=dataset, target=target, kinds=kinds, prompt_field=prompt_field, pairs=pairs,
                          resolve=resolve, source=source, include_ties=include_ties, style=style,
                          min_margin=min_margin, chunk_size=chunk_size, on_progress=on_progress)


def _triplets_iter(*, dataset, target, kinds, prompt_field, pairs, resolve, source, include_ties, style,
                   min_margin, chunk_size, on_progress) -> Iterator[dict]:
    conversational = style == "conversational"
    qname = target.question.name
    annotations = {"sys": KT("metadata__system")} if conversational else {}
    # Keyset pagination as a row comparison, (dataset_id, id) > (ds, last): only the (dataset, id)
    # index can serve it, so PostgreSQL walks that index. With `id > last ORDER BY id` the planner
    # may walk the primary key instead and step over every record of older datasets (seconds).
    base = (Record.objects.filter(dataset_id=dataset.pk).order_by("dataset_id", "id")
            .annotate(**annotations).values_list("id", "external_id", *annotations))
    # Only the needed fields are read, each as text (fields->>'name' on PostgreSQL): no jsonb_out
    # of the whole value, no JSON parsing in Python except for chat fields.
    names = list(dict.fromkeys([prompt_field, *target.fields]))
    position = {name: i for i, name in enumerate(names)}
    text_annotations = {f"f{i}": KT(f"fields__{name}") for i, name in enumerate(names)}
    texts_of = Record.objects.filter(dataset_id=dataset.pk).annotate(**text_annotations)
    text_cols = list(text_annotations)
    # Dense mode: when nearly every record of the last chunk gave rows, the next chunk's texts are
    # read with its ids (one query less per chunk); sparse datasets read texts of rows only.
    dense_base = (Record.objects.filter(dataset_id=dataset.pk).order_by("dataset_id", "id")
                  .annotate(**annotations, **text_annotations)
                  .values_list("id", "external_id", *annotations, *text_cols))
    text_start = 2 + len(annotations)
    pg_texts = _PgTexts(dataset.pk, names, conversational) if connection.vendor == "postgresql" else None
    table = Record._meta.db_table
    after = f'("{table}"."dataset_id", "{table}"."id") > (%s, %s)'
    use_humans = source in ("human", "both")
    use_suggestions = source in ("suggestions", "both")
    with_ratings = source != "human"
    prompt_is_chat = kinds.get(prompt_field) == Field.Kind.CHAT
    chat_fields = {f for f in target.fields if kinds.get(f) == Field.Kind.CHAT}
    fields = target.fields
    compares = fields if target.compares else None  # how ranks_from_value reads a comparison rating
    plain_text = not conversational and not chat_fields
    sizes: dict[str, int] = {}  # text bytes per record, measured on the rows: sizes the chunks

    def chunks() -> Iterator[tuple[list, dict, dict, bool]]:
        """(records, their submitted answers as ranks, their suggestions, dense?) per chunk."""
        last_id = 0
        size = min(FIRST_CHUNK_RECORDS, chunk_size)
        rank_cache: dict[str, Any] = {}
        dense = False
        while True:
            if last_id:  # after the first chunk: as many records as fit in CHUNK_BYTES of text
                per_record = sizes.get("record_bytes") or 1
                size = max(min(MIN_CHUNK_RECORDS, chunk_size), min(chunk_size, CHUNK_BYTES // per_record))
            if dense and pg_texts is not None:
                rows = pg_texts.chunk(after_id=last_id, limit=size)
            else:
                rows = list((dense_base if dense else base)
                            .extra(where=[after], params=[dataset.pk, last_id])[:size])
            if not rows:
                return
            lo, hi = rows[0][0], rows[-1][0]
            last_id = hi
            human: dict[int, list] = {}
            if use_humans:
                for rid, value in (Response.objects.filter(dataset_id=dataset.pk, status=Response.Status.SUBMITTED,
                                                           record_id__gte=lo, record_id__lte=hi)
                                   .annotate(v=KT(f"values__{qname}")).values_list("record_id", "v")):
                    # answers repeat (a two-field ranking has three possible ones): parse each once
                    ranks = rank_cache.get(value, _MISSING) if isinstance(value, str) else _MISSING
                    if ranks is _MISSING:
                        ranks = ranks_from_value(value, compares=compares)
                        if isinstance(value, str) and len(rank_cache) < 10_000:
                            rank_cache[value] = ranks
                    if ranks is not None:
                        human.setdefault(rid, []).append(ranks)
            suggested: dict[int, list] = {}
            if use_suggestions:
                for rid, value, score, raw in (Suggestion.objects.filter(question_id=target.question.pk,
                                                                         record_id__gte=lo, record_id__lte=hi)
                                               .order_by("record_id", "agent")
                                               .values_list("record_id", "value", "score", "raw")):
                    ranks = ranks_from_value(value, compares=compares)
                    if ranks is not None:
                        suggested.setdefault(rid, []).append((ranks, score, raw))
            yield rows, human, suggested, dense
            answered = len(human) + sum(1 for rid in suggested if rid not in human)
            dense = answered >= 0.9 * len(rows)

    for rows, human, suggested, dense in _first_then_prefetched(chunks):
        resolved = []
        for row in rows:
            rid = row[0]
            votes = human.get(rid)
            origin = "human"
            scores = None
            raws = None
            if not votes:
                if not use_suggestions or rid not in suggested:
                    continue
                entries = suggested[rid]
                votes = [e[0] for e in entries]
                scores = [e[1] for e in entries]
                raws = [e[2] for e in entries]
                origin = "suggestions"
            if len(fields) == 2 and len(votes) == 1 and scores is None:
                # the common case (one annotator, two responses): no tallies needed
                v = votes[0]
                a, b = fields
                ra, rb = v.get(a), v.get(b)
                if ra is None or rb is None:
                    continue
                if ra < rb:
                    results = [PairResult(a, b, 1.0, 1.0, False)]
                elif rb < ra:
                    results = [PairResult(b, a, 1.0, 1.0, False)]
                elif include_ties:
                    results = [PairResult(a, b, 1.0, 0.0, True)]
                else:
                    continue
                if resolve == "mean_rank" and not results[0].tie:
                    results[0].margin = float(abs(ra - rb))
            else:
                results = resolve_pairs(fields, votes, resolve=resolve, pairs=pairs, include_ties=include_ties,
                                        scores=scores)
            if min_margin is not None:
                results = [r for r in results if r.margin >= min_margin]
            if results:
                resolved.append((row, results, len(votes), origin, raws))
        # texts[rid] is a row tuple; a field's text sits at offset + its position in `names`
        if resolved and dense:
            texts = {row[0]: row for row, *_ in resolved}
            offset = text_start
        elif resolved:
            # texts only of the records that give rows: one range scan, or an id list when sparse
            if pg_texts is not None:
                text_rows = pg_texts.of(ids=[r[0][0] for r in resolved])
            elif len(resolved) == len(rows):
                text_rows = texts_of.filter(id__gte=rows[0][0], id__lte=rows[-1][0]).values_list("id", *text_cols)
            else:
                text_rows = texts_of.filter(id__in=[r[0][0] for r in resolved]).values_list("id", *text_cols)
            texts = {t[0]: t for t in text_rows}
            offset = 1
        if resolved:
            sample = [texts[row[0]] for row, *_ in resolved[:20]]
            sizes["record_bytes"] = max(1, sum(len(v) for t in sample for v in t[offset:] if isinstance(v, str))
                                        // len(sample))
        for row, results, n, origin, raws in resolved:
            rid = row[0]
            t = texts[rid]
            prompt_raw = t[offset + position[prompt_field]]
            if conversational:
                system = row[2]
                if prompt_is_chat:
                    prompt = [{"role": m.get("role"), "content": m.get("content", "")}
                              for m in (_chat(prompt_raw) or []) if isinstance(m, dict)]
                    if system and not any(m["role"] == "system" for m in prompt):
                        prompt.insert(0, {"role": "system", "content": system})
                else:
                    prompt = [{"role": "user", "content": prompt_raw or ""}]
                    if system:
                        prompt.insert(0, {"role": "system", "content": system})
            else:
                prompt = _last(_chat(prompt_raw), "user") if prompt_is_chat else (prompt_raw or "")
            for r in results:
                if plain_text:  # standard style, no chat fields: the texts as they are
                    chosen = t[offset + position[r.chosen]] or ""
                    rejected = t[offset + position[r.rejected]] or ""
                else:
                    chosen = _side(t[offset + position[r.chosen]], r.chosen in chat_fields, conversational)
                    rejected = _side(t[offset + position[r.rejected]], r.rejected in chat_fields, conversational)
                out = {"prompt": prompt, "chosen": chosen, "rejected": rejected, "record_id": rid,
                       "external_id": row[1], "chosen_field": r.chosen, "rejected_field": r.rejected,
                       "annotators": n, "agreement": r.agreement, "margin": r.margin, "source": origin}
                if with_ratings:
                    out["ratings"] = _ratings(raws, r.chosen, r.rejected) if raws else None
                yield out
        if on_progress is not None:
            on_progress(len(rows))


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


# --- writers -----------------------------------------------------------------------------------

PARQUET_ROW_GROUP = 10_000
PARQUET_GROUP_BYTES = 8 << 20  # fewer rows per group when the texts are long
# Dictionary encoding only for the short repeated columns: on long unique texts it only costs memory.
_DICT_COLUMNS = ["chosen_field", "rejected_field", "source"]
FLUSH_BYTES = 1 << 18  # ~256 KiB per write: fewer, larger socket writes


def jsonl_chunks(rows: Iterable[dict]) -> Iterator[bytes]:
    """JSONL bytes in ~256 KiB chunks; the first row leaves on its own so the first byte is fast."""
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    parts: list[bytes] = []
    size = 0
    first = True
    for row in rows:
        line = dumps(row, option=newline)
        if first:
            first = False
            yield line
            continue
        parts.append(line)
        size += len(line)
        if size >= FLUSH_BYTES:
            yield b"".join(parts)
            parts.clear()
            size = 0
    if parts:
        yield b"".join(parts)


def _csv_cell(value: Any) -> str:
    """One CSV field as the csv module writes it (QUOTE_MINIMAL, RFC 4180 quoting): quoted when it
    holds a quote, comma or line break, quotes doubled. Written by hand because csv.writer scans
    long texts character by character (about 60 us per 3 KB row, ten times this)."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (list, dict)):
        text = orjson.dumps(value).decode()
    else:
        text = str(value)
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_chunks(rows: Iterable[dict], *, columns: tuple[str, ...]) -> Iterator[bytes]:
    """CSV bytes (lines end in CRLF, like the csv module's) with a header row; message lists and
    ratings JSON-encoded in their cells. The first row leaves on its own, then ~256 KiB chunks."""
    yield (",".join(_csv_cell(c) for c in columns) + "\r\n").encode()
    parts: list[str] = []
    size = 0
    first = True
    for row in rows:
        line = ",".join([_csv_cell(row.get(c)) for c in columns]) + "\r\n"
        if first:
            first = False
            yield line.encode()
            continue
        parts.append(line)
        size += len(line)
        if size >= FLUSH_BYTES:
            yield "".join(parts).encode()
            parts.clear()
            size = 0
    if parts:
        yield "".join(parts).encode()


def parquet_schema(*, style: str, source: str):
    import pyarrow as pa

    if style == "conversational":
        text = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    else:
        text = pa.string()
    cols = [("prompt", text), ("chosen", text), ("rejected", text), ("record_id", pa.int64()),
            ("external_id", pa.string()), ("chosen_field", pa.string()), ("rejected_field", pa.string()),
            ("annotators", pa.int32()), ("agreement", pa.float64()), ("margin", pa.float64()),
            ("source", pa.string())]
    if source != "human":
        cols.append(("ratings", pa.struct([("chosen", pa.float64()), ("rejected", pa.float64())])))
    return pa.schema(cols)


class _TextColumn:
    """A string column built as one UTF-8 buffer plus offsets while rows arrive: no list of
    Python strings is kept, and the Arrow array shares the buffer (pyarrow's own conversion of a
    list of long strings needs several times the text's size)."""

    def __init__(self):
        self.data = bytearray()
        self.offsets = [0]

    def append(self, value: str) -> None:
        self.data += value.encode()
        self.offsets.append(len(self.data))

    def array(self):
        import numpy as np
        import pyarrow as pa

        offsets = np.asarray(self.offsets, dtype=np.int32)
        return pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(self.data))


def _row_groups(rows: Iterable[dict], schema, row_group: int) -> Iterator:
    """pyarrow tables of up to `row_group` rows and about PARQUET_GROUP_BYTES of text (the last one
    shorter; one empty table for no rows)."""
    import pyarrow as pa

    plain = [n for n in ("prompt", "chosen", "rejected") if schema.field(n).type == pa.string()]
    others = [n for n in schema.names if n not in plain]

    def new() -> tuple[dict, dict]:
        return {n: _TextColumn() for n in plain}, {n: [] for n in others}

    def table(texts: dict, values: dict):
        arrays = [texts[f.name].array() if f.name in texts else pa.array(values[f.name], type=f.type)
                  for f in schema]
        return pa.Table.from_arrays(arrays, schema=schema)

    texts, values = new()
    pending = 0
    size = 0
    sent = False
    for row in rows:
        for n in plain:
            text = row.get(n) or ""
            texts[n].append(text)
            size += len(text)
        for n in others:
            values[n].append(row.get(n))
        pending += 1
        if pending >= row_group or size >= PARQUET_GROUP_BYTES:
            yield table(texts, values)
            sent = True
            pending = size = 0
            texts, values = new()
    if pending or not sent:
        yield table(texts, values)


class _Drain(io.RawIOBase):
    """A write-only file whose bytes are taken away as they come (a streamed Parquet file)."""

    def __init__(self):
        super().__init__()
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        self.parts.append(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def parquet_chunks(rows: Iterable[dict], *, style: str, source: str, row_group: int = PARQUET_ROW_GROUP) -> Iterator[bytes]:
    """A Parquet file as bytes, streamed row group by row group (the footer comes last): the first
    bytes leave after the first row group, and only one row group is ever held."""
    import pyarrow.parquet as pq

    schema = parquet_schema(style=style, source=source)
    sink = _Drain()
    writer = pq.ParquetWriter(sink, schema, compression="zstd", use_dictionary=_DICT_COLUMNS)
    head = sink.take()  # the magic number, written when the file opens: the first bytes leave now
    if head:
        yield head
    try:
        for table in _row_groups(rows, schema, row_group):
            writer.write_table(table)
            del table
            data = sink.take()
            if data:
                yield data
    finally:
        writer.close()
    data = sink.take()
    if data:
        yield data


def parquet_write(rows: Iterable[dict], sink, *, style: str, source: str, row_group: int = PARQUET_ROW_GROUP) -> int:
    """Write rows to a Parquet file (path or binary file object) in row groups; returns the row count."""
    import pyarrow.parquet as pq

    schema = parquet_schema(style=style, source=source)
    count = 0
    with pq.ParquetWriter(sink, schema, compression="zstd", use_dictionary=_DICT_COLUMNS) as writer:
        for table in _row_groups(rows, schema, row_group):
            writer.write_table(table)
            count += table.num_rows
    return count


def triplets_write(rows: Iterable[dict], out, *, fmt: str, style: str, source: str) -> int:
    """Write rows to a binary file object in the given format; returns the number of rows."""
    count = 0

    def counted():
        nonlocal count
        for row in rows:
            count += 1
            yield row

    if fmt == "parquet":
        return parquet_write(rows, out, style=style, source=source)
    chunks = jsonl_chunks(counted()) if fmt == "jsonl" else csv_chunks(counted(), columns=columns_for(source))
    for chunk in chunks:
        out.write(chunk)
    return count


def triplets_export_count(dataset: Dataset) -> int:
    """Records an export will walk (for progress bars)."""
    return Record.objects.filter(dataset_id=dataset.pk).count()
