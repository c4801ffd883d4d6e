"""Checks before export: does a rater prefer the longer answer, and the first one shown?

* **Length**: for every record and pair of ranked responses of different lengths (characters; a chat counts its
  messages' content, leaderboards.text_length), each verdict is counted: the longer preferred, the shorter
  preferred, or a tie. ``longer_wins`` = longer preferred / (longer + shorter preferred), with a Wilson 95%
  interval (annotation.agreement.wilson_interval); ties are counted apart. Humans (submitted responses of members
  not flagged simulated), simulated annotators, and each judge agent (suggestions) separately, so a team sees a
  length-biased judge beside the humans it should match. 0.5 means no preference for length.
* **Position**: the position-bias figures of the agreement report (annotation.agreement.position: how often the
  first shown response was chosen, against chance), humans overall and per judge (with the judges' swap
  inconsistency where their jobs measured it) — reused, not recomputed.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from annotation.agreement import (
    FIRST,
    SECOND,
    field_pairs,
    pair_label,
    ranks_from_value,
    wilson_interval,
)
from annotation.agreement.rates import rounded

from .leaderboards import _compared_question, text_length
from .selectors import dataset_agreement_with_judges

CI_METHOD = "wilson-95"


class _LengthTally:
    def __init__(self) -> None:
        self.longer = self.shorter = self.ties = 0

    def add(self, label: int, longer_is_first: bool) -> None:
        if label not in (FIRST, SECOND):
            self.ties += 1
        elif (label == FIRST) == longer_is_first:
            self.longer += 1
        else:
            self.shorter += 1

    def as_dict(self) -> dict[str, Any]:
        n = self.longer + self.shorter
        share = self.longer / n if n else None
        low, high = wilson_interval(share, n)
        return {"longer_wins": rounded(share), "ci_low": rounded(low), "ci_high": rounded(high),
                "ci_method": CI_METHOD, "longer_preferred": self.longer, "shorter_preferred": self.shorter,
                "ties": self.ties, "n": n}


def _tally_record(tally: _LengthTally, ranks_list: list[dict], lengths: dict[str, int], fields: list[str]) -> None:
    for a, b in field_pairs(fields):
        if lengths.get(a, 0) == lengths.get(b, 0):
            continue
        for ranks in ranks_list:
            label = pair_label(ranks, a, b)
            if label is not None:
                tally.add(label, longer_is_first=lengths[a] > lengths[b])


def _record_rankings(record_ids: list[int], question, compares, simulated: set[int]) -> tuple[dict, dict]:
    """record -> {who: [ranks]} for responses (who: "human" / "simulated") and suggestions (who: the agent)."""
    from annotation.models import Response, Suggestion

    people: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for record_id, user_id, values in (Response.objects.filter(record_id__in=record_ids, status=Response.Status.SUBMITTED)
                                       .values_list("record_id", "user_id", "values")):
        ranks = ranks_from_value((values or {}).get(question.name), compares=compares)
        if ranks is not None:
            people[record_id]["simulated" if user_id in simulated else "human"].append(ranks)
    judged: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for record_id, agent, value in (Suggestion.objects.filter(record_id__in=record_ids, question=question)
                                    .values_list("record_id", "agent", "value")):
        ranks = ranks_from_value(value, compares=compares)
        if ranks is not None:
            judged[record_id][agent or "judge"].append(ranks)
    return people, judged


def dataset_length_bias(dataset, *, batch: int = 1000) -> dict[str, Any]:
    """How often the longer response wins, for humans, simulated annotators and each judge (see the module doc).
    Streams the records in batches."""
    from annotation.models import Membership, Record
    from annotation.selectors import compared_fields, dataset_pages

    question = _compared_question(dataset)
    compares = compared_fields(question)
    fields = list(compares or (question.options or {}).get("values", []))
    simulated = set(Membership.objects.filter(workspace_id=dataset.workspace_id, is_simulated=True)
                    .values_list("user_id", flat=True))
    tallies: dict[tuple[str, str], _LengthTally] = defaultdict(_LengthTally)
    for records in dataset_pages(Record.objects.filter(dataset=dataset).values_list("pk", "fields"),
                                 dataset_id=dataset.pk, size=batch):
        people, judged = _record_rankings([r[0] for r in records], question, compares, simulated)
        for record_id, record_fields in records:
            lengths = {f: text_length((record_fields or {}).get(f)) for f in fields}
            for kind, by_who in (("people", people.get(record_id, {})), ("judge", judged.get(record_id, {}))):
                for who, ranks_list in by_who.items():
                    _tally_record(tallies[(kind, who)], ranks_list, lengths, fields)
    return {"question": question.name,
            "human": tallies[("people", "human")].as_dict(),
            "simulated": tallies[("people", "simulated")].as_dict() if ("people", "simulated") in tallies else None,
            "judges": [{"agent": who, **t.as_dict()} for (kind, who), t in sorted(tallies.items()) if kind == "judge"]}


def dataset_checks(dataset) -> dict[str, Any]:
    """The length and position checks of a dataset, for the API and the evaluation page."""
    agreement = dataset_agreement_with_judges(dataset)
    position = {"human": agreement.get("position_bias"),
                "judges": [{"agent": j["agent"], "position_bias": j.get("position_bias"),
                            "inconsistency": j.get("inconsistency")} for j in agreement.get("judges", [])]}
    return {"length": dataset_length_bias(dataset), "position": position}
