"""TRL's unpaired preference format (KTO): one row per response, `prompt, completion, label`.

Built on the triplet export's resolved pairs, record by record (the rows of one record come
together): a field that wins a pair is desirable (label true), a field that loses one is
undesirable (false); a field that both wins and loses (the middle of three under pairs=all) says
neither and is left out, and so are tied pairs. Each field is written once per record. Standard
style gives texts, conversational style gives message lists (prompt with the system prompt,
completion the assistant turns), as TRL's conversational unpaired format. A reviewed record's rows
come from its reviewer's verdict, as the triplets' do (reviewed, reviewed_by say so; reviews=ignore).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.core.exceptions import ValidationError

UNPAIRED_COLUMNS = ("prompt", "completion", "label", "record_id", "external_id", "field", "annotators", "source",
                    "reviewed", "reviewed_by")


def unpaired_export(*, dataset, trl_margin: str | None = None, **params) -> Iterator[dict]:
    """The unpaired rows of a dataset, streamed; the options are the triplet export's (trl_margin aside:
    KTO reads no margin). Raises ValidationError naming a bad option before yielding anything."""
    from .triplets import triplets_export

    if trl_margin:
        raise ValidationError({"trl_margin": "the unpaired (KTO) export has no margin column"})
    return unpaired_rows(triplets_export(dataset=dataset, **params))


def unpaired_rows(triplets: Iterable[dict]) -> Iterator[dict]:
    """Triplet rows (a record's rows together) -> unpaired rows (see the module docstring)."""
    record: list[dict] = []
    for row in triplets:
        if record and row["record_id"] != record[0]["record_id"]:
            yield from _record_unpaired(record)
            record = []
        record.append(row)
    if record:
        yield from _record_unpaired(record)


def _record_unpaired(rows: list[dict]) -> Iterator[dict]:
    won: dict[str, object] = {}
    lost: dict[str, object] = {}
    for row in rows:
        if row.get("tie"):
            continue
        won.setdefault(row["chosen_field"], row["chosen"])
        lost.setdefault(row["rejected_field"], row["rejected"])
    first = rows[0]
    for field, label, text in [*((f, True, t) for f, t in won.items()), *((f, False, t) for f, t in lost.items())]:
        if field in won and field in lost:
            continue
        yield {"prompt": first["prompt"], "completion": text, "label": label, "record_id": first["record_id"],
               "external_id": first["external_id"], "field": field, "annotators": first["annotators"],
               "source": first["source"], "reviewed": first["reviewed"], "reviewed_by": first["reviewed_by"]}
