"""Reading an export's records and answers from the database, a chunk at a time.

Records are walked in id order with keyset pagination on (dataset_id, id); each chunk's submitted
responses (and suggestions when asked) come in one query each, as rankings. Only the fields an
export needs are read, as text (jsonb_to_record on PostgreSQL: one de-TOAST per record;
fields->>'name' elsewhere), so no record JSON is parsed in Python (chat fields excepted). Chunks
hold up to CHUNK_RECORDS records and about CHUNK_BYTES of text; the first one is small so the first
bytes leave at once. On PostgreSQL the next chunk is read on a second thread while the current one
is written out (`first_then_prefetched`).

What is read follows the campaign-quality rules: gold records are not walked unless include_gold;
the answers of excluded annotators (annotation.quality.standing.excluded_user_ids) are not read
unless include_excluded; with reviews read, each chunk also brings its records' reviewed verdicts
(Review, decision accepted or own) for the export to use in place of the votes.
"""
from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models.fields.json import KT

from ..agreement import both_bad_by_majority, pair_vote_from_value, ranks_from_value
from ..models import Record, Response, Review, Suggestion
from ..selectors import after_params, after_sql, dataset_first_id
from .parameters import Target

CHUNK_RECORDS = 5_000  # at most; fewer when records are large (CHUNK_BYTES of text per chunk)
CHUNK_BYTES = 16 << 20
MIN_CHUNK_RECORDS = 20
FIRST_CHUNK_RECORDS = 100  # a small first chunk: the first bytes leave quickly
RANK_CACHE_SIZE = 10_000

_MISSING = object()


@dataclass
class Chunk:
    """Records of one chunk with their answers. rows: (id, external_id, [system], [*texts when
    dense]); human: record id -> rankings of its submitted responses; suggested: record id ->
    (ranking, score, raw) of its suggestions; dense: the rows carry the texts too. A graded
    preference also gives strengths (record id -> the strength of each ranking in `human`) and
    both_bad (the records most annotators called both bad)."""

    rows: list
    human: dict[int, list]
    suggested: dict[int, list]
    dense: bool
    strengths: dict[int, list] = field(default_factory=dict)
    both_bad: set[int] = field(default_factory=set)
    voters: dict[int, list] = field(default_factory=dict)  # with_voters: record id -> who gave each ranking in `human`
    reviewed: dict[int, Verdict] = field(default_factory=dict)  # record id -> its reviewer's verdict (with_reviews)
    # record id -> the answers (as the texts they were read from) behind its rankings in `human`, in the same
    # order: what the record's resolution depends on (resolve=weighted aside), so equal ones resolve once
    answer_keys: dict[int, list] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """A reviewer's verdict on one record (Review, decision accepted or own) read for the export's question:
    ranks as a vote gives them (None: the verdict ranks nothing, e.g. calls both responses bad), a graded
    preference's strength and both_bad, and the reviewer's username (None once the account is gone)."""

    ranks: dict | None
    strength: float | None
    both_bad: bool
    reviewer: str | None


