"""Importing an existing preference set (any public format: see imports.formats) as pairwise
records, shown blind: each pair's answers are shuffled into response-1/response-2."""
from __future__ import annotations

import hashlib
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from ..errors import validation_message
from ..models import Dataset, Field, Question, Record, Workspace
from ..quality.gold_files import gold_answer_best
from ..selectors import compared_fields, dataset_questions, ranked_question_of
from ..services import (
    dataset_create,
    imported_annotator_get,
    pairwise_dataset_spec,
    response_field_names,
    responses_import,
    suggestions_upsert,
)
from .formats import Pair, format_detect, mapping_apply, row_adapter
from .readers import file_type_sniff, rows_read
from .records import ProgressFn, records_import
from .report import MAX_REJECTED_KEPT, ImportFormatError, ImportReport, LineError, raw_text

PAIR_FIELDS = ("prompt", *response_field_names(2))


def chosen_position(*, external_id: str, seed: int | str) -> str:
    """Where the original chosen answer goes: stable for a given (external_id, seed)."""
    digest = hashlib.sha256(f"{seed}\x1f{external_id}".encode()).digest()
    return "response-1" if digest[0] & 1 == 0 else "response-2"


def _common_prefix(a: list[dict], b: list[dict]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _answer_text(messages: list[dict], where: str) -> str:
    """The final assistant turn(s) of a completion: what a response field holds."""
    texts = [m["content"] for m in messages if m["role"] == "assistant"]
    if not texts:
        raise ValidationError({where: "has no assistant turn after the prompt"})
    return "\n\n".join(texts)


def pair_conversation(pair: Pair) -> tuple[str | list[dict], str, str]:
    """(prompt, first answer, second answer): the prompt a text or the whole conversation before
    the answers (every turn kept), each answer the final assistant turn(s) of its side.

    Message-list sides that repeat the conversation (UltraFeedback, TRL's implicit prompt) are
    split at their shared prefix; an explicit message-list prompt is the conversation."""
    first, second, prompt = pair.first, pair.second, pair.prompt
    if isinstance(first, list) != isinstance(second, list):
        raise ValidationError({"rejected": "chosen and rejected must both be texts or both be message lists"})
    if isinstance(first, list):
        if isinstance(prompt, list) and first[:len(prompt)] == prompt and second[:len(prompt)] == prompt:
            first, second = first[len(prompt):], second[len(prompt):]
        elif not isinstance(prompt, list):
            n = _common_prefix(first, second)
            while n and first[n - 1]["role"] == "assistant":  # an answer starts after the last shared non-answer turn
                n -= 1
            if n:
                conversation = first[:n]
                if isinstance(prompt, str) and not any(m["role"] == "user" and m["content"] == prompt for m in conversation):
                    conversation = [*conversation, {"role": "user", "content": prompt}]
                prompt = conversation
            elif prompt is None:
                raise ValidationError({"chosen": "chosen and rejected share no prompt turns"})
            first, second = first[n:], second[n:]
        first_text, second_text = _answer_text(first, "chosen"), _answer_text(second, "rejected")
    else:
        first_text, second_text = first, second
    if prompt in (None, "", []):
        raise ValidationError({"prompt": "required"})
    return prompt, first_text, second_text


def _prompt_for(prompt: str | list[dict], system: str | None, *, chat: bool) -> tuple[Any, str | None]:
    """The prompt as the dataset's prompt field stores it, and the system prompt left for metadata.

    A chat prompt field holds the whole conversation. A text prompt field holds a text: a
    conversation of one user turn (and a system prompt, moved to metadata) becomes that text;
    a longer one is refused, never cut."""
    if chat:
        return (prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]), system
    if isinstance(prompt, str):
        return prompt, system
    turns = [m for m in prompt if m["role"] != "system"]
    systems = [m["content"] for m in prompt if m["role"] == "system"]
    if len(turns) == 1 and turns[0]["role"] == "user" and len(systems) <= 1:
        return turns[0]["content"], (systems[0] if systems else system)
    raise ValidationError({"prompt": f"a conversation of {len(prompt)} turns needs a chat prompt field; this dataset's "
                                     "prompt field is text (import into a dataset created with --create, whose prompt "
                                     "field is chat, so that no turn is lost)"})


