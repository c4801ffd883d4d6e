"""Browser forms of the judging pages. They only parse input; the services validate and write."""
from __future__ import annotations

from django import forms

from annotation.forms import json_object_value
from annotation.models import Dataset
from generation.models import Endpoint

from .models import Judge


class JudgeForm(forms.Form):
    workspace = forms.ModelChoiceField(queryset=None)
    name = forms.SlugField(max_length=100, help_text="Letters, digits, '-' and '_'; the suggestions' agent is name:model.")
    endpoint = forms.ModelChoiceField(queryset=None)
    method = forms.ChoiceField(choices=Judge.Method.choices, initial=Judge.Method.ULTRAFEEDBACK)
    aspect = forms.ChoiceField(choices=Judge.Aspect.choices, initial=Judge.Aspect.OVERALL)
    overall_mode = forms.ChoiceField(choices=Judge.OverallMode.choices, initial=Judge.OverallMode.RUBRIC)
    params = forms.CharField(required=False, initial='{"temperature": 0}',
                             help_text='JSON, e.g. {"temperature": 0, "max_tokens": 1024}')
    max_parse_retries = forms.IntegerField(min_value=0, max_value=10, initial=2)
    use_structured_output = forms.BooleanField(required=False, initial=True,
                                               help_text="JSON schema via response_format when the endpoint supports it")
    template = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}),
                               help_text="Optional: replaces the built-in prompt (same $variables).")

    def __init__(self, *args, workspaces, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workspace"].queryset = workspaces
        self.fields["endpoint"].queryset = Endpoint.objects.filter(workspace__in=workspaces).order_by("name")

    def clean_params(self):
        return json_object_value(self.cleaned_data.get("params"), "parameters")


class JudgeJobForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=None)
    judge = forms.ModelChoiceField(queryset=None)
    target_dataset = forms.CharField(required=False, max_length=200,
                                     help_text="CLAIR only: target dataset name (created if needed).")
    answer_field = forms.CharField(required=False, max_length=100,
                                   help_text="CLAIR only: the field to revise (default: the originally chosen answer).")

    def __init__(self, *args, workspaces, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = Dataset.objects.filter(workspace__in=workspaces).order_by("name")
        self.fields["judge"].queryset = Judge.objects.filter(workspace__in=workspaces).select_related("endpoint")


class SimulatedAnnotatorForm(forms.Form):
    """Create (name given) or reconfigure a simulated annotator of one workspace."""

    name = forms.CharField(max_length=100, required=False,
                           help_text="Letters, digits, '-' and '_'; its user is sim-<name>.")
    judge = forms.ModelChoiceField(queryset=None, help_text="A judge that ranks (UltraFeedback or pairwise).")
    flip_probability = forms.FloatField(min_value=0.0, max_value=1.0, initial=0.25,
                                        help_text="Label noise: the judge's choice is flipped with this probability "
                                                  "(AlpacaFarm used 0.25).")
    seed = forms.IntegerField(initial=0, help_text="Same seed, same answers.")

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["judge"].queryset = Judge.objects.filter(workspace=workspace).order_by("name")
