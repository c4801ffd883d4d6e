"""Agreement between annotators (and judges) on ranking and comparison questions.

One package for every agreement figure preflab shows, so the dashboard, the agreement page, the
leaderboards and the export read answers and count agreement the same way:

* `rankings`  stored answers -> rankings (`ranks_from_value`, the one reader of answers), rankings
              -> verdicts on pairs of fields (FIRST / SECOND / TIE);
* `pairwise`  agreement between annotators over whole rankings, Krippendorff's alpha over ranks
              (ordinal), the records they disagree on — what the dashboard shows;
* `majority`  verdicts against a majority: leave-one-out, a judge vs the annotators, Krippendorff's
              alpha over pair verdicts (nominal, a tie a category of its own);
* `position`  position bias;
* `report`    all of them for one table of annotations;
* `datasets`  the two selectors that read a dataset: `dataset_quality` (dashboard) and
              `dataset_agreement` (agreement page and API).

Vocabulary
----------
* A **ranking** is a mapping field name -> rank (1 = best; equal ranks are a tie).
* A **unit** is one pair of fields of one record: `(record, (a, b))` with `a` before `b` in the
  question's field order. A record with N ranked responses has N*(N-1)/2 units; a pairwise dataset
  has exactly one unit per record, so for pairwise data every figure is "per record".
* A **label** is an annotator's verdict on a unit: `FIRST` (a better), `SECOND` (b better) or
  `TIE` (equal ranks). Labels are nominal: two annotators agree on a unit only when their labels
  are equal (tie = tie agrees; tie vs a preference disagrees).

Tie rules (explicit, the same everywhere)
----------------------------------------
* **Majority** of a set of labels = the most frequent label. When two or more labels share the top
  count (e.g. one annotator says FIRST and one SECOND, or FIRST/SECOND/TIE once each) there is no
  majority: the majority is *tied* (`None`).
* Agreement with a majority (leave-one-out, judge vs humans) scores 1 when the label equals the
  majority, 0 when it differs, and **0.5 when the majority is tied** — the expected score of
  breaking the tie at random, as a coin flip would. Such cases are counted (`tied`) in every result,
  so they can be judged separately. This is the default `scoring_rule`, "preflab".
* AlpacaEval's rules are offered by its names, `scoring_rule="zero_one"` and `"absolute"` (majority.py):
  a tied majority is broken deterministically as AlpacaEval breaks it, and under "absolute" (AlpacaEval's
  default) a tie against a preference scores 0.5.
* The human leave-one-out figure holds out humans only and forms majorities of humans only (simulated
  annotators are flagged members: they get their own rows, never the human figure). A judge's agreement
  with the majority carries a Wilson 95% interval (rates.wilson_interval).
* Position bias only looks at responses whose best rank is held by exactly one field; a response
  with a tie at the top is not a "choice" of a position and is left out (counted as `ties`).
"""
from .datasets import AnnotatorStats, DatasetQuality, dataset_agreement, dataset_quality
from .majority import (
    DEFAULT_SCORING_RULE,
    SCORING_RULES,
    LeaveOneOut,
    agreement_score,
    agreement_with_majority,
    break_tied_majority,
    krippendorff_alpha,
    leave_one_out_agreement,
    majority_label,
)
from .pairwise import (
    AgreementAccumulator,
    PairAgreement,
    PairwiseAgreement,
    RecordDisagreement,
    annotator_pairs,
    krippendorff_alpha_ordinal,
    overall_agreement,
    pairwise_agreement,
    pairwise_summary,
    ranking_agreement,
    record_disagreements,
)
from .position import PositionBias, position_bias, position_bias_add
from .rankings import (
    FIRST,
    LABEL_NAMES,
    SECOND,
    TIE,
    PairVote,
    Triple,
    Unit,
    both_bad_by_majority,
    field_pairs,
    pair_label,
    pair_vote_from_value,
    ranks_from_value,
    unit_labels,
)
from .rates import Rate, median, wilson_interval
from .report import AgreementReport, AnnotationRow, agreement_report, units_from_rows

__all__ = [
    "DEFAULT_SCORING_RULE",
    "FIRST",
    "LABEL_NAMES",
    "SCORING_RULES",
    "SECOND",
    "TIE",
    "AgreementAccumulator",
    "AgreementReport",
    "AnnotationRow",
    "AnnotatorStats",
    "DatasetQuality",
    "LeaveOneOut",
    "PairAgreement",
    "PairVote",
    "PairwiseAgreement",
    "PositionBias",
    "Rate",
    "RecordDisagreement",
    "Triple",
    "Unit",
    "agreement_report",
    "agreement_score",
    "agreement_with_majority",
    "annotator_pairs",
    "both_bad_by_majority",
    "break_tied_majority",
    "dataset_agreement",
    "dataset_quality",
    "field_pairs",
    "krippendorff_alpha",
    "krippendorff_alpha_ordinal",
    "leave_one_out_agreement",
    "majority_label",
    "median",
    "overall_agreement",
    "pair_label",
    "pair_vote_from_value",
    "pairwise_agreement",
    "pairwise_summary",
    "position_bias",
    "position_bias_add",
    "ranking_agreement",
    "ranks_from_value",
    "record_disagreements",
    "unit_labels",
    "units_from_rows",
    "wilson_interval",
]