def pair_gold_answer(*, question: Question | None, chosen: str | None, tie: bool = False) -> dict:
    """The known answer of a pair marked gold, for the dataset's ranked question (ranking, graded
    preference or comparison rating): the chosen response (`chosen`, after the shuffle) best, or a
    tie (quality.gold_files.gold_answer_best). ValidationError on `gold` when the pair or the
    dataset cannot hold one; the answer is then checked like any import's gold_answer (ties only
    where the dataset allows them)."""
    if question is None:
        raise ValidationError({"gold": "this dataset has no ranking or preference question to hold a known answer"})
    if chosen is None and not tie:
        raise ValidationError({"gold": "this row says no answer was chosen: a gold pair needs a chosen answer (or a tie)"})
    pair = list(PAIR_FIELDS[1:])
    ranked = compared_fields(question) or list((question.options or {}).get("values", []))
    if sorted(ranked) != sorted(pair):
        raise ValidationError({"gold": f"the question {question.name!r} ranks {', '.join(map(str, ranked))}; "
                                       f"a pair's known answer ranks {' and '.join(pair)}"})
    return gold_answer_best(question=question, best=chosen, tie=tie)


def pair_to_record(pair: Pair, *, seed: int | str, chat_prompt: bool = False,
                   gold_question: Question | None = None) -> dict:
    """The record of a Pair: answers shuffled into response-1/response-2 by a hash of the
    external id and `seed` (unless the pair keeps its order), metadata.original_chosen saying
    where the original chosen answer went (or original_tie). A pair marked gold gets its
    `gold_answer` for `gold_question` (pair_gold_answer), which records_import checks and stores."""
    prompt, first, second = pair_conversation(pair)
    if pair.system is not None and not isinstance(pair.system, str):
        raise ValidationError({"system": "must be a string"})
    prompt, system = _prompt_for(prompt, pair.system, chat=chat_prompt)
    external_id = pair.external_id
    if external_id in (None, ""):
        external_id = "pair-" + hashlib.sha1(orjson.dumps([system, prompt, first, second])).hexdigest()
    elif isinstance(external_id, bool) or not isinstance(external_id, (str, int)):
        raise ValidationError({"id": "must be a string or an integer"})
    external_id = str(external_id)
    metadata = {"source": "import_pairs", **pair.metadata}  # a file's own `source` is kept
    if pair.shuffle:
        where = chosen_position(external_id=external_id, seed=seed)
        other = "response-2" if where == "response-1" else "response-1"
        if pair.preferred == 1:
            first, second = second, first  # `first` is now the preferred answer
        fields = {"prompt": prompt, where: first, other: second}
        if pair.preferred == "tie":
            metadata["original_tie"] = True
        else:
            metadata["original_chosen"] = where
    else:
        fields = {"prompt": prompt, "response-1": first, "response-2": second}
        if pair.preferred in (0, 1):
            metadata["original_chosen"] = f"response-{pair.preferred + 1}"
    if system is not None:
        metadata["system"] = system
    record = {"external_id": external_id, "fields": fields, "metadata": metadata}
    if pair.gold:
        if pair.shuffle:
            chosen = None if pair.preferred == "tie" else where
        else:
            chosen = f"response-{pair.preferred + 1}" if pair.preferred in (0, 1) else None
        record["gold_answer"] = pair_gold_answer(question=gold_question, chosen=chosen, tie=pair.preferred == "tie")
    return record


def pairs_dataset_check(dataset: Dataset) -> None:
    names = set(dataset.fields.values_list("name", flat=True))
    missing = [f for f in PAIR_FIELDS if f not in names]
    if missing:
        raise ValidationError({"dataset": f"importing pairs needs the fields prompt, response-1 and response-2; "
                                          f"this dataset lacks {', '.join(missing)}"})


