"""Leaderboards of the models that wrote the responses, AlpacaEval style.

A **comparison** is one prompt on which a model's output was compared with another model's, with a
preference score in [0, 1] for the second output (1 = the second is better, 0 = the first is better,
0.5 = tie; fractional values are averages over several raters). The leaderboard compares every
model with one **reference** model:

* win rate = 100 x mean of the model's per-comparison scores against the reference (ties count
  one half, fractional scores count as they are);
* standard error = 100 x the standard error of that mean (sample standard deviation / sqrt(n),
  as AlpacaEval reports it; None with fewer than 2 comparisons);
* wins / losses / ties = comparisons scored > 0.5, < 0.5 and exactly 0.5 for the model;
* average length = mean length in characters of the model's outputs in those comparisons;
* length-controlled win rate (optional) — a *simplified* version of AlpacaEval's length-controlled
  GLM: per model a logistic regression of its score on tanh(length difference / its standard
  deviation), fitted on the soft labels by Newton's method with a small ridge penalty, and the win
  rate predicted for a length difference of 0 (100 x sigmoid(intercept)). AlpacaEval's GLM also
  has instruction-difficulty terms and is fitted jointly over models; this one is per model.

Comparisons between two non-reference models are not used. Sources:

* a dataset: the record metadata says which model wrote which field — either
  `{"response-1": {"model": "m", ...}, ...}` (what generation writes) or `{"models": {"response-1": "m"}}`;
  preferences come from submitted responses (`human`, simulated annotators included), from
  suggestions (`suggestions`, the mean over judges when several), or `both` (the responses where a
  record has any, the suggestions otherwise — humans override, as in the triplet export);
* a JSON list of AlpacaEval annotations: `instruction, output_1, output_2, generator_1,
  generator_2, preference` with 1 = output_1 better, 2 = output_2 better, 0 or 1.5 = tie and
  fractional values in [1, 2] allowed; the score of output_2 is preference - 1 (0 means tie: 0.5);
  items with a null preference (a failed annotation) are left out and counted, as AlpacaEval does.
"""
from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

from django.core.exceptions import ValidationError

from .difficulty import difficulty_resolve
from .winrates import alpaca_eval_win_rates

SOURCES = ("human", "suggestions", "both")


@dataclass
class Comparison:
    model_1: str
    model_2: str
    score: float | None  # preference for model_2's output, in [0, 1]; None: an AlpacaEval item without one
    length_1: int = 0
    length_2: int = 0
    key: Any = None  # record id or instruction, for provenance


@dataclass
class LeaderboardRow:
    model: str
    win_rate: float | None
    standard_error: float | None
    n: int
    wins: int
    losses: int
    ties: int
    avg_length: float | None
    discrete_win_rate: float | None = None
    lc_win_rate: float | None = None
    lc_standard_error: float | None = None  # bootstrap over instructions (Leaderboard.lc_se_method)
    lc_ci_low: float | None = None
    lc_ci_high: float | None = None
    is_reference: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Leaderboard:
    reference: str
    rows: list[LeaderboardRow]
    comparisons: int = 0
    skipped: int = 0  # comparisons not involving the reference, or of a model with itself
    source: str = ""
    unannotated: int = 0  # AlpacaEval items with a null preference, left out
    notes: list[str] = field(default_factory=list)
    lc_variant: str | None = None  # e.g. "alpaca_eval_length_controlled_noreg" (length_control.GLMS)
    lc_se_method: str | None = None  # "bootstrap-instructions"
    lc_bootstrap: int = 0
    difficulty_source: str | None = None  # "supplied" | "joint"

    def as_dict(self) -> dict:
        return {"reference": self.reference, "source": self.source, "comparisons": self.comparisons,
                "skipped": self.skipped, "unannotated": self.unannotated, "lc_variant": self.lc_variant,
                "lc_se_method": self.lc_se_method, "lc_bootstrap": self.lc_bootstrap,
                "difficulty_source": self.difficulty_source, "rows": [r.as_dict() for r in self.rows],
                "notes": self.notes}


CSV_COLUMNS = ["model", "win_rate", "standard_error", "discrete_win_rate", "lc_win_rate", "lc_standard_error",
               "lc_variant", "n", "wins", "losses", "ties", "avg_length", "is_reference"]


