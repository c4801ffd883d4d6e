"""Reads of the evaluation side that need the judging models."""
from __future__ import annotations

from annotation.agreement import dataset_agreement

from ..models import Judge


def dataset_agreement_with_judges(dataset, *, scoring_rule: str = "preflab") -> dict:
    """annotation.agreement.dataset_agreement, plus for each judge row that is a Judge of the
    workspace (agent = "<judge name>:<model>") its pairwise inconsistency rate: the share of pairs
    it judged differently when the two responses swapped places (Judge.position_bias, kept by the
    judge jobs) — the pairwise judges' own position-bias measure."""
    report = dataset_agreement(dataset, scoring_rule=scoring_rule)
    judges = {j.agent: j for j in Judge.objects.filter(workspace_id=dataset.workspace_id).select_related("endpoint")}
    for row in report.get("judges", []):
        judge = judges.get(row["agent"])
        bias = (judge.position_bias or {}) if judge is not None else {}
        row["judge"] = judge.name if judge is not None else None
        row["inconsistency"] = ({"rate": bias.get("rate"), "pairs": bias.get("pairs"), "favoured": bias.get("favoured")}
                                if bias.get("pairs") else None)
    return report
