"""Streaming import of records (JSON array, NDJSON, CSV, Parquet) and of existing preference pairs.

`records_import` reads items with a reader of `readers`, validates each one
(`validation.record_validate`), upserts the valid ones in batches (atomic per batch, keyed on
external_id so re-sending updates and never duplicates) and reports every rejected line. By concern:

* `readers`   NDJSON, JSON array, CSV and Parquet, streamed; `(line, raw, size)` items;
* `records`   the import: validation, batches, the pipelined writer thread, uploaded files;
* `postgres`  one batch written with COPY on PostgreSQL (services.records_upsert elsewhere);
* `formats`   the public preference formats (orca, UltraFeedback, CLAIR, Argilla, AlpacaFarm, TRL):
              one adapter per format, told from the columns;
* `pairs`     existing preference pairs as blind pairwise records (multi-turn prompts kept whole);
* `report`    the report, rejected lines, and the errors that stop an import.
"""
from .formats import MAP_TARGETS, PAIR_FORMAT_NAMES, PAIR_FORMATS, Pair, format_detect, mapping_parse
from .pairs import (
    PAIR_FIELDS,
    PairSource,
    chosen_position,
    pair_to_record,
    pairs_dataset_check,
    pairs_dataset_create,
    pairs_import,
    pairs_preview,
)
from .postgres import records_batch_upsert
from .readers import (
    FORMATS,
    CountingStream,
    file_type_sniff,
    format_from_name,
    iter_lines,
    read_csv,
    read_json_array,
    read_ndjson,
    read_parquet,
    records_read,
    rows_read,
)
from .records import ProgressFn, import_file_save, pipeline_possible, record_clean, records_import
from .report import MAX_REJECTED_KEPT, ImportFormatError, ImportReport, LineError, UploadTooLarge

__all__ = [
    "MAP_TARGETS", "PAIR_FORMATS", "PAIR_FORMAT_NAMES", "Pair", "PairSource", "file_type_sniff", "format_detect",
    "mapping_parse", "pairs_preview", "rows_read",
    "FORMATS", "MAX_REJECTED_KEPT", "PAIR_FIELDS", "CountingStream", "ImportFormatError", "ImportReport",
    "LineError", "ProgressFn", "UploadTooLarge", "chosen_position", "format_from_name", "import_file_save",
    "iter_lines", "pair_to_record", "pairs_dataset_check", "pairs_dataset_create", "pairs_import",
    "pipeline_possible", "read_csv", "read_json_array", "read_ndjson", "read_parquet", "record_clean",
    "records_batch_upsert", "records_import", "records_read",
]