class PairSource:
    """An opened pair file: its file type, its format (told from the first row's columns or
    named) and its rows, streamed (the first row read ahead is given back)."""

    def __init__(self, stream, *, filetype: str | None = None, fmt: str | None = None,
                 mapping: dict[str, str] | None = None, strict: bool = False, max_bytes: int | None = None):
        self.max_bytes = max_bytes or settings.PREFLAB_MAX_RECORD_BYTES
        self.filetype, stream = file_type_sniff(stream, hint=filetype)
        self._rows = iter(rows_read(stream=stream, fmt=self.filetype, max_bytes=self.max_bytes))
        self._ahead: list = []
        first = None
        for item in self._rows:
            self._ahead.append(item)
            if isinstance(item[1], dict):
                first = item[1]
                break
            if len(self._ahead) > 1000:
                break
        self.fmt, self.mapping, self.strict = fmt, mapping, strict
        self.format = self.to_pair = None
        self.first_row = first
        if first is not None:
            self.bind(first)
        # conversational data (message lists) wants a chat prompt field
        self.conversational = first is not None and any(
            isinstance(v, list) or (isinstance(v, str) and v.lstrip().startswith("[{"))
            for k, v in mapping_apply(first, mapping or {}).items() if k in ("prompt", "chosen", "rejected"))

    def bind(self, first: dict) -> None:
        """Tell the format from the first row that is an object (found later when the lines
        read ahead were all unreadable)."""
        self.format = format_detect(first, name=self.fmt, mapping=self.mapping)
        self.to_pair = row_adapter(self.format, first, mapping=self.mapping, strict=self.strict)

    def rows(self):
        yield from self._ahead
        self._ahead = []
        yield from self._rows


def pairs_preview(stream, *, filetype: str | None = None, fmt: str | None = None,
                  mapping: dict[str, str] | None = None, rows: int = 5) -> dict:
    """The first `rows` rows of a pair file, its columns, and its format (or why it cannot be
    told): the import page's mapping step."""
    out: dict = {"columns": [], "rows": [], "format": None, "error": None}
    try:
        filetype, stream = file_type_sniff(stream, hint=filetype)
        for _line, raw, _size in rows_read(stream=stream, fmt=filetype, max_bytes=settings.PREFLAB_MAX_RECORD_BYTES):
            if isinstance(raw, dict):
                out["rows"].append(raw)
                if len(out["rows"]) >= rows:
                    break
    except ImportFormatError as exc:
        out["error"] = str(exc)
        return out
    out["columns"] = list(dict.fromkeys(k for r in out["rows"] for k in r))
    if not out["rows"]:
        out["error"] = "no row could be read from this file"
        return out
    try:
        out["format"] = format_detect(out["rows"][0], name=fmt, mapping=mapping)
    except ImportFormatError as exc:
        out["error"] = str(exc)
    return out


def pairs_import(*, dataset: Dataset, stream=None, source: PairSource | None = None, seed: int | str = 0,
                 filetype: str | None = None, fmt: str | None = None, mapping: dict[str, str] | None = None,
                 strict: bool = False, batch_size: int | None = None, on_progress: ProgressFn | None = None,
                 pipeline: bool = False) -> ImportReport:
    """Import a preference file in any of the public formats (imports.formats) as pairwise records.

    `filetype` (ndjson | json | csv | parquet) is sniffed when not given; `fmt` names the format
    (told from the columns otherwise); `mapping` ({target: column}) renames columns; `strict`
    rejects the lines with columns the format does not read (they go to metadata otherwise).
    Each record's two answers are shuffled into response-1/response-2 by a hash of its
    external_id and `seed` (stable: re-importing puts them in the same place), and
    metadata.original_chosen keeps where the original chosen answer went, so a judge or an
    annotator can re-check the pair blind. An Argilla export keeps its order and brings its
    human responses (as imported annotators) and its suggestions.
    """
    pairs_dataset_check(dataset)
    if source is None:
        source = PairSource(stream, filetype=filetype, fmt=fmt, mapping=mapping, strict=strict)
    chat_prompt = dataset.fields.filter(name="prompt", kind=Field.Kind.CHAT).exists()
    gold_question = ranked_question_of(dataset_questions(dataset))
    extras = _Extras(dataset)  # an Argilla export's responses and suggestions; nothing for the others

    def items():
        for line_no, raw, size in source.rows():
            if isinstance(raw, LineError):
                yield line_no, raw, size
                continue
            try:
                if source.to_pair is None:
                    if not isinstance(raw, dict):
                        raise ValidationError({"record": "must be an object of columns"})
                    source.bind(raw)
                pair = source.to_pair(raw)
                record = pair_to_record(pair, seed=seed, chat_prompt=chat_prompt, gold_question=gold_question)
            except ValidationError as exc:
                yield line_no, LineError(validation_message(exc), raw_text(raw)), size
                continue
            if pair.responses or pair.suggestions:
                extras.hold(record["external_id"], pair)
            yield line_no, record, None

    report = records_import(dataset=dataset, stream=None, fmt=source.filetype, batch_size=batch_size,
                            on_progress=on_progress, items=items(), pipeline=pipeline,
                            on_stored=extras.write)
    if source.format is not None and source.format.name == "argilla":
        report.extra.update(extras.counts())
        report.warnings.extend(extras.warnings)
    return report