def _spreadsheet_safe(text: str) -> str:
    """A model name that a spreadsheet would run as a formula (=, +, -, @ first) gets a leading quote."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def leaderboard_csv(board: Leaderboard) -> str:
    """The table as CSV (a leaderboard is opened in spreadsheets: model names are formula-safe)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in board.rows:
        values = {k: ("" if v is None else v) for k, v in row.as_dict().items()}
        values["model"] = _spreadsheet_safe(row.model)
        values["lc_variant"] = board.lc_variant or ""
        writer.writerow(values)
    return out.getvalue()


# --- the computation ------------------------------------------------------------------------------

def _model_scores(comparisons: Iterable[Comparison], reference: str) -> tuple[dict, dict, list, int, int, set]:
    """Per model (not the reference) its comparisons with the reference, turned so `score` is the model's; also
    the reference's self-comparisons, the totals and the models seen."""
    own: dict[str, list[Comparison]] = defaultdict(list)
    ref_lengths: dict[Any, int] = {}
    self_comparisons = total = skipped = 0
    seen: set[str] = set()
    for c in comparisons:
        total += 1
        seen.update((c.model_1, c.model_2))
        if c.model_1 == c.model_2 == reference:
            self_comparisons += 1
            ref_lengths.setdefault(("self", total), c.length_1)
            continue
        if c.model_1 == c.model_2 or reference not in (c.model_1, c.model_2):
            skipped += 1
            continue
        if c.model_2 == reference:
            c = Comparison(model_1=reference, model_2=c.model_1, score=None if c.score is None else 1.0 - c.score,
                           length_1=c.length_2,
                           length_2=c.length_1, key=c.key)
        own[c.model_2].append(c)
        ref_lengths[(c.key, c.model_2, len(own[c.model_2]))] = c.length_1
    return own, ref_lengths, self_comparisons, total, skipped, seen


def _row(model: str, comps: list[Comparison]) -> LeaderboardRow:
    """AlpacaEval's head-to-head figures (winrates.alpaca_eval_win_rates) of one model against the reference."""
    comps = [c for c in comps if c.score is not None]  # kept for the length-controlled fit only
    rates = alpaca_eval_win_rates(1.0 + c.score for c in comps)
    return LeaderboardRow(model=model, win_rate=_round(rates["win_rate"]), standard_error=_round(rates["standard_error"]),
                          discrete_win_rate=_round(rates["discrete_win_rate"]), n=rates["n_total"],
                          wins=rates["n_wins"], losses=rates["n_wins_base"], ties=rates["n_draws"],
                          avg_length=round(sum(c.length_2 for c in comps) / len(comps), 1))


def _reference_row(reference: str, own: dict[str, list[Comparison]], ref_lengths: dict, self_comparisons: int,
                   lc: bool) -> LeaderboardRow:
    """The reference as AlpacaEval lists it: compared with itself, every comparison a tie (50%, SE 0). n is the
    number of its self-comparisons when the data has them, else of the instructions it was compared on."""
    n = self_comparisons or len({c.key for comps in own.values() for c in comps})
    return LeaderboardRow(model=reference, win_rate=50.0, standard_error=0.0, discrete_win_rate=50.0, n=n, wins=0,
                          losses=0, ties=n, avg_length=round(sum(ref_lengths.values()) / len(ref_lengths), 1),
                          lc_win_rate=50.0 if lc else None, lc_standard_error=0.0 if lc else None,
                          is_reference=True)


def _add_length_control(board: Leaderboard, own: dict[str, list[Comparison]], *, reference: str,
                        instruction_difficulty, gamed, bootstrap: int, seed: int) -> None:
    """Fill the rows' length-controlled win rates with AlpacaEval's GLM (length_control.lc_win_rate)."""
    from .length_control import SE_METHOD, lc_win_rate  # numpy/scipy load when a length-controlled board is asked for

    comps = [c for cs in own.values() for c in cs]
    try:
        results = lc_win_rate(comps, reference=reference, instruction_difficulty=instruction_difficulty,
                              gamed_annotations=gamed, bootstrap=bootstrap, seed=seed)
    except (ValueError, KeyError) as exc:
        field_name = "instruction_difficulty" if instruction_difficulty is not None else "length_controlled"
        raise ValidationError({field_name: str(exc).strip("'\"")}) from None
    for row in board.rows:
        result = results.get(row.model)
        if result is None:
            continue
        board.lc_variant, board.difficulty_source = result.variant, result.difficulty_source
        row.lc_win_rate, row.lc_standard_error = _round(result.length_controlled_win_rate), _round(result.se)
        row.lc_ci_low, row.lc_ci_high = _round(result.ci_low), _round(result.ci_high)
        if result.note:
            board.notes.append(f"{row.model}: {result.note}")
    board.lc_se_method, board.lc_bootstrap = SE_METHOD, bootstrap


