"""Benchmark: what the text rule (annotation/text.py) costs where it runs on every input.

    .venv/bin/python bench/bench_text_rule.py

No database. Prints rows/s of the CSV and JSON-array import readers (which now reject bytes that are not
UTF-8 line by line), the time of the check of an API response body beside the time of parsing it, and
the time of cleaning a model answer that needs no cleaning (the usual case).
"""
import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "preflab.settings")
import django

django.setup()

import orjson  # noqa: E402

from annotation.imports.readers import read_csv, read_json_array  # noqa: E402
from annotation.text import input_text_check, text_clean  # noqa: E402

N = 100_000


def per_call_us(fn, n: int = 100_000) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    rows = [b"external_id,prompt,response-1,response-2"] + [
        f"r{i},Explain topic {i} in detail please,{'answer A ' * 40},{'answer B ' * 40}".encode() for i in range(N)]
    body = b"\n".join(rows) + b"\n"
    started = time.perf_counter()
    count = sum(1 for _ in read_csv(io.BytesIO(body), max_bytes=100_000))
    print(f"read_csv:        {count} rows of {len(body) // N} B: {count / (time.perf_counter() - started):,.0f} rows/s")
    array = orjson.dumps([{"external_id": f"r{i}", "fields": {"prompt": f"Explain {i}", "response-1": "answer A " * 40,
                                                              "response-2": "answer B " * 40}} for i in range(N)])
    started = time.perf_counter()
    count = sum(1 for _ in read_json_array(io.BytesIO(array), max_bytes=100_000))
    print(f"read_json_array: {count} elements: {count / (time.perf_counter() - started):,.0f} elements/s")
    response = {"values": {"ranking": [{"value": "response-1", "rank": 1}, {"value": "response-2", "rank": 2}],
                           "notes": "fine " * 200}, "status": "submitted"}
    raw = json.dumps(response)
    print(f"input_text_check of a response body: {per_call_us(lambda: input_text_check(response)):.1f} us "
          f"(json.loads of it: {per_call_us(lambda: json.loads(raw)):.1f} us)")
    answer = "a model answer " * 300
    print(f"text_clean of a {len(answer)} character answer needing nothing: {per_call_us(lambda: text_clean(answer)):.2f} us")


if __name__ == "__main__":
    main()
