"""Reading uploaded AlpacaEval annotation files over the API: JSON bodies, gzip, large files.

A POST body may be the JSON itself (``Content-Type: application/json``), gzip-compressed (``Content-Encoding: gzip``,
or a body starting with gzip's magic bytes, e.g. ``Content-Type: application/gzip``), or a multipart form whose
``annotations`` file (and optional ``instruction_difficulty`` / ``gamed_annotations`` files) may be ``.gz``.
AlpacaEval 2's annotations of six models are ~24 MB; the decompressed size of one upload is limited by
``PREFLAB_EVAL_UPLOAD_MAX_BYTES`` (default 512 MB), read in chunks; the body is not limited by Django's
DATA_UPLOAD_MAX_MEMORY_SIZE (that applies to form fields, not to these parsers). Every failure is a JSON 4xx naming
the reason: a malformed gzip stream or invalid JSON is a 400, a body over the limit a 413.
"""
from __future__ import annotations

import json
import zlib
from typing import Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser, MultiPartParser

from annotation.text import input_text_check

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20


class UploadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "the upload is too large"
    default_code = "too_large"


def upload_limit() -> int:
    return int(getattr(settings, "PREFLAB_EVAL_UPLOAD_MAX_BYTES", 512 * 1024**2))


def read_upload(stream, *, gzipped: bool | None = None, what: str = "the request body") -> bytes:
    """All bytes of `stream`, gunzipped when `gzipped` (None: when it starts with gzip's magic bytes), at most
    upload_limit() bytes after decompression."""
    limit = upload_limit()
    first = stream.read(CHUNK) or b""
    if gzipped is None:
        gzipped = first[:2] == GZIP_MAGIC
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    parts, size, chunk = [], 0, first
    while chunk:
        try:
            data = inflater.decompress(chunk, limit + 1 - size) if inflater else chunk
        except zlib.error as exc:
            raise exceptions.ParseError(f"{what}: not a valid gzip stream ({exc})") from None
        size += len(data)
        if size > limit:
            raise UploadTooLarge(f"{what} is over the limit of {limit} bytes after decompression "
                                 "(PREFLAB_EVAL_UPLOAD_MAX_BYTES)")
        parts.append(data)
        chunk = stream.read(CHUNK)
    if inflater is not None and not inflater.eof:
        raise exceptions.ParseError(f"{what}: not a valid gzip stream (truncated)")
    return b"".join(parts)


def parse_json(raw: bytes, *, what: str = "the request body") -> Any:
    """JSON, or JSON Lines (one object per line) as a list; a 400 naming the line otherwise."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise exceptions.ParseError(f"{what}: not UTF-8 text (byte {exc.start})") from None
    stripped = text.strip()
    if not stripped:
        raise exceptions.ParseError(f"{what} is empty")
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        if stripped[0] == "{" and exc.msg == "Extra data":
            return _json_lines(stripped, what)
        raise exceptions.ParseError(f"{what}: not valid JSON: {exc.msg} at line {exc.lineno} "
                                    f"column {exc.colno}") from None


def _json_lines(text: str, what: str) -> list:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise exceptions.ParseError(f"{what}: line {number}: not valid JSON ({exc.msg})") from None
    return items


class AlpacaEvalJSONParser(BaseParser):
    """JSON (or JSON Lines), plain or gzip-compressed (Content-Encoding: gzip, or gzip's magic bytes)."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        if stream is None:
            raise exceptions.ParseError("the request body is empty")
        request = (parser_context or {}).get("request")
        encoding = (request.META.get("HTTP_CONTENT_ENCODING", "") if request is not None else "").lower().strip()
        if encoding not in ("", "identity", "gzip"):
            raise exceptions.UnsupportedMediaType(f"Content-Encoding {encoding}", detail=(
                f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding"))
        return parse_json(read_upload(stream, gzipped=True if encoding == "gzip" else None))


UPLOAD_PARSERS = [MultiPartParser, AlpacaEvalJSONParser]
FILE_FIELDS = ("annotations", "instruction_difficulty", "gamed_annotations")


def uploaded_input(request) -> Any:
    """The request's input: the parsed JSON body, or for a multipart form its fields with every uploaded file of
    FILE_FIELDS read (gunzipped if .gz or gzip-compressed) and parsed (a difficulty file may be CSV: kept as text)."""
    data = request.data
    if not request.FILES:
        input_text_check(data)
        return data
    out = {k: v for k, v in data.items() if k not in request.FILES}
    for name, upload in request.FILES.items():
        if name not in FILE_FIELDS:
            raise exceptions.ValidationError({name: ["unknown file field; expected one of " + ", ".join(FILE_FIELDS)]})
        raw = read_upload(upload, gzipped=True if upload.name.endswith(".gz") else None, what=f"file {name!r}")
        if name == "instruction_difficulty":
            out[name] = raw.decode("utf-8-sig", errors="replace")
        else:
            out[name] = parse_json(raw, what=f"file {name!r}")
    input_text_check(out)
    return out