class ExportReader:
    """The records and answers one export reads (see the module docstring)."""

    def __init__(self, *, dataset_id: int, target: Target, names: list[str], conversational: bool,
                 use_humans: bool, use_suggestions: bool, chunk_size: int, with_voters: bool = False,
                 include_gold: bool = False, excluded: frozenset[int] = frozenset(), with_reviews: bool = False):
        self.dataset_id = dataset_id
        self.include_gold = include_gold  # else gold records are left out (never walked)
        self.excluded = excluded  # annotators whose answers are left out (standing.excluded_user_ids)
        self.with_reviews = with_reviews  # read the records' reviewed verdicts (Review) beside the votes
        self.with_voters = with_voters  # also read who answered (resolve=weighted weighs them)
        self.target = target
        self.compares = target.fields if target.compares else None  # how ranks_from_value reads a rating
        self.use_humans = use_humans
        self.use_suggestions = use_suggestions
        self.chunk_size = chunk_size
        self.record_bytes = 0  # text bytes per record, measured on the rows written: sizes the chunks
        annotations = {"sys": KT("metadata__system")} if conversational else {}
        # The dataset is part of the keyset condition every chunk is read with (after_sql).
        records = Record.objects.all()
        if not include_gold:
            records = records.filter(is_gold=False)
        self.base = records.order_by("dataset_id", "id").annotate(**annotations).values_list("id", "external_id",
                                                                                            *annotations)
        # Only the needed fields are read, each as text (fields->>'name' on PostgreSQL): no jsonb_out
        # of the whole value, no JSON parsing in Python except for chat fields.
        text_annotations = {f"f{i}": KT(f"fields__{name}") for i, name in enumerate(names)}
        self.texts_of = Record.objects.filter(dataset_id=dataset_id).annotate(**text_annotations)
        self.text_cols = list(text_annotations)
        # Dense mode: when nearly every record of the last chunk gave rows, the next chunk's texts are
        # read with its ids (one query less per chunk); sparse datasets read texts of rows only.
        self.dense_base = (records.order_by("dataset_id", "id").annotate(**annotations, **text_annotations)
                           .values_list("id", "external_id", *annotations, *self.text_cols))
        self.text_start = 2 + len(annotations)
        self.pg_texts = (_PgTexts(dataset_id, names, conversational, include_gold=include_gold)
                         if connection.vendor == "postgresql" else None)
        self.after = after_sql(f'"{Record._meta.db_table}"')
        self.answers_sql: _Bounded | None = None  # the answers query, compiled at its first chunk

    # --- chunks ---------------------------------------------------------------------------------

    def chunks(self) -> Iterator[Chunk]:
        """The records of the dataset with their answers, chunk by chunk."""
        last_id = self._before_first()
        if last_id is None:
            return
        size = min(FIRST_CHUNK_RECORDS, self.chunk_size)
        rank_cache: dict[str, Any] = {}
        dense = True  # the first (small) chunk reads its texts with its ids: one query less before the first byte
        first = True
        while True:
            if not first:  # after the first chunk: as many records as fit in CHUNK_BYTES of text
                per_record = self.record_bytes or 1
                size = max(min(MIN_CHUNK_RECORDS, self.chunk_size), min(self.chunk_size, CHUNK_BYTES // per_record))
            first = False
            rows = self._records(after_id=last_id, limit=size, dense=dense)
            if not rows:
                return
            lo, hi = rows[0][0], rows[-1][0]
            last_id = hi
            strengths: dict[int, list] = {}
            both_bad: set[int] = set()
            voters: dict[int, list] = {}
            keys: dict[int, list] = {}
            if self.use_humans and self.target.graded:
                human = self._human_votes(lo, hi, rank_cache, strengths, both_bad, voters, keys)
            else:
                human = self._human_rankings(lo, hi, rank_cache, voters, keys) if self.use_humans else {}
            suggested = self._suggested_rankings(lo, hi) if self.use_suggestions else {}
            reviewed = self._verdicts(lo, hi) if self.with_reviews else {}
            yield Chunk(rows, human, suggested, dense, strengths, both_bad, voters, reviewed, keys)
            answered = sum(1 for row in rows if row[0] in human or row[0] in suggested or row[0] in reviewed)
            dense = answered >= 0.9 * len(rows)

    def _before_first(self) -> int | None:
        """The id just below the dataset's first record (None: it has no records): where the first chunk starts.
        From 0, the planner may walk the primary key from the table's first record when the dataset is most of
        the table, stepping over every record of the datasets before it: 25,300 pages, 0.25 s (2.6 s cold)
        before the first byte of a 1M dataset between a 100k one and newer ones. min(id) is one probe of the (dataset,
        id) index."""
        first = dataset_first_id(Record, self.dataset_id)
        return None if first is None else first - 1

    def _records(self, *, after_id: int, limit: int, dense: bool) -> list:
        if dense and self.pg_texts is not None:
            return self.pg_texts.chunk(after_id=after_id, limit=limit)
        return list((self.dense_base if dense else self.base)
                    .extra(where=[self.after], params=after_params(self.dataset_id, after_id))[:limit])

    def _answers(self, lo: int, hi: int) -> list[tuple]:
        """(record id, answer as text[, user id]) of the submitted responses of records lo..hi."""
        if self.answers_sql is None:
            self.answers_sql = _Bounded(self._answers_query)
        return self.answers_sql.fetch(lo, hi)

    def _answers_query(self, lo: int, hi: int):
        who = ("user_id",) if self.with_voters else ()
        answers = Response.objects.filter(dataset_id=self.dataset_id, status=Response.Status.SUBMITTED,
                                          record_id__gte=lo, record_id__lte=hi)
        if self.excluded:
            answers = answers.exclude(user_id__in=sorted(self.excluded))
        return answers.annotate(v=KT(f"values__{self.target.question.name}")).values_list("record_id", "v", *who)

    def _verdicts(self, lo: int, hi: int) -> dict[int, Verdict]:
        """The reviewed verdicts (accepted or own; a record sent back has none) of records lo..hi that
        answer the export's question."""
        out: dict[int, Verdict] = {}
        for rid, value, reviewer in (Review.objects.filter(record_id__gte=lo, record_id__lte=hi,
                                                           dataset_id=self.dataset_id,
                                                           decision__in=REVIEW_VERDICTS)
                                     .annotate(v=KT(f"values__{self.target.question.name}"))
                                     .values_list("record_id", "v", "reviewer__username")):
            verdict = _verdict(value, self.target, self.compares, reviewer)
            if verdict is not None:
                out[rid] = verdict
        return out

    def _human_rankings(self, lo: int, hi: int, rank_cache: dict[str, Any], voters: dict[int, list],
                        keys: dict[int, list]) -> dict[int, list]:
        human: dict[int, list] = {}
        answers = self._answers(lo, hi)
        with_voters = self.with_voters
        for answer in answers:
            rid, value = answer[0], answer[1]
            # answers repeat (a two-field ranking has three possible ones): parse each once. Only texts are
            # kept; the values read are texts, numbers or None, so any of them can be looked up.
            ranks = rank_cache.get(value, _MISSING)
            if ranks is _MISSING:
                ranks = ranks_from_value(value, compares=self.compares)
                if isinstance(value, str) and len(rank_cache) < RANK_CACHE_SIZE:
                    rank_cache[value] = ranks
            if ranks is not None:
                rankings = human.get(rid)
                if rankings is None:
                    human[rid] = [ranks]
                    keys[rid] = [value]
                else:
                    rankings.append(ranks)
                    keys[rid].append(value)
                if with_voters:
                    voters.setdefault(rid, []).append(answer[2])
        return human

    def _human_votes(self, lo: int, hi: int, vote_cache: dict[str, Any], strengths: dict[int, list],
                     both_bad: set[int], voters: dict[int, list], keys: dict[int, list]) -> dict[int, list]:
        """_human_rankings for a graded preference: also each ranking's strength (into `strengths`) and
        the records most of whose answers call both responses bad (into `both_bad`)."""
        human: dict[int, list] = {}
        answers: dict[int, int] = {}
        called_bad: dict[int, int] = {}
        for rid, value, *who in self._answers(lo, hi):
            vote = vote_cache.get(value, _MISSING) if isinstance(value, str) else _MISSING
            if vote is _MISSING:
                vote = pair_vote_from_value(value, self.target.fields)
                if isinstance(value, str) and len(vote_cache) < RANK_CACHE_SIZE:
                    vote_cache[value] = vote
            if vote is None:
                continue
            answers[rid] = answers.get(rid, 0) + 1
            if vote.both_bad:
                called_bad[rid] = called_bad.get(rid, 0) + 1
            if vote.ranks is not None:
                human.setdefault(rid, []).append(vote.ranks)
                strengths.setdefault(rid, []).append(vote.strength)
                keys.setdefault(rid, []).append(value)
                if who:
                    voters.setdefault(rid, []).append(who[0])
        both_bad.update(rid for rid, n in called_bad.items() if both_bad_by_majority(n, answers[rid]))
        return human

    def _suggested_rankings(self, lo: int, hi: int) -> dict[int, list]:
        suggested: dict[int, list] = {}
        for rid, value, score, raw, agent in (Suggestion.objects.filter(question_id=self.target.question.pk,
                                                                        record_id__gte=lo, record_id__lte=hi)
                                              .order_by("record_id", "agent")
                                              .values_list("record_id", "value", "score", "raw", "agent")):
            ranks = ranks_from_value(value, compares=self.compares)
            if ranks is not None:
                suggested.setdefault(rid, []).append((ranks, score, raw, agent))
        return suggested

    # --- texts ----------------------------------------------------------------------------------

    def texts(self, chunk: Chunk, rows: list[tuple]) -> tuple[dict[int, tuple], int]:
        """The texts of the chunk's records `rows` (those that give triplets): record id -> a row
        whose field texts start at the returned offset, in the order of `names`."""
        if chunk.dense:
            return {row[0]: row for row in rows}, self.text_start
        # texts only of the records that give rows: one range scan, or an id list when sparse
        if self.pg_texts is not None:
            text_rows = self.pg_texts.of(ids=[row[0] for row in rows])
        elif len(rows) == len(chunk.rows):
            text_rows = (self.texts_of.filter(id__gte=chunk.rows[0][0], id__lte=chunk.rows[-1][0])
                         .values_list("id", *self.text_cols))
        else:
            text_rows = self.texts_of.filter(id__in=[row[0] for row in rows]).values_list("id", *self.text_cols)
        return {t[0]: t for t in text_rows}, 1

    def measure(self, texts: list[tuple], offset: int) -> None:
        """Remember the text bytes per record of some written rows: the next chunks are sized on it."""
        self.record_bytes = max(1, sum(len(v) for t in texts for v in t[offset:] if isinstance(v, str))
                                // len(texts))


class _Bounded:
    """A values_list query over a range of records lo..hi, compiled to SQL once and run for each chunk
    with its bounds (building and compiling the ORM query took about 1 ms a chunk, several times the
    query's own client time). `query(lo, hi)` builds it; the bounds must reach the SQL as parameters."""

    _LO, _HI = -(2**62) + 7, -(2**62) + 11  # stand-ins for the bounds while compiling, found in the parameters

    def __init__(self, query: Callable[[int, int], Any]):
        self.sql, params = query(self._LO, self._HI).query.sql_with_params()
        self.params = list(params)
        if self.params.count(self._LO) != 1 or self.params.count(self._HI) != 1:
            raise RuntimeError("the range query does not take its bounds as parameters")
        self.lo_at, self.hi_at = self.params.index(self._LO), self.params.index(self._HI)

    def fetch(self, lo: int, hi: int) -> list[tuple]:
        """The rows of records lo..hi (the columns need no conversion: ids, text), fetched at once:
        without the ORM's row-by-row iteration (about half the time of an answer)."""
        params = self.params.copy()
        params[self.lo_at], params[self.hi_at] = lo, hi
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            return cursor.fetchall()


REVIEW_VERDICTS = (Review.Decision.ACCEPTED, Review.Decision.OWN)


def _verdict(value: Any, target: Target, compares, reviewer: str | None) -> Verdict | None:
    """A reviewer's answer to the export's question, read as a vote is read (None: no answer to it)."""
    if value is None:
        return None
    if target.graded:
        vote = pair_vote_from_value(value, target.fields)
        if vote is None:
            return None
        return Verdict(vote.ranks, vote.strength if vote.ranks is not None else None, bool(vote.both_bad), reviewer)
    ranks = ranks_from_value(value, compares=compares)
    return Verdict(ranks, None, False, reviewer) if ranks is not None else None


class _PgTexts:
    """PostgreSQL reads of record texts with jsonb_to_record: the fields value is de-TOASTed once
    per record and the needed keys come out as text (fields->>'a', fields->>'b', ... would
    decompress it once per key: about twice the server time)."""

    def __init__(self, dataset_id: int, names: list[str], with_system: bool, *, include_gold: bool):
        table = Record._meta.db_table
        columns = ", ".join('"{}" text'.format(n.replace('"', '""')) for n in names)
        source = f'FROM "{table}" r CROSS JOIN LATERAL jsonb_to_record(r."fields") AS x({columns}) '
        gold = "" if include_gold else 'AND NOT r."is_gold" '
        system = """, r."metadata" ->> 'system'""" if with_system else ""
        self.dataset_id = dataset_id
        self.chunk_sql = (f'SELECT r."id", r."external_id"{system}, x.* {source}WHERE {after_sql("r")} {gold}'
                          'ORDER BY r."dataset_id", r."id" LIMIT %s')
        self.of_sql = f'SELECT r."id", x.* {source}WHERE r."dataset_id" = %s AND r."id" = ANY(%s)'

    def chunk(self, *, after_id: int, limit: int) -> list[tuple]:
        """(id, external_id, [system], *texts) of the next `limit` records after `after_id`."""
        with connection.cursor() as cursor:
            cursor.execute(self.chunk_sql, [*after_params(self.dataset_id, after_id), limit])
            return cursor.fetchall()

    def of(self, *, ids: list[int]) -> list[tuple]:
        """(id, *texts) of the given records."""
        with connection.cursor() as cursor:
            cursor.execute(self.of_sql, [self.dataset_id, ids])
            return cursor.fetchall()


YOUNG_THRESHOLD = 20_000  # while an export runs: container objects allocated (net) between young passes

_collector_lock = threading.Lock()
_collector_exports = 0  # exports running in this process (the last to end puts the thresholds back)
_collector_thresholds: tuple[int, ...] | None = None


@contextmanager
def old_objects_frozen() -> Iterator[None]:
    """While an export runs, the objects that were there before it are left out of the collector's full
    passes (gc.freeze), and put back at the end (gc.unfreeze: nothing is lost, they are collected as
    before). Each chunk's rows are tens of thousands of objects that live for the chunk, so full passes
    come every chunk or so, and each walked the whole application's objects too: about 15% of an
    export's CPU. Objects made meanwhile (the export's, other threads') are collected as usual. Exports
    at once in one process only end each other's freeze early, which costs time, never memory.

    The young generation is also passed over less often meanwhile (every YOUNG_THRESHOLD container
    objects allocated, net, instead of 700): a chunk's row tuples and each record's lists came to about
    550 young and 50 middle passes per 100,000 records, 10-14% of the export's CPU, for objects that
    reference counting frees anyway (2 young passes per 100,000 records with it). The thresholds the
    process had come back when the last export running in it ends."""
    global _collector_exports, _collector_thresholds
    with _collector_lock:
        if _collector_exports == 0:
            _collector_thresholds = gc.get_threshold()
            gc.set_threshold(max(YOUNG_THRESHOLD, _collector_thresholds[0]), *_collector_thresholds[1:])
        _collector_exports += 1
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        with _collector_lock:
            _collector_exports -= 1
            if _collector_exports == 0 and _collector_thresholds is not None:
                gc.set_threshold(*_collector_thresholds)
                _collector_thresholds = None


# --- prefetching --------------------------------------------------------------------------------

def prefetch_possible() -> bool:
    """Whether the next chunk may be read on a second thread (its own DB connection): PostgreSQL,
    and no transaction open on this thread (the other connection could not see its rows)."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


def first_then_prefetched(make: Callable[[], Iterator]) -> Iterator:
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
