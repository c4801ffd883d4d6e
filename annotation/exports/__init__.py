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
  agreement = winning votes / submitted responses of the record;
  the resolved order of the fields is their Copeland score (pairs won minus pairs lost);
- mean_rank: mean rank per field (lower is better);
  agreement = share of annotators whose own ranking puts the pair in the resolved order;
- weighted: each pair's winner is the competence-weighted vote of the record's voters: every vote counts
  with the log-odds of its annotator (or judge) being right, under the one-coin Dawid-Skene model fitted
  on the whole dataset's answers and its judges' suggestions before the first row is written
  (annotation.agreement.competence); agreement = that vote's probability (the "weighted agreement");
  the order of the fields is their Copeland score over the weighted winners;
- pairs without a strict winner are left out unless include_ties (then every margin is 0, `tie` is
  true, chosen and rejected in field order, agreement = share of annotators who ranked the pair as a tie).
Margins: no column is named `margin` unless asked for, because TRL's RewardTrainer reads a column of
that name into its loss (-logsigmoid(r_chosen - r_rejected - margin)). Each margin column has one meaning:
  vote_margin     = (winning votes - losing votes) / voters;
  rank_margin     = mean rank of the rejected field - mean rank of the chosen one;
  strength_margin = a graded preference's strength, signed (+ when the annotator agrees with the
                    resolved winner, - when not, 0 for a tie) and averaged over annotators (human rows);
  judge_margin    = the same over the judges' suggestion scores, when every judge gave one (suggestion rows).
trl_margin=<one of them> adds TRL's `margin` column, a copy of that one (rows where it is empty are left out).
min_margin reads the resolution's own margin: vote_margin under majority, rank_margin under mean_rank,
strength_margin with margin_from=strength, judge_margin for suggestions (rank_margin when a judge gave no score).
Gold records are left out unless include_gold; the answers of annotators excluded on the dataset
(annotation.quality.standing.excluded_user_ids: excluded by an admin or, with the dataset's toggle, no
longer members) are left out unless include_excluded; nothing is deleted, so both are reversible.
Reviews (reviews=use, the default; source human or both): a record with a reviewer's verdict (decision
accepted or own; sent_back is ignored) gives its pairs from that verdict as if it were the record's only
answer (annotators 1, agreement 1, its own margins; a verdict calling both responses bad leaves the record
out unless include_both_bad), with reviewed=true and reviewed_by=<username>; every other row has
reviewed=false, reviewed_by=null. reviews=ignore resolves the votes as before. The votes are never changed.
Suggestions (source=suggestions) are votes too, one per agent; the `ratings`
column carries per-field ratings found in the suggestions' raw output ({"ratings": {field: n}}).
source=both uses the humans where a record has a submitted response, its suggestions otherwise.
Pairs: best_worst = the single best vs the single worst field (left out when several tie for
either end, unless include_ties); all = every pair with a strict winner; best_vs_rest = the best
field vs each other one. min_margin drops rows whose margin (the one it reads, above) is below it.
Graded preferences (a preference question: {"preferred": field, "strength": s, "both_bad": bool}):
each answer with a preferred field is one vote as above; strength_margin is the mean over the record's
votes of the strength, signed, so one annotator's "much better" = 3 gives strength_margin 3. An answer calling both responses
bad still votes when it also prefers one; a record most of whose answers call both bad
(rankings.both_bad_by_majority) is left out unless include_both_bad.
"""
from .kinds import (
    EXPORT_KINDS,
    export_chunks,
    export_columns,
    export_count,
    export_kind_file_name,
    export_kind_parse,
    export_rows,
    export_schema,
    export_write,
)
from .parameters import (
    BASE_COLUMNS,
    CONTENT_TYPES,
    EXTENSIONS,
    FORMATS,
    MARGIN_COLUMNS,
    MARGIN_FROM,
    PAIRS,
    RESOLVE,
    REVIEW_COLUMNS,
    REVIEWS,
    SOURCES,
    STYLES,
    TRL_MARGIN,
    Target,
    columns_for,
    export_file_name,
    export_params_parse,
    export_target,
    file_name_part,
)
from .reading import prefetch_possible
from .resolution import PairResult, resolve_pairs
from .responses import RESPONSE_STATUSES, RESPONSES_COLUMNS, responses_export
from .triplets import triplets_export, triplets_export_count
from .unpaired import UNPAIRED_COLUMNS, unpaired_export, unpaired_rows
from .writers import (
    csv_chunks,
    jsonl_chunks,
    parquet_chunks,
    parquet_schema,
    parquet_write,
    triplets_chunks,
)

__all__ = [
    "EXPORT_KINDS", "MARGIN_COLUMNS", "RESPONSE_STATUSES", "RESPONSES_COLUMNS", "TRL_MARGIN", "UNPAIRED_COLUMNS",
    "export_chunks", "export_columns", "export_count", "export_kind_file_name", "export_kind_parse", "export_rows",
    "export_schema", "export_write", "responses_export", "unpaired_export", "unpaired_rows",
    "BASE_COLUMNS", "CONTENT_TYPES", "EXTENSIONS", "FORMATS", "MARGIN_FROM", "PAIRS", "RESOLVE", "REVIEWS",
    "REVIEW_COLUMNS", "SOURCES", "STYLES",
    "PairResult", "Target",
    "columns_for", "csv_chunks", "export_file_name", "export_params_parse", "export_target", "jsonl_chunks",
    "parquet_chunks",
    "parquet_schema", "parquet_write", "prefetch_possible", "resolve_pairs", "triplets_chunks", "triplets_export",
    "triplets_export_count", "file_name_part",
]
