"""Forms of the browser UI: parsing the annotate form, creating datasets, uploads, members.

The annotate form is not a Django Form (its inputs depend on the dataset's questions); its POST
data is turned into the `values` dict that services.response_upsert validates:

    rank__<question>__<field> = <int>      one per ranked field (empty = not ranked yet)
    q__<question> = <value>                rating (int), label (one or several), text
    q__<question> = <field>:<strength>     preference (the chosen side and strength)
    q__<question>__both_bad = 1            preference: both responses are bad
"""
from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .errors import validation_items
from .imports.formats import MAP_TARGETS, PAIR_FORMATS, mapping_parse
from .models import Membership, Question
from .quality.options import PAUSE_MIN_ANSWERS_MAX, QUALITY_HELP
from .selectors import compared_fields
from .services import pairwise_dataset_spec
from .text import unstorable_text
from .validation import question_value_validate


def json_object_value(raw: str | None, what: str) -> dict:
    """A form box that holds a JSON object (parameters, overrides...): {} when empty, else the object,
    or a form error saying what was expected."""
    raw = (raw or "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise forms.ValidationError(f"not valid JSON: {exc}")
    if not isinstance(value, dict):
        raise forms.ValidationError(f"a JSON object of {what}")
    return value


def response_values_from_post(questions: list[Question], data) -> dict[str, Any]:
    """The answers present in the POST data, by question name (unanswered questions left out)."""
    values: dict[str, Any] = {}
    for q in questions:
        if q.kind == Question.Kind.RANKING:
            items = []
            for field_name in q.options.get("values", []):
                raw = (data.get(f"rank__{q.name}__{field_name}") or "").strip()
                if raw:
                    try:
                        rank = int(raw)
                    except ValueError:
                        rank = raw  # validation names it
                    items.append({"value": field_name, "rank": rank})
            if items:
                values[q.name] = items
        elif q.kind == Question.Kind.RATING:
            raw = (data.get(f"q__{q.name}") or "").strip()
            if raw:
                try:
                    values[q.name] = int(raw)
                except ValueError:
                    values[q.name] = raw
        elif q.kind == Question.Kind.PREFERENCE:
            value = preference_from_post(data.get(f"q__{q.name}"), data.get(f"q__{q.name}__both_bad"))
            if value:
                values[q.name] = value
        elif q.kind == Question.Kind.LABEL:
            if q.options.get("multiple"):
                chosen = [v for v in data.getlist(f"q__{q.name}") if v]
                if chosen:
                    values[q.name] = chosen
            else:
                raw = data.get(f"q__{q.name}") or ""
                if raw:
                    values[q.name] = raw
        else:
            raw = data.get(f"q__{q.name}")
            if raw is not None and raw.strip():
                values[q.name] = raw
    return values


def preference_from_post(choice: str | None, both_bad: str | None) -> dict[str, Any]:
    """A preference answer from the annotate form: "<field>:<strength>" and the both-bad box
    (validation judges the result; a strength that is not a number is passed on for it to name)."""
    value: dict[str, Any] = {}
    field_name, sep, raw = (choice or "").strip().rpartition(":")
    if sep and field_name:
        try:
            strength: Any = float(raw)
            if strength.is_integer():
                strength = int(strength)
        except ValueError:
            strength = raw
        value = {"preferred": field_name, "strength": strength}
    if (both_bad or "").strip() in ("1", "on", "true"):
        value["both_bad"] = True
    return value


def response_values_keep_valid(questions: list[Question], values: dict[str, Any], *, allow_ties: bool) -> dict[str, Any]:
    """For drafts and discards: keep the answers that are valid on their own, a half-done ranking
    included (it is stored as entered), so saving a draft never fails and loses nothing valid."""
    by_name = {q.name: q for q in questions}
    kept = {}
    for name, value in values.items():
        try:
            kept[name] = question_value_validate(by_name[name], value, allow_ties=allow_ties, partial=True)
        except (ValidationError, KeyError):
            continue
    return kept


def duration_from_post(data) -> float | None:
    raw = data.get("duration")
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if value != value or value < 0:
        return None
    return min(value, 6 * 3600.0)  # an open tab over night is not annotation time


def errors_by_question(exc: ValidationError) -> tuple[dict[str, str], list[str]]:
    """Split a service ValidationError into per-question messages and general messages."""
    per_question: dict[str, str] = {}
    general: list[str] = []
    for key, messages in validation_items(exc):
        text = "; ".join(messages)
        if key is None:
            general.extend(messages)
        elif key.startswith("values."):
            per_question[key.split(".", 1)[1].split("[", 1)[0]] = text
        else:
            general.append(f"{key}: {text}" if key not in ("__all__", "detail") else text)
    return per_question, general


# --- dataset creation --------------------------------------------------------------------------

PRESET_PAIRWISE = "pairwise"
PRESET_ADVANCED = "advanced"


class DatasetSettingsForm(forms.Form):
    """A dataset's settings after creation (its fields and questions are fixed)."""

    name = forms.CharField(max_length=200)
    guidelines = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}),
                                 help_text="Markdown, shown to annotators above every record.")
    min_submitted = forms.IntegerField(min_value=1, max_value=100, label="Overlap",
                                       help_text="Submitted responses wanted per record; 2 or more measures agreement.")
    allow_ties = forms.BooleanField(required=False, help_text="Annotators may give two responses the same rank.")
    show_suggestions = forms.BooleanField(required=False, help_text="Pre-fill answers from judge suggestions.")
    shuffle_responses = forms.BooleanField(required=False,
                                           help_text="Show responses in a per-annotator order (position bias).")
    visible_metadata = forms.CharField(
        required=False, label="Metadata annotators see",
        help_text="Record metadata keys shown to annotators, separated by commas (e.g. topic). Every other key "
                  "(where a pair came from, its original labels, judge details, gold answers) is for admins only.")

    # quality (the ranges are checked by services.dataset_update: quality.options, the one rule)
    gold_rate = forms.FloatField(required=False, label="Gold rate", help_text=QUALITY_HELP["gold_rate"],
                                 widget=forms.NumberInput(attrs={"min": 0, "max": 1, "step": "any"}))
    gold_pause_accuracy = forms.FloatField(required=False, label="Pause below gold accuracy",
                                           help_text=QUALITY_HELP["gold_pause_accuracy"],
                                           widget=forms.NumberInput(attrs={"min": 0, "max": 1, "step": "any",
                                                                           "placeholder": "off"}))
    gold_pause_min_answers = forms.IntegerField(required=False, label="Gold answers before pausing",
                                                help_text=QUALITY_HELP["gold_pause_min_answers"],
                                                widget=forms.NumberInput(attrs={"min": 1, "max": PAUSE_MIN_ANSWERS_MAX}))
    too_fast_seconds = forms.FloatField(required=False, label="Too fast below (seconds)", help_text=QUALITY_HELP["too_fast_seconds"],
                                        widget=forms.NumberInput(attrs={"min": 0, "step": "any"}))
    exclude_removed_annotators = forms.BooleanField(required=False, label="Leave removed annotators out of exports",
                                                    help_text=QUALITY_HELP["exclude_removed_annotators"])
    suggestion_share = forms.FloatField(required=False, label="Share shown suggestions", help_text=QUALITY_HELP["suggestion_share"],
                                        widget=forms.NumberInput(attrs={"min": 0, "max": 1, "step": "any"}))

    def clean_visible_metadata(self) -> list[str]:
        return [k.strip() for k in self.cleaned_data["visible_metadata"].split(",") if k.strip()]

    def settings_changes(self) -> dict:
        """The settings to save: what was posted (a quality number left out of the post is left as it is;
        an empty one is refused by the service, naming it)."""
        kept = ("gold_rate", "gold_pause_accuracy", "gold_pause_min_answers", "too_fast_seconds", "suggestion_share")
        return {k: v for k, v in self.cleaned_data.items() if k not in kept or k in self.data}


