"""Models of the simulation/evaluation side: simulated annotators and what they answered.

Imported by name at the end of judging/models.py, so they are models of the `judging` app (and
its migrations).
"""
from django.conf import settings
from django.db import models

from annotation.models import Record, Workspace

__all__ = ["SimulatedAnnotator", "SimulatedAnswer"]


class SimulatedAnnotator(models.Model):
    """A judge configuration + a label-flip probability + a seed, acting as a flagged simulated user.

    Deleting the judge (or the workspace) deletes the simulated annotator; its user and the responses
    it submitted stay, like those of a person who left.

    The user (`sim-<name>`) is a member of the workspace with Membership.is_simulated = True and
    answers through the same distribution and response path as a person (see judging.evaluation.simulation).
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="simulated_annotators")
    name = models.SlugField(max_length=100)
    judge = models.ForeignKey("judging.Judge", on_delete=models.CASCADE, related_name="simulated_annotators")
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="simulated_annotator")
    flip_probability = models.FloatField(
        default=0.0, help_text="p: the judge's choice is flipped with probability p (AlpacaFarm used 0.25); "
                               "implemented as: with probability min(1, 2p) the answer is replaced by a "
                               "uniformly random one.")
    seed = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="uniq_simulated_annotator_name")]

    def __str__(self) -> str:
        return f"{self.name} (p={self.flip_probability:g})"


class SimulatedAnswer(models.Model):
    """What a simulated annotator decided for one record: the judge's ranking, the answer it submitted
    (after noise), whether noise replaced it, and the raw judge outputs (or the error) for auditing."""

    annotator = models.ForeignKey(SimulatedAnnotator, on_delete=models.CASCADE, related_name="answers")
    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="simulated_answers")
    judge_value = models.JSONField(null=True, blank=True)
    value = models.JSONField(null=True, blank=True)
    noised = models.BooleanField(default=False)
    raw = models.JSONField(default=list, blank=True)  # [{"call_key", "text", "error"}]
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["annotator", "record"], name="uniq_simulated_answer")]
