"""The client. Every call raises PreflabError (status, reason, and the line for a rejected import
line) when the server says no; nothing is swallowed.

    from preflab_client import Client
    client = Client("http://localhost:8000", token="...")
    ds = client.create_dataset(workspace=1, name="helpfulness", fields=[...], questions=[...])
    client.log(ds, hf_dataset, mapping={"question": "prompt", "answer_a": "response-1", "answer_b": "response-2"})
    dpo = client.triplets(ds)              # a datasets.Dataset (a list of dicts without `datasets`)
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

import httpx

RETRY_STATUSES = {429, 502, 503, 504}
CONTENT_TYPES = {"jsonl": "application/x-ndjson", "json": "application/json", "csv": "text/csv",
                 "parquet": "application/vnd.apache.parquet"}
Records = Any  # a list of dicts, a pandas DataFrame or a datasets.Dataset


class PreflabError(Exception):
    """The server refused: `status` (HTTP status, 0 when it never answered), `reason` (its words),
    `field` (the option or input field it names, if any), `line` (an import line, 1-based over the
    whole call, if any) and `detail` (the response body as sent)."""

    def __init__(self, reason: str, *, status: int = 0, field: str | None = None, line: int | None = None,
                 detail: Any = None):
        self.reason, self.status, self.field, self.line, self.detail = reason, status, field, line, detail
        where = f"line {line}: " if line is not None else ""
        named = f"{field}: " if field else ""
        super().__init__(f"{where}{named}{reason}" + (f" (HTTP {status})" if status else ""))


class RejectedLines(PreflabError):
    """An import stored its valid lines and rejected others: `rejected` is [{line, reason}] (lines
    counted over the whole call), `report` the server's last report, `stored` what was stored."""

    def __init__(self, rejected: list[dict], *, stored: int, report: dict):
        first = rejected[0]
        super().__init__(str(first.get("reason")), status=200, line=first.get("line"), detail=report)
        self.rejected, self.stored, self.report = rejected, stored, report