class DatasetCreateForm(forms.Form):
    workspace = forms.ModelChoiceField(queryset=None, empty_label=None)
    name = forms.CharField(max_length=200)
    preset = forms.ChoiceField(choices=[(PRESET_PAIRWISE, "Prompt + responses, ranked"),
                                        (PRESET_ADVANCED, "Advanced: fields and questions as JSON")],
                               initial=PRESET_PAIRWISE, widget=forms.RadioSelect)
    responses = forms.IntegerField(min_value=2, max_value=8, initial=2,
                                   help_text="Number of responses per prompt (response-1 … response-N).")
    question = forms.ChoiceField(
        choices=[("ranking", "Rank the responses"),
                 ("preference", "Graded preference (two responses): which is better, by how much, or both bad")],
        initial="ranking", required=False, widget=forms.RadioSelect, label="Question")
    response_kind = forms.ChoiceField(choices=[("markdown", "Markdown"), ("text", "Plain text"), ("chat", "Chat")],
                                      initial="markdown")
    extra_questions = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple,
        choices=[("rating", "Overall quality rating of the best response (1–5)"),
                 ("flags", "Flags (harmful, factual error, refusal)"),
                 ("comment", "Free-text comment")])
    fields_json = forms.CharField(required=False, widget=forms.Textarea(attrs={"class": "code", "rows": 10}),
                                  label="Fields (JSON)")
    questions_json = forms.CharField(required=False, widget=forms.Textarea(attrs={"class": "code", "rows": 10}),
                                     label="Questions (JSON)")
    guidelines = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}),
                                 help_text="Markdown, shown to annotators above every record.")
    min_submitted = forms.IntegerField(min_value=1, max_value=100, initial=1, label="Overlap",
                                       help_text="Submitted responses wanted per record.")
    allow_ties = forms.BooleanField(required=False, help_text="Annotators may give two responses the same rank.")
    show_suggestions = forms.BooleanField(required=False, initial=True,
                                          help_text="Pre-fill answers from judge suggestions.")
    shuffle_responses = forms.BooleanField(required=False, initial=True,
                                           help_text="Show responses in a per-annotator order (position bias).")

    def __init__(self, *args, workspaces=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workspace"].queryset = workspaces

    def _json_list(self, key: str) -> list | None:
        raw = (self.cleaned_data.get(key) or "").strip()
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            self.add_error(key, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
            return None
        if not isinstance(value, list):
            self.add_error(key, "must be a JSON list")
            return None
        found = unstorable_text(value, key.removesuffix("_json"))
        if found is not None:
            self.add_error(key, f"{found[0]}: {found[1]}")
            return None
        return value

    def clean(self):
        data = super().clean()
        if data.get("preset") == PRESET_ADVANCED:
            fields = self._json_list("fields_json")
            questions = self._json_list("questions_json")
            if fields is None and "fields_json" not in self.errors:
                self.add_error("fields_json", "required for the advanced preset")
            if questions is None and "questions_json" not in self.errors:
                self.add_error("questions_json", "required for the advanced preset")
            data["fields"], data["questions"] = fields, questions
        else:
            kind = data.get("response_kind") or "markdown"
            graded = data.get("question") == "preference"
            if graded and (data.get("responses") or 2) != 2:
                self.add_error("question", "a graded preference compares exactly two responses")
                return data
            data["fields"], data["questions"] = pairwise_dataset_spec(
                responses=data.get("responses") or 2,
                # chat: the prompt is the conversation so far, each response one (markdown) answer
                prompt_kind="chat" if kind == "chat" else "markdown",
                response_kind="markdown" if kind == "chat" else kind,
                extra=data.get("extra_questions") or [], graded=graded)
        return data

    def field_for_error(self, key: str | None) -> str | None:
        """Where a dataset_create error goes: a fields/questions error on its JSON box (advanced
        preset; the form as a whole otherwise), any other on the form field of its name, if any."""
        if key is None:
            return None
        for definition in ("fields", "questions"):
            if key.startswith(definition):
                return f"{definition}_json" if self.cleaned_data.get("preset") == PRESET_ADVANCED else None
        return key if key in self.fields else None

    def service_kwargs(self) -> dict[str, Any]:
        d = self.cleaned_data
        return {"workspace": d["workspace"], "name": d["name"], "fields": d["fields"], "questions": d["questions"],
                "guidelines": d.get("guidelines") or "", "min_submitted": d["min_submitted"],
                "allow_ties": bool(d.get("allow_ties")), "show_suggestions": bool(d.get("show_suggestions")),
                "shuffle_responses": bool(d.get("shuffle_responses"))}


def advanced_example() -> tuple[str, str]:
    fields, questions = pairwise_dataset_spec(responses=2, extra=["comment"])
    return json.dumps(fields, indent=2), json.dumps(questions, indent=2)


class ImportForm(forms.Form):
    FORMATS = [("", "Detect from the file name"), ("ndjson", "NDJSON / JSONL"), ("json", "JSON array"),
               ("csv", "CSV"), ("parquet", "Parquet"),
               ("pairs", "Preference pairs in a public format: orca, UltraFeedback, CLAIR, Argilla, AlpacaFarm, TRL "
                         "(shown blind, order shuffled)")]
    file = forms.FileField()
    format = forms.ChoiceField(choices=FORMATS, required=False)
    pair_format = forms.ChoiceField(label="Pair format", required=False,
                                    choices=[("", "Detect from the columns")]
                                    + [(name, f"{name}: {f.title}") for name, f in PAIR_FORMATS.items()])
    strict = forms.BooleanField(required=False, label="Reject lines with columns the format does not read "
                                                      "(otherwise they go to metadata)")

    def mapping(self, data) -> dict:
        """The mapping step's choices: one `map-<target>` select per target, a file column or nothing."""
        return mapping_parse({t: data[f"map-{t}"] for t in MAP_TARGETS if data.get(f"map-{t}")})


class MemberForm(forms.Form):
    username = forms.CharField(max_length=254, label="User name or e-mail",
                               help_text="An account of this installation is invited: it joins once it accepts.")
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.ANNOTATOR)
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False), min_length=8,
                               help_text="Only for a new user or to reset the password (8+ characters).")


