"""A dataset's quality settings: their names, what each does (the settings page and the API say it
in these words) and their validation (services.dataset_create / dataset_update call it)."""
from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import ValidationError

QUALITY_SETTINGS = ("gold_rate", "gold_pause_accuracy", "gold_pause_min_answers", "too_fast_seconds",
                    "exclude_removed_annotators", "suggestion_share")

PAUSE_MIN_ANSWERS_MAX = 1000
TOO_FAST_MAX_SECONDS = 86_400

QUALITY_HELP = {
    "gold_rate": "Share of the records handed to each annotator that are gold records (0 to 1; 0.05 is one in 20, "
                 "0 serves none). Gold records go to every annotator, whatever the overlap, and never count toward "
                 "it or toward completion.",
    "gold_pause_accuracy": "Pause an annotator whose accuracy on gold falls below this share (0 to 1, e.g. 0.7). "
                           "Empty: the policy is off. A paused annotator gets no more records and is told why; "
                           "nothing they did is lost, and an admin can let them continue.",
    "gold_pause_min_answers": f"Gold answers an annotator must have given before the pause policy judges them "
                              f"(1 to {PAUSE_MIN_ANSWERS_MAX}).",
    "too_fast_seconds": "Flag an answer given in less than this many seconds as too fast (0: no flag).",
    "exclude_removed_annotators": "Leave out of exports the answers of annotators who are no longer members of the "
                                  "workspace (annotators excluded on this dataset are always left out). Reversible: "
                                  "nothing is deleted.",
    "suggestion_share": "With judge suggestions shown, the share of (annotator, record) assignments that see them "
                        "(0 to 1; 1: all). Below 1 the dashboard compares answers given with and without them.",
}


def _number(values: dict, name: str, *, low: float, high: float, what: str) -> None:
    value = values[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ValidationError({name: what})
    values[name] = float(value)


def quality_settings_validate(values: dict[str, Any]) -> None:
    """Check (and normalise in place) the quality settings present in `values`; a ValidationError
    names the first bad one and says what it takes."""
    if "gold_rate" in values:
        _number(values, "gold_rate", low=0, high=1, what="a share from 0 to 1 (0.05: one record in 20 is gold; 0: none)")
    if "gold_pause_accuracy" in values and values["gold_pause_accuracy"] is not None:
        _number(values, "gold_pause_accuracy", low=0, high=1,
                what="a share from 0 to 1 (e.g. 0.7), or empty (null) to switch the pause policy off")
    if "gold_pause_min_answers" in values:
        n = values["gold_pause_min_answers"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= PAUSE_MIN_ANSWERS_MAX:
            raise ValidationError({"gold_pause_min_answers": f"an integer from 1 to {PAUSE_MIN_ANSWERS_MAX}"})
    if "too_fast_seconds" in values:
        _number(values, "too_fast_seconds", low=0, high=TOO_FAST_MAX_SECONDS,
                what=f"a number of seconds from 0 (no flag) to {TOO_FAST_MAX_SECONDS}")
    if "exclude_removed_annotators" in values and not isinstance(values["exclude_removed_annotators"], bool):
        raise ValidationError({"exclude_removed_annotators": "must be true or false"})
    if "suggestion_share" in values:
        _number(values, "suggestion_share", low=0, high=1, what="a share from 0 to 1 (1: every assignment sees them)")
