"""The three exports behind one interface (the API, the CLI and the "export" job use it):

* triplets   (prompt, chosen, rejected) rows: DPO, reward models (triplets.py);
* unpaired   (prompt, completion, label) rows: TRL's unpaired preference format for KTO (unpaired.py);
* responses  every annotator response as it is stored, for people who aggregate themselves (responses.py).

Each has one schema: the Parquet writer writes it, the JSONL values load as the same types, the CSV
header names the same columns.
"""
from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator

from django.core.exceptions import ValidationError

from ..models import Dataset
from .parameters import (
    EXTENSIONS,
    FORMATS,
    QUALITY_PARAMETERS,
    _choice,
    columns_for,
    export_file_name,
    export_params_parse,
    file_name_part,
    quality_params_parse,
)
from .responses import RESPONSE_STATUSES, RESPONSES_COLUMNS, responses_export, responses_export_count
from .triplets import triplets_export, triplets_export_count
from .unpaired import UNPAIRED_COLUMNS, unpaired_export
from .writers import csv_chunks, jsonl_chunks, parquet_chunks, parquet_schema, parquet_write

EXPORT_KINDS = ("triplets", "unpaired", "responses")
RESPONSES_PARAMETERS = {"format", "status", *QUALITY_PARAMETERS}


def export_kind_parse(kind: str, params: dict, *, with_format: bool = True) -> dict:
    """Check an export's options (query string, CLI or job params); ValidationError naming the bad one."""
    _choice("export", kind, EXPORT_KINDS)
    if kind != "responses":
        out = export_params_parse(params, with_format=with_format)
        if kind == "unpaired" and out.get("trl_margin"):
            raise ValidationError({"trl_margin": "the unpaired (KTO) export has no margin column"})
        return out
    unknown = set(params) - RESPONSES_PARAMETERS
    if unknown:
        raise ValidationError({sorted(unknown)[0]: f"unknown parameter; known: {', '.join(sorted(RESPONSES_PARAMETERS))}"})
    out = {"status": _choice("status", params["status"], RESPONSE_STATUSES) if params.get("status") else None,
           **quality_params_parse(params)}
    if with_format:
        out["format"] = _choice("format", params.get("format") or "jsonl", FORMATS)
    return out


def export_rows(kind: str, *, dataset: Dataset, params: dict,
                on_progress: Callable[[int], None] | None = None) -> Iterator[dict]:
    """The export's rows, streamed; params as export_kind_parse returns them, without format."""
    if kind == "responses":
        return responses_export(dataset=dataset, on_progress=on_progress, **params)
    if kind == "unpaired":
        return unpaired_export(dataset=dataset, on_progress=on_progress, **params)
    return triplets_export(dataset=dataset, on_progress=on_progress, **params)


def export_count(kind: str, dataset: Dataset, params: dict | None = None) -> int:
    """What the export walks, for progress bars: responses for the raw export, else records (gold ones only
    with include_gold; params as export_kind_parse returns them)."""
    params = params or {}
    include_gold = bool(params.get("include_gold"))
    if kind == "responses":
        return responses_export_count(dataset, include_gold=include_gold,
                                      include_excluded=bool(params.get("include_excluded")))
    return triplets_export_count(dataset, include_gold=include_gold)


def export_columns(kind: str, params: dict) -> tuple[str, ...]:
    if kind == "responses":
        return RESPONSES_COLUMNS
    if kind == "unpaired":
        return UNPAIRED_COLUMNS
    return columns_for(params.get("source") or "human", params.get("trl_margin"))


def export_schema(kind: str, params: dict):
    """The export's pyarrow schema (Parquet's, and the types its JSONL values load as)."""
    import pyarrow as pa

    style = params.get("style") or "standard"
    if kind == "triplets":
        return parquet_schema(style=style, source=params.get("source") or "human", trl_margin=params.get("trl_margin"))
    if kind == "unpaired":
        text = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])) if style == "conversational" \
            else pa.string()
        types = {"prompt": text, "completion": text, "label": pa.bool_(), "record_id": pa.int64(),
                 "external_id": pa.string(), "field": pa.string(), "annotators": pa.int64(), "source": pa.string(),
                 "reviewed": pa.bool_(), "reviewed_by": pa.string()}
        return pa.schema([(n, types[n]) for n in UNPAIRED_COLUMNS])
    types = {"response_id": pa.int64(), "record_id": pa.int64(), "external_id": pa.string(), "user": pa.string(),
             "simulated": pa.bool_(), "status": pa.string(), "values": pa.string(), "display_order": pa.list_(pa.string()),
             "duration": pa.float64(), "created_at": pa.string(), "updated_at": pa.string(),
             "suggestion_shown": pa.bool_(), "gold": pa.bool_(),
             "review_decision": pa.string(), "reviewed_by": pa.string(), "review_values": pa.string(),
             "review_accepted": pa.bool_()}
    return pa.schema([(n, types[n]) for n in RESPONSES_COLUMNS])


def export_chunks(kind: str, rows: Iterable[dict], *, fmt: str, params: dict) -> Iterator[bytes]:
    """The rows as byte chunks of a file in the given format (jsonl, csv or parquet)."""
    if fmt == "jsonl":
        return jsonl_chunks(rows)
    if fmt == "csv":
        return csv_chunks(rows, columns=export_columns(kind, params))
    return parquet_chunks(rows, style="", source="", schema_of=lambda: export_schema(kind, params))


def export_write(kind: str, rows: Iterable[dict], out, *, fmt: str, params: dict) -> int:
    """Write rows to a binary file object in the given format; returns the number of rows."""
    if fmt == "parquet":
        return parquet_write(rows, out, style="", source="", schema=export_schema(kind, params))
    count = 0

    def counted():
        nonlocal count
        for row in rows:
            count += 1
            yield row

    for chunk in export_chunks(kind, counted(), fmt=fmt, params=params):
        out.write(chunk)
    return count


def export_kind_file_name(kind: str, dataset: Dataset, *, fmt: str, params: dict, day: datetime.date) -> str:
    """`helpfulness-triplets-standard-human-2026-12-03.jsonl`, `...-unpaired-...`, `helpfulness-responses-2026-12-03.csv`."""
    name = file_name_part(dataset.name, fallback=f"dataset-{dataset.pk}")
    if kind == "responses":
        status = f"-{file_name_part(str(params['status']), 'all')}" if params.get("status") else ""
        return f"{name}-responses{status}-{day.isoformat()}.{EXTENSIONS[fmt]}"
    return export_file_name(dataset, fmt=fmt, style=file_name_part(str(params.get("style") or "standard"), "standard"),
                            source=file_name_part(str(params.get("source") or "human"), "human"), day=day, kind=kind)
