"""Readers of records: NDJSON, a JSON array, CSV and Parquet, each streamed.

Readers never hold the whole input: NDJSON and CSV are read line by line from a binary stream in
64 KiB chunks, Parquet batch by batch, and a JSON array is parsed element by element with
`json.JSONDecoder.raw_decode` over a rolling text buffer (no extra dependency such as ijson: the
C scanner behind raw_decode is fast, and the buffer only ever holds the element being read plus
one read chunk).

Every reader yields `(line, raw, size)` where `raw` is the decoded object or a `LineError`; `line`
is the 1-based line number (NDJSON, CSV: the physical line; JSON array: the element's position;
Parquet: the row number).
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import tempfile
from collections.abc import Iterator
from typing import Any

import orjson
from django.core.exceptions import ValidationError

from ..errors import validation_message
from ..text import invalid_utf8_problem, text_clean
from .report import RAW_KEEP, ImportFormatError, LineError, UploadTooLarge

FORMATS = ("json", "ndjson", "csv", "parquet")
READ_CHUNK = 1 << 16


class CountingStream(io.RawIOBase):
    """Wraps a binary stream: counts bytes read and stops at `limit` with UploadTooLarge."""

    def __init__(self, stream, limit: int | None = None):
        super().__init__()
        self.stream = stream
        self.limit = limit
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.read_bytes += len(data)
        if self.limit is not None and self.read_bytes > self.limit:
            raise UploadTooLarge(f"the upload is over the limit of {self.limit} bytes")
        return data

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def iter_lines(stream, *, max_line: int) -> Iterator[tuple[int, bytes | None, int]]:
    """Yield (line_number, line_bytes_without_newline | None, size) from a binary stream.

    A line longer than `max_line` bytes is not kept in memory: it is skipped up to its newline
    and yielded as None with its size, so the caller can reject it as oversized.
    """
    buf = b""
    line_no = 0
    skipping = False
    skipped = 0
    while True:
        chunk = stream.read(READ_CHUNK)
        if not chunk:
            break
        if skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                skipped += len(chunk)
                continue
            line_no += 1
            yield line_no, None, skipped + nl
            skipping = False
            chunk = chunk[nl + 1:]
        buf = buf + chunk if buf else chunk
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line_no += 1
            yield line_no, buf[start:nl], nl - start
            start = nl + 1
        buf = buf[start:]
        if len(buf) > max_line:
            skipping = True
            skipped = len(buf)
            buf = b""
    if skipping:
        line_no += 1
        yield line_no, None, skipped
    elif buf:
        line_no += 1
        yield line_no, buf, len(buf)


# --- readers -----------------------------------------------------------------------------------

def read_ndjson(stream, *, max_bytes: int) -> Iterator[tuple[int, Any, int | None]]:
    for line_no, line, size in iter_lines(stream, max_line=max_bytes + 2):
        if line is None:
            yield line_no, LineError(f"record: record is {size} bytes, over the limit of {max_bytes}"), size
            continue
        if line.endswith(b"\r"):
            line = line[:-1]
            size -= 1
        if not line.strip():
            continue  # blank lines (e.g. a trailing newline) are not records
        try:
            yield line_no, orjson.loads(line), size
        except orjson.JSONDecodeError as exc:
            yield line_no, LineError(f"malformed JSON: {exc}", line[:RAW_KEEP].decode("utf-8", "replace")), size


def read_json_array(stream, *, max_bytes: int) -> Iterator[tuple[int, Any, int | None]]:
    """Parse a JSON array element by element from a binary stream.

    Raises ImportFormatError when the body is not an array at all. A syntax error inside the
    array makes the rest unreadable: that element is reported and reading stops.
    """
    text = _TextBuffer(stream)
    if text.skip_ws() != "[":
        raise ImportFormatError("the body must be a JSON array of records (or send "
                                "Content-Type: application/x-ndjson with one record per line)")
    text.pos += 1
    read = 0
    if text.skip_ws() == "]":
        text.pos += 1
    else:
        read = yield from _array_elements(text, max_bytes)
        if read is None:  # the rest of the array could not be read (reported)
            return
    if text.skip_ws() != "":
        yield read + 1, LineError("malformed JSON: content after the end of the array"), None


def _array_elements(text: _TextBuffer, max_bytes: int):
    """Yield the elements of an open array up to its closing bracket; returns how many there were,
    or None after reporting an element that makes the rest unreadable."""
    element = 0
    while True:
        element += 1
        if text.skip_ws() == "":
            yield element, LineError("malformed JSON: the array is not closed"), None
            return None
        decoded = text.decode(max_bytes)
        if isinstance(decoded, LineError):
            yield element, decoded, None
            return None
        obj, end = decoded
        if problem := invalid_utf8_problem(text.buf, text.pos, end):  # bytes that were not UTF-8 (JSON escapes are ASCII)
            text.pos = end
            yield element, LineError(f"record: {problem}"), None
        else:
            size = end - text.pos
            if size * 4 > max_bytes:  # characters -> bytes only when it could matter
                size = len(text.buf[text.pos:end].encode("utf-8", "replace"))
            text.pos = end
            yield element, obj, size
        c = text.skip_ws()
        if c == ",":
            text.pos += 1
            continue
        if c == "]":
            text.pos += 1
            return element
        yield element + 1, LineError("malformed JSON: expected ',' or ']' after an element "
                                     "(the rest of the array could not be read)",
                                     text_clean(text.buf[text.pos:text.pos + RAW_KEEP])[0]), None
        return None


class _TextBuffer:
    """A rolling window of decoded text over a binary stream: `buf[pos:]` is what is not read yet."""

    WHITESPACE = " \t\r\n\ufeff"

    def __init__(self, stream):
        self.stream = stream
        # bytes that are not UTF-8 become lone surrogates, so the element holding one is rejected
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        self.decoder = json.JSONDecoder()
        self.buf = ""
        self.pos = 0
        self.eof = False

    def fill(self) -> bool:
        """Read one more chunk (the text already read is dropped); False at the end of the stream."""
        if self.eof:
            return False
        chunk = self.stream.read(READ_CHUNK)
        if not chunk:
            self.eof = True
            self.buf = self.buf[self.pos:] + self.utf8.decode(b"", final=True)
            self.pos = 0
            return False
        self.buf = self.buf[self.pos:] + self.utf8.decode(chunk)
        self.pos = 0
        return True

    def skip_ws(self) -> str:
        """Move past whitespace; the next character, or "" at the end of the stream."""
        while True:
            buf, pos, n = self.buf, self.pos, len(self.buf)
            while pos < n and buf[pos] in self.WHITESPACE:
                pos += 1
            self.pos = pos
            if pos < n:
                return buf[pos]
            if not self.fill():
                return ""

    def decode(self, max_bytes: int) -> tuple[Any, int] | LineError:
        """The JSON value at `pos` and where it ends, reading on while it is cut by the end of the
        buffer; a LineError when it cannot be read (the rest of the array cannot be either)."""
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                # An element bigger than the record limit is skipped without keeping it.
                if len(self.buf) - self.pos > max_bytes * 4 + READ_CHUNK:
                    return LineError(f"record: record is over the limit of {max_bytes} bytes "
                                     "(the rest of the array could not be read)")
                if self.fill() or (not self.eof):
                    continue
                return LineError(f"malformed JSON: {exc.msg} (the rest of the array could not be read)",
                                 text_clean(self.buf[self.pos:self.pos + RAW_KEEP])[0])
            if end == len(self.buf) and not self.eof and isinstance(obj, (int, float)):
                # a number at the buffer edge may continue in the next chunk
                if self.fill():
                    continue
            return obj, end


def _flat_row_to_record(row: dict, chat_fields: set[str]) -> dict:
    """CSV/Parquet column rules: `external_id`/`id`, `priority`, `metadata.<key>`, `gold_answer`; the rest are fields."""
    if isinstance(row.get("fields"), dict):  # a nested Parquet schema: already a record
        return {k: v for k, v in row.items() if v is not None}
    record: dict[str, Any] = {"fields": {}, "metadata": {}}
    for key, value in row.items():
        if key is None:
            raise ValidationError({"record": "more values than columns"})
        if key in ("external_id", "id"):
            if value not in (None, ""):
                record["external_id"] = value
        elif key == "priority":
            if value not in (None, ""):
                try:
                    record["priority"] = float(value)
                except (TypeError, ValueError):
                    raise ValidationError({"priority": f"must be a number, not {str(value)[:50]!r}"})
        elif key == "gold_answer":  # the record's known answer (JSON text), read by records_import
            if value not in (None, ""):
                record["gold_answer"] = value
        elif key.startswith("metadata."):
            if value not in (None, ""):
                record["metadata"][key[len("metadata."):]] = value
        elif key == "metadata":
            if isinstance(value, str) and value.strip():
                try:
                    value = orjson.loads(value)
                except orjson.JSONDecodeError:
                    raise ValidationError({"metadata": "the metadata column must hold a JSON object"})
            if isinstance(value, dict):
                record["metadata"].update(value)
        else:
            if key in chat_fields and isinstance(value, str) and value.lstrip().startswith("["):
                try:
                    value = orjson.loads(value)
                except orjson.JSONDecodeError:
                    raise ValidationError({f"fields.{key}": "a chat column must hold a JSON list of messages"})
            if value is not None and value != "":
                record["fields"][key] = value
    return record


def read_csv_rows(stream, *, max_bytes: int) -> Iterator[tuple[int, Any, int | None]]:
    """CSV rows as {column: text} dicts keyed by the header (the header is line 1)."""
    csv.field_size_limit(max(max_bytes * 2, 131072))
    if isinstance(stream, io.RawIOBase):
        stream = io.BufferedReader(stream, READ_CHUNK)
    # bytes that are not UTF-8 become lone surrogates here, so the line holding one is rejected (as an
    # NDJSON line is), never silently turned into U+FFFD
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise ImportFormatError(f"line 1: the CSV header cannot be read: {exc}")
    header = [h.strip() for h in header]
    for column in header:
        if problem := invalid_utf8_problem(column):
            raise ImportFormatError(f"line 1: the CSV header is {problem}")
    if "" in header or len(set(header)) != len(header):
        raise ImportFormatError("line 1: the CSV header needs distinct, non-empty column names")
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, LineError(f"malformed CSV: {exc}"), None
            continue
        line_no = reader.line_num
        if not values or (len(values) == 1 and values[0] == ""):
            continue
        size = sum(len(v) for v in values)
        if len(values) != len(header):
            yield line_no, LineError(f"record: {len(values)} values for {len(header)} columns",
                                     text_clean(",".join(values)[:RAW_KEEP])[0]), size
            continue
        bad = next(((column, problem) for column, value in zip(header, values)
                    if (problem := invalid_utf8_problem(value))), None)
        if bad is not None:
            yield line_no, LineError(f"column {bad[0]}: {bad[1]}", text_clean(",".join(values)[:RAW_KEEP])[0]), size
            continue
        yield line_no, dict(zip(header, values)), size


def read_csv(stream, *, max_bytes: int, chat_fields: set[str] = frozenset()) -> Iterator[tuple[int, Any, int | None]]:
    for line_no, row, size in read_csv_rows(stream, max_bytes=max_bytes):
        if isinstance(row, LineError):
            yield line_no, row, size
            continue
        try:
            yield line_no, _flat_row_to_record(row, chat_fields), size
        except ValidationError as exc:
            yield line_no, LineError(validation_message(exc), ",".join(str(v) for v in row.values())[:RAW_KEEP]), size


PARQUET_BUFFER = 1 << 20


def read_parquet_rows(source, *, batch_rows: int = 2_000) -> Iterator[tuple[int, Any, int | None]]:
    """Parquet rows as dicts, one record batch at a time; nested columns (lists of structs such as
    message lists) come back as lists of dicts. Column chunks are read through a 1 MiB buffer, page
    by page (buffer_size, no pre-buffering): by default pyarrow reads a row group's whole column
    chunks first, and a file written as one big row group (pyarrow's default is a million rows)
    then costs more memory than its size (635 MB for a 441 MB file of 300k pairs; 198 MB buffered)."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(source, buffer_size=PARQUET_BUFFER, pre_buffer=False)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise ImportFormatError(f"not a readable Parquet file: {exc}")
    line_no = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        for row in batch.to_pylist():
            line_no += 1
            yield line_no, row, None


def read_parquet(source, *, max_bytes: int, chat_fields: set[str] = frozenset(),
                 batch_rows: int = 2_000) -> Iterator[tuple[int, Any, int | None]]:
    for line_no, row, size in read_parquet_rows(source, batch_rows=batch_rows):
        try:
            yield line_no, _flat_row_to_record(row, chat_fields), size
        except ValidationError as exc:
            yield line_no, LineError(validation_message(exc)), size


def rows_read(*, stream, fmt: str, max_bytes: int):
    """The file's rows as they are (dicts of column -> value), for the pair formats (imports.formats)."""
    if fmt == "ndjson":
        return read_ndjson(stream, max_bytes=max_bytes)
    if fmt == "json":
        return read_json_array(stream, max_bytes=max_bytes)
    if fmt == "csv":
        return read_csv_rows(stream, max_bytes=max_bytes)
    if fmt == "parquet":
        return read_parquet_rows(seekable_of(stream))
    raise ValidationError({"filetype": f"must be one of {', '.join(FORMATS)}"})


class _Prepended(io.RawIOBase):
    """A binary stream with bytes already read from it put back in front."""

    def __init__(self, head: bytes, stream):
        super().__init__()
        self.head = head
        self.stream = stream

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n is None or n < 0:
                data, self.head = self.head + self.stream.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.stream.read(n)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def seekable_of(stream):
    """Parquet keeps its index at the end of the file: a stream that cannot seek (a request body)
    is copied to a temp file on disk, 64 KiB at a time."""
    if getattr(stream, "seekable", lambda: False)():
        return stream
    tmp = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller; closed when dropped
    while chunk := stream.read(READ_CHUNK):
        tmp.write(chunk)
    tmp.seek(0)
    return tmp


def file_type_sniff(stream, *, hint: str | None = None):
    """(file type, stream) of an upload: Parquet by its magic bytes, a JSON array by its opening
    bracket, JSON lines by an opening brace, CSV otherwise. `hint` (from a name or a
    Content-Type) wins for CSV and Parquet; ".json" files are often JSON lines, so JSON is sniffed."""
    if hint in ("csv", "parquet"):
        return hint, stream
    seekable = getattr(stream, "seekable", lambda: False)()
    start = stream.tell() if seekable else 0
    head = stream.read(READ_CHUNK)
    if head.startswith(b"PAR1"):
        fmt = "parquet"
    else:
        first = head.lstrip(b" \t\r\n").removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")[:1]
        fmt = "json" if first == b"[" else "ndjson" if first in (b"{", b"") else "csv"
    if seekable:
        stream.seek(start)
        return fmt, stream
    return fmt, _Prepended(head, stream)


def records_read(*, stream, fmt: str, max_bytes: int, chat_fields: set[str] = frozenset()):
    if fmt == "ndjson":
        return read_ndjson(stream, max_bytes=max_bytes)
    if fmt == "json":
        return read_json_array(stream, max_bytes=max_bytes)
    if fmt == "csv":
        return read_csv(stream, max_bytes=max_bytes, chat_fields=chat_fields)
    if fmt == "parquet":
        return read_parquet(stream, max_bytes=max_bytes, chat_fields=chat_fields)
    raise ValidationError({"format": f"must be one of {', '.join(FORMATS)}"})


def format_from_name(name: str) -> str | None:
    lower = name.lower()
    for suffix, fmt in ((".jsonl", "ndjson"), (".ndjson", "ndjson"), (".json", "json"), (".csv", "csv"),
                        (".parquet", "parquet"), (".pq", "parquet")):
        if lower.endswith(suffix):
            return fmt
    return None