class _Extras:
    """An Argilla export's human responses and suggestions, written once their records are."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.pending: dict[str, Pair] = {}
        self.users: dict[str, Any] = {}
        self.questions = {q.name: q for q in dataset.questions.all()}
        self.responses = 0
        self.suggestions = 0
        self.warnings: list[str] = []

    def hold(self, external_id: str, pair: Pair) -> None:
        self.pending[external_id] = pair

    def _question(self, pair: Pair):
        name = pair.metadata.get("argilla_question")
        question = self.questions.get(name)
        if question is None:
            rankings = [q for q in self.questions.values() if q.kind == Question.Kind.RANKING]
            question = rankings[0] if len(rankings) == 1 else None
        return question

    def write(self, external_ids: list[str]) -> None:
        held = {eid: self.pending.pop(eid) for eid in external_ids if eid in self.pending}
        if not held:
            return
        records = {r.external_id: r for r in Record.objects.filter(dataset=self.dataset, external_id__in=list(held))
                   .only("pk", "external_id")}  # the texts are not needed here
        suggestions, responses = [], []
        for eid, pair in held.items():
            record = records.get(eid)
            question = self._question(pair)
            if record is None:
                continue
            if question is None:
                self._warn(f"{eid}: the dataset has no ranking question {pair.metadata.get('argilla_question')!r}; "
                           "responses and suggestions not imported")
                continue
            for r in pair.responses:
                user = self._annotator(r["user"])
                if user is not None:
                    responses.append((record, user, {question.name: r["value"]} if r["value"] else {}, r["status"]))
            for s in pair.suggestions:
                suggestions.append({"record": record.pk, "question": question.name, **s})
        if responses:
            stored, errors = responses_import(dataset=self.dataset, items=responses)
            self.responses += stored
            for error in errors:
                self._warn(f"response: {error}")
        if suggestions:
            counts = suggestions_upsert(dataset=self.dataset, items=suggestions)
            self.suggestions += counts.created + counts.updated
            for error in counts.errors[:20]:
                self._warn(f"suggestion: {error['errors']}")

    def _annotator(self, user_id):
        """The imported account of an Argilla user_id (made once per import); None, with a warning, when the
        id would make a user name people cannot read safely (control or text-direction characters)."""
        if user_id not in self.users:
            try:
                self.users[user_id] = imported_annotator_get(workspace=self.dataset.workspace, name=f"argilla-{user_id}")
            except ValidationError as exc:
                self.users[user_id] = None
                self._warn(f"response: Argilla user_id {str(user_id)[:80]!r} refused: {'; '.join(exc.messages)}")
        return self.users[user_id]

    def _warn(self, text: str) -> None:
        if len(self.warnings) < MAX_REJECTED_KEPT:
            self.warnings.append(text)

    def counts(self) -> dict:
        return {"responses_imported": self.responses, "suggestions_imported": self.suggestions,
                "annotators_imported": sum(1 for u in self.users.values() if u is not None)}


@transaction.atomic
def pairs_dataset_create(*, workspace: Workspace, name: str, created_by=None, guidelines: str = "",
                         min_submitted: int = 1, allow_ties: bool = False, prompt_kind: str = "text") -> Dataset:
    """A ready pairwise dataset: prompt (text, or chat for conversations), response-1/response-2
    (markdown), ranking `ranking`."""
    fields, questions = pairwise_dataset_spec(responses=2, prompt_kind=prompt_kind,
                                              ranking_title="Which response is better?")
    return dataset_create(workspace=workspace, name=name, created_by=created_by, guidelines=guidelines,
                          min_submitted=min_submitted, allow_ties=allow_ties, fields=fields, questions=questions)
