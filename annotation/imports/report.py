"""What an import reports: counts, rejected lines with their reasons, and the errors that stop it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ..text import text_clean

# How many rejected lines an ImportReport keeps in memory; the rest are only counted.
MAX_REJECTED_KEPT = 10_000
RAW_KEEP = 2_000  # characters of a rejected line kept for the report / JobError.raw


class ImportFormatError(Exception):
    """The input cannot be read at all (e.g. a JSON body that is not an array): a 400."""


class UploadTooLarge(Exception):
    """The stream went over settings.PREFLAB_MAX_UPLOAD_BYTES (chunked uploads have no Content-Length)."""


@dataclass
class LineError:
    reason: str
    raw: str = ""


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    rejected: list[dict] = field(default_factory=list)
    rejected_count: int = 0
    total_lines: int = 0
    extra: dict = field(default_factory=dict)  # what a format brings beside records (Argilla: responses, ...)
    warnings: list[str] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return self.created + self.updated

    def nothing_stored_message(self) -> str:
        if self.total_lines == 0:
            return "nothing stored: the file holds no lines"
        return f"nothing stored: all {self.rejected_count} of {self.total_lines} lines were rejected"

    def reject(self, line: int, reason: str, raw: str = "") -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REJECTED_KEPT:
            self.rejected.append({"line": line, "reason": reason})

    @property
    def rejected_not_listed(self) -> int:
        return self.rejected_count - len(self.rejected)

    def as_dict(self) -> dict:
        out = {"created": self.created, "updated": self.updated, "rejected": self.rejected,
               "rejected_count": self.rejected_count, "total_lines": self.total_lines, **self.extra}
        if self.warnings:
            out["warnings"] = self.warnings
        if self.rejected_not_listed:
            out["rejected_not_listed"] = self.rejected_not_listed
            out["note"] = (f"only the first {MAX_REJECTED_KEPT} rejected lines are listed; "
                           f"{self.rejected_not_listed} more were rejected")
        return out


def raw_text(raw: Any) -> str:
    """A rejected item as the text kept of it (RAW_KEEP characters)."""
    try:
        return orjson.dumps(raw)[:RAW_KEEP].decode("utf-8", "replace")
    except TypeError:  # e.g. a lone surrogate, which orjson refuses: kept cleaned, as the report is stored
        return text_clean(str(raw)[:RAW_KEEP])[0]
