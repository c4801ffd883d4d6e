"""Writers of triplet rows: JSONL (orjson), CSV (written by hand, as the csv module quotes) and
Parquet (pyarrow, row groups of ~10k rows) as byte chunks, streamed; the API, the CLI and the
"export" job all use them. Column names and types are the same in every format."""
from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from .parameters import columns_for

PARQUET_ROW_GROUP = 10_000
PARQUET_GROUP_BYTES = 8 << 20  # fewer rows per group when the texts are long
# Dictionary encoding only for the short repeated columns: on long unique texts it only costs memory.
_DICT_COLUMNS = ["chosen_field", "rejected_field", "source"]
PARQUET_MAGIC = b"PAR1"
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


_QUOTE, _QUOTES = '"', '""'
_FLOAT_TEXT: dict[float, str] = {}  # str() of the margins and agreements, which take few values


def _csv_line(values: list, float_text: dict[float, str] = _FLOAT_TEXT) -> str:
    """One CSV line of cells, each as _csv_cell writes it, without its line break (csv_chunks puts them
    between the lines it joins: one copy of a row's texts less); the cell rule inlined for text,
    numbers and empty cells (a function call per cell is a third of a row's time)."""
    cells = []
    append = cells.append
    for value in values:
        kind = value.__class__
        if value is None:
            append("")
        elif kind is str:
            if '"' in value or "," in value or "\n" in value or "\r" in value:
                append(f'"{value.replace(_QUOTE, _QUOTES)}"')  # one copy of the text, not two
            else:
                append(value)
        elif kind is float:
            text = float_text.get(value)
            if text is None:
                text = str(value)
                if value != 0.0 and len(float_text) < 4096:  # 0.0 and -0.0 are one key but two texts
                    float_text[value] = text
            append(text)
        elif kind is int:
            append(str(value))
        elif kind is bool:
            append("True" if value else "False")
        else:
            append(_csv_cell(value))
    return ",".join(cells)


def csv_chunks(rows: Iterable[dict], *, columns: tuple[str, ...]) -> Iterator[bytes]:
    """CSV bytes (lines end in CRLF, like the csv module's) with a header row; message lists and
    ratings JSON-encoded in their cells. The first row leaves on its own, then ~256 KiB chunks."""
    yield (",".join(_csv_cell(c) for c in columns) + "\r\n").encode()
    parts: list[str] = []
    size = 0
    first = True
    for row in rows:
        line = _csv_line([row.get(c) for c in columns])
        if first:
            first = False
            yield (line + "\r\n").encode()
            continue
        parts.append(line)
        size += len(line)
        if size >= FLUSH_BYTES:
            parts.append("")  # the last line's break
            yield "\r\n".join(parts).encode()
            parts.clear()
            size = 0
    if parts:
        parts.append("")
        yield "\r\n".join(parts).encode()


def parquet_schema(*, style: str, source: str, trl_margin: str | None = None):
    """The triplet export's one schema: Parquet writes it, and its types are the ones a JSONL file's
    values load as (integers int64, numbers float64 written with a decimal point, booleans)."""
    import pyarrow as pa

    if style == "conversational":
        text = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    else:
        text = pa.string()
    types = {"prompt": text, "chosen": text, "rejected": text, "record_id": pa.int64(), "external_id": pa.string(),
             "chosen_field": pa.string(), "rejected_field": pa.string(), "annotators": pa.int64(),
             "agreement": pa.float64(), "vote_margin": pa.float64(), "rank_margin": pa.float64(),
             "strength_margin": pa.float64(), "judge_margin": pa.float64(), "tie": pa.bool_(), "source": pa.string(),
             "reviewed": pa.bool_(), "reviewed_by": pa.string(),
             "ratings": pa.struct([("chosen", pa.float64()), ("rejected", pa.float64())]), "margin": pa.float64()}
    return pa.schema([(name, types[name]) for name in columns_for(source, trl_margin)])


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

    plain = [n for n in ("prompt", "chosen", "rejected", "completion")
             if n in schema.names and schema.field(n).type == pa.string()]
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


def parquet_chunks(rows: Iterable[dict], *, style: str, source: str, trl_margin: str | None = None,
                   row_group: int = PARQUET_ROW_GROUP, schema=None, schema_of=None) -> Iterator[bytes]:
    """A Parquet file as bytes, streamed row group by row group (the footer comes last): the file's
    magic number leaves at once (before pyarrow is even imported: a first import takes half a second),
    then each row group as it is written; only one row group is ever held."""
    yield PARQUET_MAGIC  # every Parquet file starts with it; the writer's own copy is dropped below
    import pyarrow.parquet as pq

    if schema is None:  # schema_of(): the schema, built only now (it imports pyarrow)
        schema = schema_of() if schema_of is not None else parquet_schema(style=style, source=source,
                                                                          trl_margin=trl_margin)
    sink = _Drain()
    writer = pq.ParquetWriter(sink, schema, compression="zstd", use_dictionary=_DICT_COLUMNS)
    head = sink.take()
    if not head.startswith(PARQUET_MAGIC):
        raise RuntimeError("pyarrow's Parquet writer did not start the file with the magic number")
    if head[len(PARQUET_MAGIC):]:
        yield head[len(PARQUET_MAGIC):]
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


def parquet_write(rows: Iterable[dict], sink, *, style: str, source: str, trl_margin: str | None = None,
                  row_group: int = PARQUET_ROW_GROUP, schema=None) -> int:
    """Write rows to a Parquet file (path or binary file object) in row groups; returns the row count."""
    import pyarrow.parquet as pq

    schema = schema if schema is not None else parquet_schema(style=style, source=source, trl_margin=trl_margin)
    count = 0
    with pq.ParquetWriter(sink, schema, compression="zstd", use_dictionary=_DICT_COLUMNS) as writer:
        for table in _row_groups(rows, schema, row_group):
            writer.write_table(table)
            count += table.num_rows
    return count


def triplets_chunks(rows: Iterable[dict], *, fmt: str, style: str, source: str,
                    trl_margin: str | None = None) -> Iterator[bytes]:
    """The rows as byte chunks of a file in the given format (jsonl, csv or parquet)."""
    if fmt == "jsonl":
        return jsonl_chunks(rows)
    if fmt == "csv":
        return csv_chunks(rows, columns=columns_for(source, trl_margin))
    return parquet_chunks(rows, style=style, source=source, trl_margin=trl_margin)