def leaderboard_compute(comparisons: Iterable[Comparison], *, reference: str, length_controlled: bool = False,
                        source: str = "", instruction_difficulty=None, gamed: Iterable[Comparison] | None = None,
                        bootstrap: int = 200, seed: int = 0) -> Leaderboard:
    """Win rates of every model against `reference` (see the module doc for the definitions)."""
    own, ref_lengths, self_comparisons, total, skipped, seen = _model_scores(comparisons, reference)
    rows = [_row(model, comps) for model, comps in own.items() if any(c.score is not None for c in comps)]
    rows.sort(key=lambda r: (-(r.win_rate if r.win_rate is not None else -1), r.model))
    notes = []
    if reference not in seen:
        notes.append(f"no comparison involves the reference model {reference!r}; models seen: "
                     f"{', '.join(sorted(seen)) or 'none'}")
    board = Leaderboard(reference=reference, rows=rows, comparisons=total, skipped=skipped, source=source, notes=notes)
    if length_controlled and own:
        _add_length_control(board, own, reference=reference, instruction_difficulty=instruction_difficulty,
                            gamed=list(gamed or ()), bootstrap=bootstrap, seed=seed)
    if ref_lengths:
        board.rows.append(_reference_row(reference, own, ref_lengths, self_comparisons, length_controlled))
    return board

def _pct(x: float | None) -> float | None:
    return None if x is None else round(100.0 * x, 4)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


# --- AlpacaEval-format annotations -------------------------------------------------------------------

ALPACA_KEYS = ("instruction", "output_1", "output_2", "generator_1", "generator_2", "preference")


def alpaca_preference_score(preference: Any, *, where: str = "preference") -> float:
    """Score of output_2 from an AlpacaEval preference: 1 -> 0, 2 -> 1, 1.5 or 0 -> 0.5 (tie),
    fractional values in [1, 2] -> preference - 1. Anything else is a ValidationError."""
    if isinstance(preference, bool) or not isinstance(preference, (int, float)) or math.isnan(preference):
        raise ValidationError({where: "must be a number: 1 (output_1 better), 2 (output_2 better), 0 or 1.5 (tie)"})
    if preference == 0:
        return 0.5
    if not 1 <= preference <= 2:
        raise ValidationError({where: f"{preference} is outside [1, 2] (0 also means a tie)"})
    return float(preference) - 1.0


def _well_formed(item: dict) -> bool:
    return (all(isinstance(item.get(k), str) for k in ("instruction", "output_1", "output_2"))
            and all(isinstance(item.get(k), str) and item[k].strip() for k in ("generator_1", "generator_2")))


def alpaca_eval_comparisons(items: Any, *, unannotated: list[int] | None = None,
                            keep_unannotated: bool = False) -> list[Comparison]:
    """Validate a JSON list of AlpacaEval annotations and turn it into comparisons.

    Every bad item is reported at once: ValidationError({"[i].key": reason, ...}). An item whose
    preference is null (AlpacaEval writes null when its annotator failed) is left out, as
    AlpacaEval does, and its index appended to `unannotated` so the caller can report it; with
    `keep_unannotated` it is also returned with score None (AlpacaEval's length-controlled win rate averages its
    predictions over those rows too).
    """
    if not isinstance(items, list):
        raise ValidationError({"annotations": "must be a JSON list of {instruction, output_1, output_2, "
                                              "generator_1, generator_2, preference}"})
    if not items:
        raise ValidationError({"annotations": "the list is empty"})
    errors: dict[str, str] = {}
    out = []
    for i, item in enumerate(items):
        where = f"[{i}]"
        if not isinstance(item, dict):
            errors[where] = "must be an object"
            continue
        if "preference" in item and item["preference"] is None:
            if unannotated is not None:
                unannotated.append(i)
            if keep_unannotated and _well_formed(item):
                out.append(Comparison(model_1=item["generator_1"].strip(), model_2=item["generator_2"].strip(),
                                      score=None, length_1=len(item["output_1"]), length_2=len(item["output_2"]),
                                      key=item["instruction"]))
            continue
        missing = [k for k in ALPACA_KEYS if k not in item or item[k] is None]
        if missing:
            errors[f"{where}.{missing[0]}"] = "required" + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else "")
            continue
        bad = False
        for key in ("generator_1", "generator_2"):
            if not isinstance(item[key], str) or not item[key].strip():
                errors[f"{where}.{key}"] = "must be a non-empty string"
                bad = True
        for key in ("instruction", "output_1", "output_2"):
            if not isinstance(item[key], str):
                errors[f"{where}.{key}"] = "must be a string"
                bad = True
        try:
            score = alpaca_preference_score(item["preference"], where=f"{where}.preference")
        except ValidationError as exc:
            errors.update({k: "; ".join(v) for k, v in exc.message_dict.items()})
            continue
        if bad:
            continue
        out.append(Comparison(model_1=item["generator_1"].strip(), model_2=item["generator_2"].strip(), score=score,
                              length_1=len(item["output_1"]), length_2=len(item["output_2"]),
                              key=item["instruction"]))
        if len(errors) >= 100:
            break
    if errors:
        raise ValidationError(errors)
    if not any(c.score is not None for c in out):
        raise ValidationError({"annotations": "no item has a preference"})
    return out


