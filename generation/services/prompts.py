"""Prompts of a generation job: uploaded files (JSONL, CSV, Parquet) or a dataset's records."""

from __future__ import annotations

import csv
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError

from annotation.models import Dataset, Record
from annotation.text import unstorable_text

PROMPT_FORMATS = ("jsonl", "csv", "parquet")


# --- prompts -----------------------------------------------------------------------------------

@dataclass
class Prompt:
    key: str
    prompt: Any          # a string, or a chat (list of {role, content})
    external_id: str | None = None  # the record id to write (the prompt's id, or a source record's)

    def to_spec(self) -> dict:
        return {"key": self.key, "prompt": self.prompt, "external_id": self.external_id}


def prompts_file_save(*, uploaded, filename: str) -> str:
    """Keep an uploaded prompt file under MEDIA_ROOT/generation/; returns its path."""
    folder = Path(settings.MEDIA_ROOT) / "generation"
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(filename or "prompts"))[-100:] or "prompts"
    path = folder / f"{uuid.uuid4().hex[:12]}-{safe}"
    with open(path, "wb") as out:
        if hasattr(uploaded, "chunks"):
            for chunk in uploaded.chunks():
                out.write(chunk)
        elif isinstance(uploaded, (bytes, bytearray)):
            out.write(uploaded)
        else:
            while True:
                block = uploaded.read(1 << 20)
                if not block:
                    break
                out.write(block)
    return str(path)


def prompt_format_of(path: str, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in PROMPT_FORMATS:
            raise ValidationError({"format": f"must be one of {', '.join(PROMPT_FORMATS)}"})
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix in ("csv", "tsv"):
        return "csv"
    if suffix in ("parquet", "pq"):
        return "parquet"
    raise ValidationError({"prompts": "cannot tell the format from the file name; give format jsonl, csv or parquet"})


def _prompt_value(value: Any, where: str) -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise ValidationError({"prompts": f"{where}: the prompt is empty"})
        return value
    if isinstance(value, list) and value:
        for i, m in enumerate(value):
            if (not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool")
                    or not isinstance(m.get("content"), str)):
                raise ValidationError({"prompts": f"{where}: message {i} needs a role and a string content"})
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise ValidationError({"prompts": f"{where}: the prompt must be a non-empty string or a list of chat messages"})


def prompts_read(*, path: str, fmt: str | None = None, column: str = "prompt",
                 id_column: str | None = None) -> list[Prompt]:
    """Read a prompt file; a bad line raises ValidationError naming the line (nothing is written)."""
    fmt = prompt_format_of(path, fmt)
    column = column or "prompt"
    rows: Iterable[tuple[int, dict]]
    try:
        if fmt == "jsonl":
            rows = _jsonl_rows(path)
        elif fmt == "csv":
            rows = _csv_rows(path)
        else:
            rows = _parquet_rows(path, [c for c in (column, id_column) if c])
        out: list[Prompt] = []
        seen: set[str] = set()
        for line, row in rows:
            where = f"line {line}" if fmt != "parquet" else f"row {line}"
            if column not in row:
                raise ValidationError({"column": f"{where}: no column {column!r} (columns: {', '.join(map(str, row))})"})
            prompt = _prompt_value(row[column], where)
            if id_column:
                if id_column not in row or row[id_column] in (None, ""):
                    raise ValidationError({"id_column": f"{where}: no value in column {id_column!r}"})
                key = str(row[id_column])
                if len(key) > 200:
                    raise ValidationError({"id_column": f"{where}: the id is longer than 200 characters"})
                external_id = key
            else:
                key, external_id = str(line), None
            found = unstorable_text({column: prompt, **({id_column: key} if id_column else {})})
            if found is not None:  # annotation.text: a person's file holding text that cannot be stored
                raise ValidationError({"prompts": f"{where}: {found[0]}: {found[1]}"})
            if key in seen:
                raise ValidationError({"id_column": f"{where}: duplicate id {key!r}"})
            seen.add(key)
            out.append(Prompt(key=key, prompt=prompt, external_id=external_id))
    except FileNotFoundError:
        raise ValidationError({"prompts": f"no such file: {path}"})
    except UnicodeDecodeError as exc:
        raise ValidationError({"prompts": f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})"})
    if not out:
        raise ValidationError({"prompts": "the file has no prompts"})
    return out


def _jsonl_rows(path: str):
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValidationError({"prompts": f"line {line_no}: not valid JSON ({exc})"})
            if not isinstance(row, dict):
                raise ValidationError({"prompts": f"line {line_no}: each line must be a JSON object"})
            yield line_no, row


def _csv_rows(path: str):
    with open(path, newline="", encoding="utf-8-sig") as f:
        sample = f.read(65536)
        f.seek(0)
        delimiter = "\t" if path.endswith(".tsv") or sample.count("\t") > sample.count(",") else ","
        reader = csv.DictReader(f, delimiter=delimiter)
        for row in reader:
            # reader.line_num is the physical line where this row ends (the header is line 1)
            yield reader.line_num, row


def _parquet_rows(path: str, columns: list[str]):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise ValidationError({"prompts": f"not a readable Parquet file: {exc}"})
    names = pf.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValidationError({"column": f"no column {missing[0]!r} in the Parquet file (columns: {', '.join(names)})"})
    row_no = 0
    for batch in pf.iter_batches(columns=columns, batch_size=2048):
        for row in batch.to_pylist():
            row_no += 1
            yield row_no, row


def prompts_from_dataset(*, dataset: Dataset, field: str | None = None) -> list[Prompt]:
    field = field or dataset.prompt_field
    if not dataset.fields.filter(name=field).exists():
        raise ValidationError({"prompts_dataset": f"the dataset {dataset.name!r} has no field {field!r}"})
    out = []
    for external_id, fields in (Record.objects.filter(dataset=dataset).order_by("id")
                                .values_list("external_id", "fields").iterator(chunk_size=2000)):
        value = (fields or {}).get(field)
        if value in (None, "", []):
            continue
        out.append(Prompt(key=external_id, prompt=_prompt_value(value, f"record {external_id}"),
                          external_id=external_id))
    if not out:
        raise ValidationError({"prompts_dataset": f"no record of {dataset.name!r} has a {field!r} value"})
    return out


def prompt_messages(prompt: Any) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)