class ExportForm(forms.Form):
    export = forms.ChoiceField(choices=[("triplets", "triplets (DPO, reward models)"),
                                        ("unpaired", "unpaired: prompt, completion, label (KTO)"),
                                        ("responses", "raw responses (one row per answer)")],
                               required=False, initial="triplets", label="Export")
    format = forms.ChoiceField(choices=[("jsonl", "JSONL"), ("csv", "CSV"), ("parquet", "Parquet")])
    style = forms.ChoiceField(choices=[("standard", "standard"), ("conversational", "conversational")],
                              required=False, initial="standard")
    pairs = forms.ChoiceField(choices=[("best_worst", "best vs worst"), ("all", "all pairs"),
                                       ("best_vs_rest", "best vs rest")], required=False, initial="best_worst")
    resolve = forms.ChoiceField(choices=[("majority", "majority"), ("mean_rank", "mean rank"),
                                         ("weighted", "weighted by competence")],
                                required=False, initial="majority")
    source = forms.ChoiceField(choices=[("human", "human"), ("suggestions", "suggestions")],
                               required=False, initial="human")
    include_ties = forms.BooleanField(required=False)
    margin_from = forms.ChoiceField(choices=[("votes", "votes"), ("strength", "strength (graded preference)")],
                                    required=False, initial="votes", label="Margin from")
    include_both_bad = forms.BooleanField(required=False, label="Include records called both bad")
    include_gold = forms.BooleanField(required=False, label="Include gold records")
    include_excluded = forms.BooleanField(required=False, label="Include excluded annotators' answers")
    reviews = forms.ChoiceField(choices=[("use", "reviewed verdicts replace the votes"), ("ignore", "votes only")],
                                required=False, initial="use", label="Reviews")
    trl_margin = forms.ChoiceField(choices=[("", "none"), ("vote_margin", "vote margin"), ("rank_margin", "rank margin"),
                                            ("strength_margin", "strength margin"), ("judge_margin", "judge margin")],
                                   required=False, initial="", label="TRL margin column (RewardTrainer's loss)")
    question = forms.ChoiceField(required=False, choices=[("", "first ranking")])

    def __init__(self, *args, dataset=None, **kwargs):
        super().__init__(*args, **kwargs)
        if dataset is not None:
            self.fields["question"].choices = [("", "first ranking")] + [
                (q.name, q.title or q.name) for q in dataset.questions.all()
                if q.kind == Question.Kind.RANKING or compared_fields(q)]