def _instructions(comparisons: list[Comparison]) -> list:
    return list(dict.fromkeys(c.key for c in comparisons))


def alpaca_eval_leaderboard(items: Any, *, reference: str, length_controlled: bool = False,
                            instruction_difficulty: Any = None, gamed: Any = None, bootstrap: int = 200,
                            seed: int = 0) -> Leaderboard:
    """The leaderboard of AlpacaEval annotations. `instruction_difficulty`: a parsed difficulty file (see
    judging.evaluation.difficulty); `gamed`: AlpacaEval annotations of the reference against length-gamed copies of
    itself (they make the length-controlled variant ``length_controlled_v1``)."""
    unannotated: list[int] = []
    comparisons = alpaca_eval_comparisons(items, unannotated=unannotated, keep_unannotated=length_controlled)
    difficulty = (None if instruction_difficulty is None
                  else difficulty_resolve(instruction_difficulty, instructions=_instructions(comparisons)))
    gamed_comparisons = _gamed_comparisons(gamed)
    board = leaderboard_compute(comparisons, reference=reference, length_controlled=length_controlled,
                                source="alpaca_eval", instruction_difficulty=difficulty, gamed=gamed_comparisons,
                                bootstrap=bootstrap, seed=seed)
    if unannotated:
        shown = ", ".join(f"[{i}]" for i in unannotated[:20]) + (" ..." if len(unannotated) > 20 else "")
        board.notes.append(f"{len(unannotated)} annotation(s) without a preference (null) were left out: {shown}")
    board.unannotated = len(unannotated)
    return board


def _gamed_comparisons(gamed: Any) -> list[Comparison] | None:
    if gamed is None:
        return None
    try:
        return alpaca_eval_comparisons(gamed)
    except ValidationError as exc:
        raise ValidationError({f"gamed_annotations{k}": v for k, v in exc.message_dict.items()}) from None


# --- a dataset's records ------------------------------------------------------------------------------

def record_models(metadata: Any, fields: Sequence[str]) -> dict[str, str]:
    """Which model wrote which field, from record metadata (see the module doc for both forms)."""
    if not isinstance(metadata, dict):
        return {}
    out: dict[str, str] = {}
    models = metadata.get("models")
    if isinstance(models, dict):
        for name in fields:
            value = models.get(name)
            if isinstance(value, str) and value:
                out[name] = value
            elif isinstance(value, dict) and isinstance(value.get("model"), str) and value["model"]:
                out[name] = value["model"]
    for name in fields:
        value = metadata.get(name)
        if name not in out and isinstance(value, dict) and isinstance(value.get("model"), str) and value["model"]:
            out[name] = value["model"]
    return out


