"""Judges (an LLM endpoint + a method + a rubric) and what their jobs wrote.

A judge job is an annotation.Job of kind "judge" (the one job mechanism). For each record it makes
one or more LLM calls, each stored as a JudgeOutput keyed by (job, record, call_key), and one
JudgeVerdict per (job, record) holding the combined result (ratings, ranking, margin or the error).
Both keys make re-running a chunk skip the calls and records already done.
"""
from django.conf import settings
from django.db import models

from annotation.models import Job, Record, Workspace
from generation.models import Endpoint


class Judge(models.Model):
    class Method(models.TextChoices):
        ULTRAFEEDBACK = "ultrafeedback", "UltraFeedback ratings (1-5 per response)"
        PAIRWISE = "pairwise", "Pairwise preference, both orders"
        CLAIR = "clair", "CLAIR minimal revision"

    class Aspect(models.TextChoices):
        HELPFULNESS = "helpfulness", "Helpfulness"
        HONESTY = "honesty", "Honesty"
        INSTRUCTION_FOLLOWING = "instruction_following", "Instruction following"
        TRUTHFULNESS = "truthfulness", "Truthfulness"
        OVERALL = "overall", "Overall"

    class OverallMode(models.TextChoices):
        MEAN_OF_ASPECTS = "mean_of_aspects", "Mean of the four aspect ratings (4 calls)"
        RUBRIC = "rubric", "One overall rubric (1 call)"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="judges")
    name = models.SlugField(max_length=100)
    method = models.CharField(max_length=20, choices=Method.choices, default=Method.ULTRAFEEDBACK)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.RESTRICT, related_name="judges")
    aspect = models.CharField(max_length=32, choices=Aspect.choices, default=Aspect.OVERALL)
    overall_mode = models.CharField(max_length=20, choices=OverallMode.choices, default=OverallMode.RUBRIC)
    template = models.TextField(blank=True, default="",
                                help_text="Optional user-message template replacing the built-in one "
                                          "(same $variables as the file in judging/prompts/).")
    params = models.JSONField(default=dict, blank=True, help_text="temperature, max_tokens, seed, top_p ...")
    max_parse_retries = models.PositiveSmallIntegerField(default=2)
    use_structured_output = models.BooleanField(
        default=True, help_text="Ask for JSON via response_format json_schema when the endpoint supports it.")
    # {"pairs", "inconsistent", "rate", "favoured_first", "favoured_second", "favoured"} over all its verdicts
    position_bias = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="uniq_judge_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def agent(self) -> str:
        """The suggestion agent name: judge name and model."""
        if self.method == self.Method.CLAIR:
            return f"clair:{self.endpoint.model}"[:200]
        return f"{self.name}:{self.endpoint.model}"[:200]


class JudgeOutput(models.Model):
    """One LLM call of a judge job: the raw text, what was parsed from it, or why not."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="judge_outputs")
    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="judge_outputs")
    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="outputs")
    call_key = models.CharField(max_length=100, help_text="e.g. ratings:helpfulness, pair:1-2:AB, clair")
    shown_order = models.JSONField(default=list, blank=True, help_text="Field names in the order the judge saw them.")
    raw_text = models.TextField(blank=True, default="")
    parsed = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="LLM calls made for this output.")
    # earlier attempts that could not be parsed: [{"text", "error"}]
    failed_attempts = models.JSONField(default=list, blank=True)
    finish_reason = models.CharField(max_length=40, blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # what annotation.text cleaned out of raw_text before it was stored (NUL, lone surrogates)
    text_cleaned = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "record", "call_key"], name="uniq_judge_output")]

    @property
    def ok(self) -> bool:
        return self.parsed is not None and not self.error


class JudgeVerdict(models.Model):
    """The combined judgement of one record in one job (or the reason there is none)."""

    class Status(models.TextChoices):
        OK = "ok", "Judged"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="judge_verdicts")
    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="judge_verdicts")
    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="verdicts")
    status = models.CharField(max_length=10, choices=Status.choices)
    # ratings: {field: rating}; ranking; margin; uncertainty; pairwise: consistent, favoured_position;
    # clair: target_record, answer_field
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "record"], name="uniq_judge_verdict")]
        indexes = [models.Index(fields=["judge", "status"], name="verdict_judge_idx")]

class FlipDecision(models.Model):
    """An admin's decision on a flip of an imported preference pair (the cleaning page): accepted
    (the cleaned export swaps chosen and rejected) or rejected (it keeps the original). One per
    record; deciding again replaces it, clearing it leaves the record undecided."""

    class Decision(models.TextChoices):
        ACCEPTED = "accepted", "Accepted: swap"
        REJECTED = "rejected", "Rejected: keep the original"

    record = models.OneToOneField(Record, on_delete=models.CASCADE, related_name="flip_decision")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(auto_now=True)


# The evaluation package's models are models of this app, in its migrations.
from .evaluation.models import SimulatedAnnotator, SimulatedAnswer  # noqa: E402

__all__ = ["FlipDecision", "Judge", "JudgeOutput", "JudgeVerdict", "SimulatedAnnotator", "SimulatedAnswer"]
