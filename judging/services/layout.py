"""What a judge reads of a dataset (its layout), and the target dataset of CLAIR revisions."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from annotation.models import Dataset, Field, Question, Workspace
from annotation.services import dataset_create

log = logging.getLogger(__name__)

CLAIR_FIELDS = ("prompt", "response-1", "response-2")


# --- dataset layout ----------------------------------------------------------------------------

@dataclass
class Layout:
    """Which fields and questions of a dataset a judge job reads and writes."""
    prompt_field: str
    fields: list[str]                  # the ranked fields (the ranking question's values)
    ranking_question: str | None
    compares_questions: list[tuple[str, list[str]]] = field(default_factory=list)
    preference_questions: list[tuple[str, list[str], list[dict]]] = field(default_factory=list)  # name, compares, scale


def dataset_layout(dataset: Dataset) -> Layout:
    questions = list(dataset.questions.all())
    field_names = set(dataset.fields.values_list("name", flat=True))
    ranking = next((q for q in questions if q.kind == Question.Kind.RANKING), None)
    compares = [(q.name, list(q.options["compares"])) for q in questions
                if q.kind == Question.Kind.RATING and (q.options or {}).get("compares")]
    preferences = [(q.name, list(q.options["compares"]), list(q.options.get("scale") or []))
                   for q in questions if q.kind == Question.Kind.PREFERENCE]
    if ranking is not None:
        fields = list(ranking.options.get("values", []))
    elif compares:
        fields = list(compares[0][1])
    elif preferences:
        fields = list(preferences[0][1])
    else:
        fields = []
    prompt_field = dataset.prompt_field if dataset.prompt_field in field_names else ""
    return Layout(prompt_field=prompt_field, fields=fields, ranking_question=ranking.name if ranking else None,
                  compares_questions=compares, preference_questions=preferences)


def clair_target_for(*, workspace: Workspace, source: Dataset, target: Dataset | str | None, created_by) -> Dataset:
    """The dataset CLAIR pairs go to: given, or created with a pairwise layout."""
    if isinstance(target, Dataset):
        if target.workspace_id != workspace.pk:
            raise ValidationError({"target_dataset": "no such dataset in this workspace"})
        names = set(target.fields.values_list("name", flat=True))
        ranking = target.questions.filter(kind=Question.Kind.RANKING).first()
        if not set(CLAIR_FIELDS) <= names or ranking is None or \
                set(ranking.options.get("values", [])) != {"response-1", "response-2"}:
            raise ValidationError({"target_dataset": "needs fields prompt, response-1, response-2 and a ranking "
                                                     "question over response-1 and response-2"})
        return target
    name = target or f"{source.name}-clair"
    existing = Dataset.objects.filter(workspace=workspace, name=name).first()
    if existing is not None:
        return clair_target_for(workspace=workspace, source=source, target=existing, created_by=created_by)
    src_prompt = source.fields.filter(name=source.prompt_field).first()
    prompt_kind = src_prompt.kind if src_prompt is not None else Field.Kind.TEXT
    return dataset_create(
        workspace=workspace, name=name, created_by=created_by,
        guidelines=(f"Pairs built by CLAIR from dataset {source.name!r}: each record holds an answer and the "
                    "judge's minimal revision of it. The record metadata says which field is the revision."),
        shuffle_responses=True, allow_ties=True,
        fields=[{"name": "prompt", "title": "Prompt", "kind": prompt_kind},
                {"name": "response-1", "title": "Response 1", "kind": Field.Kind.MARKDOWN},
                {"name": "response-2", "title": "Response 2", "kind": Field.Kind.MARKDOWN}],
        questions=[{"name": "ranking", "title": "Rank the responses", "kind": "ranking",
                    "options": {"values": ["response-1", "response-2"]}}])