def text_length(value: Any) -> int:
    """Characters of a field value (a chat counts the content of its messages)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(len(m.get("content") or "") for m in value if isinstance(m, dict))
    return 0


def _mean_scores(rankings: list[dict[str, int]], a: str, b: str) -> float | None:
    """Mean preference for b over a across raters: 1 if b ranked better, 0 if worse, 0.5 if equal."""
    from annotation.agreement import FIRST, SECOND, pair_label

    values = []
    for ranks in rankings:
        label = pair_label(ranks, a, b)
        if label is not None:
            values.append(1.0 if label == SECOND else (0.0 if label == FIRST else 0.5))
    return sum(values) / len(values) if values else None


def _compared_question(dataset):
    """The question whose answers compare the responses: the ranking question, else the first pairwise
    question (a comparison rating or a graded preference, options.compares)."""
    from annotation.selectors import ranked_question_of

    question = ranked_question_of(dataset.questions.order_by("position", "id"))
    if question is None:
        raise ValidationError({"question": "this dataset has no ranking or comparison question"})
    return question


def _rankings_of(record_ids: list[int], *, source: str, question, compares) -> dict[int, list[dict[str, int]]]:
    """Per record, the rankings to average: submitted responses (`human`), suggestions
    (`suggestions`), or the responses where a record has any and the suggestions otherwise (`both`)."""
    from annotation.agreement import ranks_from_value
    from annotation.models import Response, Suggestion

    human: dict[int, list] = defaultdict(list)
    judged: dict[int, list] = defaultdict(list)
    if source in ("human", "both"):
        for record_id, values in (Response.objects.filter(record_id__in=record_ids, status=Response.Status.SUBMITTED)
                                  .values_list("record_id", "values")):
            ranks = ranks_from_value((values or {}).get(question.name), compares=compares)
            if ranks is not None:
                human[record_id].append(ranks)
    if source in ("suggestions", "both"):
        for record_id, value in (Suggestion.objects.filter(record_id__in=record_ids, question=question)
                                 .values_list("record_id", "value")):
            ranks = ranks_from_value(value, compares=compares)
            if ranks is not None:
                judged[record_id].append(ranks)
    if source == "human":
        return human
    if source == "suggestions":
        return judged
    return {record_id: human.get(record_id) or judged.get(record_id, []) for record_id in record_ids}


def dataset_comparisons(dataset, *, source: str = "human", question=None, batch: int = 1000) -> Iterator[Comparison]:
    """Comparisons of a dataset's records: one per (record, pair of fields written by known models).

    With several raters of a record the score is the mean of their verdicts (so it can be fractional).
    Streams the records in batches; never loads the dataset at once.
    """
    from annotation.models import Record
    from annotation.selectors import compared_fields, dataset_pages

    if source not in SOURCES:
        raise ValidationError({"source": f"must be one of {', '.join(SOURCES)}"})
    if question is None:
        question = _compared_question(dataset)
    compares = compared_fields(question)
    ranked = list(compares or (question.options or {}).get("values", []))

    for records in dataset_pages(Record.objects.filter(dataset=dataset).values_list("pk", "fields", "metadata"),
                                 dataset_id=dataset.pk, size=batch):
        rankings = _rankings_of([r[0] for r in records], source=source, question=question, compares=compares)
        for record_id, fields, metadata in records:
            models = record_models(metadata, ranked)
            if len(models) < 2 or not rankings.get(record_id):
                continue
            for a, b in combinations([f for f in ranked if f in models], 2):
                score = _mean_scores(rankings[record_id], a, b)
                if score is None:
                    continue
                yield Comparison(model_1=models[a], model_2=models[b], score=score,
                                 length_1=text_length((fields or {}).get(a)), length_2=text_length((fields or {}).get(b)),
                                 key=record_id)


def dataset_models(dataset, *, limit: int = 5000) -> list[str]:
    """Model names found in the metadata of (up to `limit`) records of the dataset, most frequent first."""
    from annotation.models import Record
    from annotation.selectors import ranked_fields

    fields = ranked_fields(dataset)
    counts: dict[str, int] = defaultdict(int)
    for metadata in Record.objects.filter(dataset=dataset).values_list("metadata", flat=True)[:limit]:
        for model in record_models(metadata, fields).values():
            counts[model] += 1
    return sorted(counts, key=lambda m: (-counts[m], m))


def _dataset_difficulty(dataset, data: Any, comparisons: list[Comparison]) -> dict:
    """A difficulty file for a dataset: a mapping keyed by record external_id, or a list by record order."""
    from annotation.models import Record

    keys = dict(Record.objects.filter(dataset=dataset).values_list("external_id", "pk")) if isinstance(data, dict) else None
    return difficulty_resolve(data, instructions=_instructions(comparisons), key_map=keys)


def dataset_leaderboard(dataset, *, reference: str | None = None, source: str = "human",
                        length_controlled: bool = False, instruction_difficulty: Any = None, gamed: Any = None,
                        bootstrap: int = 200, seed: int = 0) -> Leaderboard:
    """The leaderboard of a dataset; the reference defaults to the most frequent model."""
    if reference in (None, ""):
        models = dataset_models(dataset)
        if not models:
            raise ValidationError({"reference": "no record of this dataset says which model wrote its responses "
                                                "(metadata {field: {model: ...}} or {models: {field: name}})"})
        reference = models[0]
    comparisons = dataset_comparisons(dataset, source=source)
    difficulty = None
    if length_controlled and instruction_difficulty is not None:
        comparisons = list(comparisons)
        difficulty = _dataset_difficulty(dataset, instruction_difficulty, comparisons)
    return leaderboard_compute(comparisons, reference=reference, length_controlled=length_controlled, source=source,
                               instruction_difficulty=difficulty, gamed=_gamed_comparisons(gamed),
                               bootstrap=bootstrap, seed=seed)


# --- bar chart ----------------------------------------------------------------------------------------------

CHART_TEMPLATE = "evaluation/partials/leaderboard_chart.svg"


@dataclass
class ChartTick:
    x: str
    label: str
    stroke: str
    dash: str


@dataclass
class ChartBar:
    model: str
    label: str  # the model name, cut to fit
    value: str
    fill: str
    y: int
    width: str
    text_y: str
    value_x: str
    error_bar: dict[str, str] | None = None  # lo, hi, mid, top, bottom


@dataclass
class LeaderboardChart:
    """Where everything of the bar chart goes; the template (CHART_TEMPLATE) draws it. Coordinates
    are formatted here, so the SVG does not depend on the page's number formatting."""
    reference: str
    width: int
    height: int
    max_width: str
    bar_x: int  # where the bars start; the model names end 6 points before
    name_x: int
    bar_height: int
    axis_top: int
    axis_bottom: int
    axis_label_y: int
    ticks: list[ChartTick]
    bars: list[ChartBar]


