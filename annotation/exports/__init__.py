"""Streamed export of preference triplets (prompt, chosen, rejected) for reward models and DPO.

`triplets_export` walks a dataset's records in id order, a chunk at a time, fetches the chunk's
submitted responses (and suggestions when asked) in one query each, resolves each record's ranking
across annotators and yields row dicts. Nothing is loaded per dataset and nothing is queried per
row. The package, by concern:

* `parameters`  the export's options, checked, and its target (question and ranked fields);
* `reading`     records, answers and texts from the database, chunk by chunk (prefetched on
                PostgreSQL);
* `resolution`  one record's answers -> preference pairs (the rules below);
* `triplets`    the export itself: resolved records -> row dicts;
* `writers`     rows -> JSONL, CSV or Parquet byte chunks (the API, the CLI and the "export" job
                all use them).

Resolution rules (per record, per pair of ranked fields):
- every submitted response gives one vote per pair: the field with the lower rank wins, equal
  ranks are a tie vote; discarded and draft responses never count;
- majority: the pair's winner has strictly more votes than the other side;
  agreement = winning votes / submitted responses of the record,
  margin = (winning votes - losing votes) / submitted responses;
  the resolved order of the fields is their Copeland score (pairs won minus pairs lost);
- mean_rank: mean rank per field (lower is better); margin = difference of the mean ranks;
  agreement = share of annotators whose own ranking puts the pair in the resolved order;
- pairs without a strict winner are left out unless include_ties (then margin 0, chosen and
  rejected in field order, agreement = share of annotators who ranked the pair as a tie).
Suggestions (source=suggestions) are votes too, one per agent; their margin is the mean over
agents of the agent's score (signed: + when the agent agrees with the resolved winner, - when
not, 0 for a tie) when every agent gave a score, else the mean rank difference; the `ratings`
column carries per-field ratings found in the suggestions' raw output ({"ratings": {field: n}}).
source=both uses the humans where a record has a submitted response, its suggestions otherwise.
Pairs: best_worst = the single best vs the single worst field (left out when several tie for
either end, unless include_ties); all = every pair with a strict winner; best_vs_rest = the best
field vs each other one. min_margin drops rows whose margin is below it.
Graded preferences (a preference question: {"preferred": field, "strength": s, "both_bad": bool}):
each answer with a preferred field is one vote as above; margin_from=strength sets margin to the mean
over the record's votes of the strength, signed (+ when the vote agrees with the resolved winner,
- when not), so one annotator's "much better" = 3 gives margin 3. An answer calling both responses
bad still votes when it also prefers one; a record most of whose answers call both bad
(rankings.both_bad_by_majority) is left out unless include_both_bad.
"""
from .parameters import (
    BASE_COLUMNS,
    CONTENT_TYPES,
    EXTENSIONS,
    FORMATS,
    MARGIN_FROM,
    PAIRS,
    RESOLVE,
    SOURCES,
    STYLES,
    Target,
    columns_for,
    export_file_name,
    export_params_parse,
    export_target,
    file_name_part,
)
from .reading import prefetch_possible
from .resolution import PairResult, resolve_pairs
from .triplets import triplets_export, triplets_export_count
from .writers import (
    csv_chunks,
    jsonl_chunks,
    parquet_chunks,
    parquet_schema,
    parquet_write,
    triplets_chunks,
    triplets_write,
)

__all__ = [
    "BASE_COLUMNS", "CONTENT_TYPES", "EXTENSIONS", "FORMATS", "MARGIN_FROM", "PAIRS", "RESOLVE", "SOURCES", "STYLES",
    "PairResult", "Target",
    "columns_for", "csv_chunks", "export_file_name", "export_params_parse", "export_target", "jsonl_chunks",
    "parquet_chunks",
    "parquet_schema", "parquet_write", "prefetch_possible", "resolve_pairs", "triplets_chunks", "triplets_export",
    "triplets_export_count", "triplets_write", "file_name_part",
]