class Client:
    """preflab's API at `url` with an API token (Token authentication)."""

    def __init__(self, url: str, token: str, *, timeout: float = 60.0, retries: int = 3, backoff: float = 0.5,
                 transport: httpx.BaseTransport | None = None):
        self.retries = retries
        self.backoff = backoff
        self.http = httpx.Client(base_url=url.rstrip("/") + "/api/v1/", timeout=timeout,
                                 headers={"Authorization": f"Token {token}", "Accept": "application/json"},
                                 transport=transport or httpx.HTTPTransport(retries=retries))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- requests -----------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One call, retried with backoff on connection errors and 429/502/503/504 (every call here is
        safe to repeat: imports upsert on external_id). A 4xx/5xx answer raises PreflabError."""
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise PreflabError(f"no answer from the server: {exc}") from exc
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self.retries:
                    _raise_for(response)
                    return response
            time.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def _stream_to(self, path: str, params: dict, sink: IO[bytes]) -> None:
        for attempt in range(self.retries + 1):
            try:
                with self.http.stream("GET", path, params=params) as response:
                    if response.status_code in RETRY_STATUSES and attempt < self.retries:
                        time.sleep(self.backoff * 2 ** attempt)
                        continue
                    if response.status_code >= 400:
                        response.read()
                        _raise_for(response)
                    sink.seek(0)
                    sink.truncate()
                    for chunk in response.iter_bytes():
                        sink.write(chunk)
                    return
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise PreflabError(f"no answer from the server: {exc}") from exc
                time.sleep(self.backoff * 2 ** attempt)

    # --- datasets and records ----------------------------------------------------------------

    def create_dataset(self, *, workspace: int, name: str, fields: list[dict], questions: list[dict],
                       **options: Any) -> dict:
        """POST /datasets/: the dataset as the server describes it (its "id" is what other calls take)."""
        body = {"workspace": workspace, "name": name, "fields": fields, "questions": questions, **options}
        return self._request("POST", "datasets/", json=body).json()

    def log(self, dataset: int | Mapping, records: Records, *, mapping: Mapping[str, str] | None = None,
            batch_size: int = 500, progress: bool = True) -> dict:
        """Import records in batches (POST /datasets/{id}/records/). `records`: dicts, a pandas DataFrame or a
        datasets.Dataset; `mapping` renames columns: {column: "external_id" | "priority" | "metadata.<key>" |
        <field name>}. With a mapping only the columns it names are sent (and "id"/"external_id", "priority",
        "metadata" as a dict); without one every column is a field under its own name. Valid lines are
        stored; rejected ones raise RejectedLines (line numbers over the whole call) at the end."""
        rows = (_record_of(row, mapping) for row in _rows(records))
        return self._import_batches(f"datasets/{_id(dataset)}/records/", rows, total=_length(records),
                                    batch_size=batch_size, progress=progress, params={})

    def import_pairs(self, dataset: int | Mapping, file_or_records: str | os.PathLike | IO[bytes] | Records, *,
                     format: str = "jsonl", mapping: Mapping[str, str] | None = None, seed: str | None = None,
                     batch_size: int = 2000, progress: bool = True) -> dict:
        """Import preference pairs {prompt, chosen, rejected, system?, id?} (POST /datasets/{id}/import-pairs/)
        from a file (path or binary file, sent as it is with the format's content type) or from records
        (dicts, DataFrame, datasets.Dataset; `mapping` renames columns to those keys), sent as JSONL in batches."""
        params = {"seed": seed} if seed is not None else {}
        path = f"datasets/{_id(dataset)}/import-pairs/"
        if isinstance(file_or_records, (str, os.PathLike)) or hasattr(file_or_records, "read"):
            if format not in CONTENT_TYPES:
                raise PreflabError(f"must be one of {', '.join(CONTENT_TYPES)}", field="format")
            own = isinstance(file_or_records, (str, os.PathLike))
            f = open(file_or_records, "rb") if own else file_or_records  # noqa: SIM115 - closed below
            try:
                report = self._request("POST", path, params=params, content=f.read(),
                                       headers={"Content-Type": CONTENT_TYPES[format]}).json()
            finally:
                if own:
                    f.close()
            _raise_rejected(report, offset=0, stored=report.get("created", 0) + report.get("updated", 0))
            return report
        names = dict(mapping or {})
        rows = ({names.get(k, k): v for k, v in row.items()} for row in _rows(file_or_records))
        return self._import_batches(path, rows, total=_length(file_or_records), batch_size=batch_size,
                                    progress=progress, params=params, ndjson=True)

    def _import_batches(self, path: str, rows: Iterable[dict], *, total: int | None, batch_size: int,
                        progress: bool, params: dict, ndjson: bool = False) -> dict:
        totals = {"created": 0, "updated": 0, "rejected_count": 0, "total_lines": 0}
        rejected: list[dict] = []
        bar = _bar(total, progress)
        offset = 0
        report: dict = {}
        try:
            for batch in _batches(rows, batch_size):
                if ndjson:
                    body = b"".join(json.dumps(r, default=_json_default).encode() + b"\n" for r in batch)
                    report = self._request("POST", path, params=params, content=body,
                                           headers={"Content-Type": "application/x-ndjson"}).json()
                else:
                    body = json.dumps(batch, default=_json_default).encode()
                    report = self._request("POST", path, params=params, content=body,
                                           headers={"Content-Type": "application/json"}).json()
                for key in totals:
                    totals[key] += int(report.get(key) or 0)
                rejected += [{**r, "line": (r.get("line") or 0) + offset} for r in report.get("rejected") or []]
                offset += len(batch)
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        if rejected:
            raise RejectedLines(rejected, stored=totals["created"] + totals["updated"], report={**totals, "rejected": rejected})
        return totals

    # --- exports -----------------------------------------------------------------------------

    def triplets(self, dataset: int | Mapping, *, as_list: bool = False, **options: Any):
        """The triplet export (GET /datasets/{id}/triplets/; options as the API's: pairs, resolve, source,
        include_ties, style, min_margin, trl_margin, ...), streamed to a temporary Parquet file: a
        datasets.Dataset with the export's exact types, or a list of dicts without `datasets` (or as_list)."""
        return self._export(f"datasets/{_id(dataset)}/triplets/", options, as_list)

    def unpaired(self, dataset: int | Mapping, *, as_list: bool = False, **options: Any):
        """TRL's unpaired (KTO) rows: prompt, completion, label (GET /datasets/{id}/unpaired/)."""
        return self._export(f"datasets/{_id(dataset)}/unpaired/", options, as_list)

    def responses(self, dataset: int | Mapping, *, status: str | None = None, include_gold: bool | None = None,
                  include_excluded: bool | None = None, as_list: bool = False):
        """Every annotator response, one row each (GET /datasets/{id}/responses-export/); gold records and
        excluded annotators only with include_gold / include_excluded."""
        return self._export(f"datasets/{_id(dataset)}/responses-export/",
                            {"status": status, "include_gold": include_gold, "include_excluded": include_excluded},
                            as_list)

    def leaderboard(self, dataset: int | Mapping, *, reference: str | None = None, source: str | None = None,
                    as_list: bool = False):
        """The dataset's model leaderboard rows (GET /datasets/{id}/leaderboard/)."""
        params = {k: v for k, v in {"reference": reference, "source": source}.items() if v is not None}
        rows = self._request("GET", f"datasets/{_id(dataset)}/leaderboard/", params=params).json()["rows"]
        hf = None if as_list else _datasets()
        return hf.Dataset.from_list(rows) if hf is not None else rows

    def _export(self, path: str, options: dict, as_list: bool):
        params = {k: _param(v) for k, v in options.items() if v is not None}
        hf = None if as_list else _datasets()
        if hf is None:
            params["format"] = "jsonl"
            with tempfile.TemporaryFile() as tmp:
                self._stream_to(path, params, tmp)
                tmp.seek(0)
                return [json.loads(line) for line in io.TextIOWrapper(tmp, encoding="utf-8") if line.strip()]
        params["format"] = "parquet"
        with tempfile.TemporaryDirectory() as directory:
            file = os.path.join(directory, "export.parquet")
            with open(file, "wb") as out:
                self._stream_to(path, params, out)
            return hf.Dataset.from_parquet(file, cache_dir=os.path.join(directory, "cache"), keep_in_memory=True)


# --- helpers -----------------------------------------------------------------------------------

def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = response.text[:500]
    field, reason = None, response.reason_phrase
    if isinstance(body, dict) and body:
        key, value = next(iter(body.items()))
        message = value[0] if isinstance(value, list) and value else value
        if key == "detail":
            reason = str(message)
        else:
            field, reason = key, str(message)
    elif isinstance(body, str) and body:
        reason = body
    raise PreflabError(reason, status=response.status_code, field=field, detail=body)


def _raise_rejected(report: dict, *, offset: int, stored: int) -> None:
    rejected = [{**r, "line": (r.get("line") or 0) + offset} for r in report.get("rejected") or []]
    if rejected:
        raise RejectedLines(rejected, stored=stored, report=report)


def _id(dataset: int | Mapping) -> int:
    return int(dataset["id"]) if isinstance(dataset, Mapping) else int(dataset)


def _param(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _datasets():
    try:
        import datasets
    except ImportError:
        return None
    return datasets


def _rows(records: Records) -> Iterator[dict]:
    if isinstance(records, Mapping):
        raise TypeError("records must be a list of dicts, a pandas DataFrame or a datasets.Dataset, not one dict")
    if hasattr(records, "to_dict") and hasattr(records, "columns"):  # pandas
        for row in records.to_dict(orient="records"):
            yield {k: _plain(v) for k, v in row.items()}
        return
    for row in records:  # a list of dicts, a datasets.Dataset (rows as dicts), any iterable of dicts
        yield dict(row)


def _plain(value: Any) -> Any:
    """numpy/pandas scalars and missing values as JSON values."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, float) and value != value:
        return None
    return value


def _length(records: Records) -> int | None:
    try:
        return len(records)
    except TypeError:
        return None


def _record_of(row: dict, mapping: Mapping[str, str] | None) -> dict:
    record: dict[str, Any] = {"fields": {}}
    metadata: dict[str, Any] = {}
    for key, value in row.items():
        name = (mapping or {}).get(key, key)
        if name in ("external_id", "id"):
            record["external_id"] = None if value is None else str(value)
        elif name == "priority":
            record["priority"] = value
        elif name == "metadata" and isinstance(value, Mapping):
            metadata.update(value)
        elif name.startswith("metadata."):
            metadata[name[len("metadata."):]] = value
        elif mapping is None or key in mapping:
            record["fields"][name] = value
    if metadata:
        record["metadata"] = metadata
    return record


def _batches(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _bar(total: int | None, progress: bool):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="rows")


def _json_default(value: Any) -> Any:
    plain = _plain(value)
    if plain is value:
        if hasattr(value, "tolist"):
            return value.tolist()
        if hasattr(value, "isoformat"):
            return value.isoformat()
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return plain