def _chart_bar(row: LeaderboardRow, *, y: int, bar_height: int, lc: bool, x) -> ChartBar:
    value = row.lc_win_rate if lc and row.lc_win_rate is not None else row.win_rate
    bar = ChartBar(model=row.model, label=row.model[:30], value=f"{value:.1f}",
                   fill="#9aa0a6" if row.is_reference else "#5b5bd6", y=y,
                   width=f"{x(value) - x(0):.1f}", text_y=f"{y + bar_height * 0.7:.1f}", value_x="")
    label_x = x(value)
    se = row.lc_standard_error if lc and row.lc_win_rate is not None else row.standard_error
    if se:
        lo, hi = x(value - 1.96 * se), x(value + 1.96 * se)
        label_x = hi
        mid = y + bar_height / 2
        bar.error_bar = {"lo": f"{lo:.1f}", "hi": f"{hi:.1f}", "mid": f"{mid:.1f}", "top": f"{mid - 5:.1f}",
                         "bottom": f"{mid + 5:.1f}"}
    bar.value_x = f"{label_x + 4:.1f}"
    return bar


def leaderboard_chart(board: Leaderboard, *, width: int = 640, bar_height: int = 22,
                      lc: bool = False) -> LeaderboardChart:
    """The bar chart of a leaderboard: win rate (or the length-controlled one) with +-1.96 SE error
    bars (the LC bars: its bootstrap SE) and a dashed 50% line."""
    rows = [r for r in board.rows if r.win_rate is not None]
    label_w, pad = 180, 8
    plot_w = width - label_w - 50
    height = pad * 2 + max(1, len(rows)) * (bar_height + 6) + 20

    def x(v: float) -> float:
        return label_w + plot_w * max(0.0, min(100.0, v)) / 100.0

    ticks = [ChartTick(x=f"{x(t):.1f}", label=str(t), stroke="#888" if t == 50 else "#ddd",
                       dash="4 3" if t == 50 else "0") for t in (0, 25, 50, 75, 100)]
    bars = [_chart_bar(row, y=pad + i * (bar_height + 6), bar_height=bar_height, lc=lc, x=x)
            for i, row in enumerate(rows)]
    return LeaderboardChart(reference=board.reference, width=width, height=height, max_width=f"{width * 1.5:.0f}",
                            bar_x=label_w, name_x=label_w - 6, bar_height=bar_height, axis_top=pad,
                            axis_bottom=height - 20, axis_label_y=height - 6, ticks=ticks, bars=bars)


def leaderboard_svg(board: Leaderboard, *, width: int = 640, bar_height: int = 22, lc: bool = False) -> str:
    """The bar chart as an SVG string (the template's rendering, so every text in it is escaped)."""
    from django.template.loader import render_to_string

    chart = leaderboard_chart(board, width=width, bar_height=bar_height, lc=lc)
    return render_to_string(CHART_TEMPLATE, {"chart": chart})
