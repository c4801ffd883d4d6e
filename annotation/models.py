"""The annotation data model (DESIGN.md): workspaces, datasets, records, responses, suggestions,
plus the one job mechanism every long operation (import, export, generation, judging) uses.

Models hold data and constraints only; behaviour lives in services.py / selectors.py.
"""
from django.conf import settings
from django.db import models


class Workspace(models.Model):
    name = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        REVIEWER = "reviewer", "Reviewer"
        ANNOTATOR = "annotator", "Annotator"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    # Simulated annotators (LLM judges with noise) answer through the same path as humans.
    is_simulated = models.BooleanField(default=False)
    # Imported annotators (e.g. an Argilla export's users): accounts with an unusable password that
    # carry a dataset's existing human responses, so agreement and export count them like people.
    is_imported = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "workspace"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.workspace} ({self.role})"


class Invitation(models.Model):
    """A workspace admin's invitation of an account (named by user name or e-mail address) to join
    the workspace as `role`. The account sees it on its account page and accepts or declines it;
    until then it is not a member. (annotation.services.member_add, invitation_accept)"""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    invitee = models.CharField(max_length=254, help_text="A user name or an e-mail address, as the admin typed it.")
    role = models.CharField(max_length=16, choices=Membership.Role.choices, default=Membership.Role.ANNOTATOR)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "invitee"], name="uniq_invitation")]

    def __str__(self) -> str:
        return f"{self.invitee} to {self.workspace} ({self.role})"


class Dataset(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        ARCHIVED = "archived", "Archived"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    guidelines = models.TextField(blank=True, default="")
    min_submitted = models.PositiveSmallIntegerField(default=1, help_text="Submitted responses wanted per record (overlap).")
    allow_ties = models.BooleanField(default=False)
    show_suggestions = models.BooleanField(default=True)
    shuffle_responses = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    prompt_field = models.CharField(max_length=100, default="prompt")
    # The record metadata keys annotators see (annotation.selectors.record_metadata_for); every other
    # key (provenance, original labels, judge internals, gold answers) is for admins only.
    visible_metadata = models.JSONField(default=list, blank=True)
    # --- campaign quality (annotation.quality) ---
    # Share of the records handed to an annotator that are gold records (0: none), served to every
    # annotator whatever the overlap and never counted toward min_submitted or completion.
    gold_rate = models.FloatField(default=0.05, help_text="Share of handed-out records that are gold (0 to 1).")
    # Pause policy: an annotator whose accuracy on gold falls below gold_pause_accuracy after at least
    # gold_pause_min_answers gold answers is paused on this dataset (None: the policy is off).
    gold_pause_accuracy = models.FloatField(null=True, blank=True)
    gold_pause_min_answers = models.PositiveSmallIntegerField(default=10)
    # A submitted response faster than this many seconds is "too fast" (0: no flag).
    too_fast_seconds = models.FloatField(default=0.0)
    # Exports leave out the responses of annotators excluded on this dataset (AnnotatorStanding.excluded)
    # and, with this on, of annotators who are no longer members of the workspace. Reversible.
    exclude_removed_annotators = models.BooleanField(default=False)
    # Anchoring experiment: share of (annotator, record) assignments shown the judges' suggestions
    # (when show_suggestions is on); which ones is decided per pair and stored on the response.
    suggestion_share = models.FloatField(default=1.0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="uniq_dataset_name")]

    def __str__(self) -> str:
        return self.name


class Field(models.Model):
    class Kind(models.TextChoices):
        TEXT = "text", "Text"
        MARKDOWN = "markdown", "Markdown"
        CHAT = "chat", "Chat"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="fields")
    name = models.SlugField(max_length=100)
    title = models.CharField(max_length=200, blank=True, default="")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TEXT)
    required = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="uniq_field_name")]

    def __str__(self) -> str:
        return self.name


class Question(models.Model):
    class Kind(models.TextChoices):
        RANKING = "ranking", "Ranking"
        RATING = "rating", "Rating"
        LABEL = "label", "Label"
        TEXT = "text", "Text"
        PREFERENCE = "preference", "Preference"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="questions")
    name = models.SlugField(max_length=100)
    title = models.CharField(max_length=300, blank=True, default="")
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    required = models.BooleanField(default=True)
    # ranking: {"values": [field names]}; rating: {"values": [ints], "compares": [f1, f2]?};
    # label: {"values": [labels], "multiple": bool}; text: {};
    # preference: {"compares": [f1, f2], "scale": [{"label", "value"}, ...] strongest first, "both_bad": bool}
    options = models.JSONField(default=dict, blank=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="uniq_question_name")]

    def __str__(self) -> str:
        return self.name


class Record(models.Model):
    # no index of its own: every index below starts with the dataset (one index fewer to feed per imported row)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="records", db_index=False)
    external_id = models.CharField(max_length=255)
    fields = models.JSONField(default=dict)
    metadata = models.JSONField(default=dict, blank=True)
    priority = models.FloatField(default=0.0)
    submitted_count = models.PositiveIntegerField(default=0)
    # Open leases handed out by next_record_for and not yet answered (see services.next_record_for).
    leased_count = models.PositiveIntegerField(default=0)
    # True once submitted_count reaches the dataset's min_submitted (+ extra_wanted): such records are
    # never handed out as ordinary records. Gold records are always completed (served apart).
    completed = models.BooleanField(default=False)
    # Answers wanted beyond the dataset's min_submitted (a reviewer sent the record back for more).
    extra_wanted = models.PositiveSmallIntegerField(default=0, db_default=0)
    # Gold: a record with a known answer, served to every annotator at the dataset's gold_rate to
    # measure them. gold_answer holds response values ({question name: value}); never shown to annotators.
    is_gold = models.BooleanField(default=False, db_default=False)
    gold_answer = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "external_id"], name="uniq_record_external_id")]
        indexes = [
            # next_record_for walks this index: open records of a dataset, highest priority first.
            models.Index(fields=["dataset", "completed", "-priority", "id"], name="record_next_idx"),
            # exports and lists walk a dataset's records in id order (keyset pagination on id)
            models.Index(fields=["dataset", "id"], name="record_dataset_id_idx"),
            # the gold records of a dataset (served apart from the ordinary queue)
            models.Index(fields=["dataset", "id"], condition=models.Q(is_gold=True), name="record_gold_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.external_id}"


class Lease(models.Model):
    """A record handed to one annotator by next_record_for; counted until answered or expired."""

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="leases")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["record", "user"], name="uniq_lease")]
        indexes = [
            models.Index(fields=["dataset", "user"], name="lease_user_idx"),
            models.Index(fields=["dataset", "expires_at"], name="lease_expiry_idx"),
        ]


class Response(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"
        DISCARDED = "discarded", "Discarded"

    # No index of their own: each is the first column of an index below (a write of a response pays
    # for every index of the table).
    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="responses", db_index=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="responses", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preflab_responses",
                             db_index=False)
    values = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    # The field names in the order they were shown to this annotator (position bias analysis).
    display_order = models.JSONField(default=list, blank=True)
    duration = models.FloatField(default=0.0, help_text="Seconds spent on the record (summed across visits).")
    # Anchoring experiment: whether the judges' suggestions were shown with this record (None: the
    # record had none to show, or the response predates the experiment).
    suggestion_shown = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["record", "user"], name="uniq_response")]
        indexes = [
            models.Index(fields=["dataset", "user", "status"], name="response_user_idx"),
            models.Index(fields=["dataset", "status", "record"], name="response_status_idx"),
            models.Index(fields=["user", "dataset", "-updated_at"], name="response_history_idx"),
            # a dataset's responses in id order (the responses export's keyset pages)
            models.Index(fields=["dataset", "id"], name="response_dataset_id_idx"),
        ]


class Suggestion(models.Model):
    """A pre-annotation from a judge (or any agent) for one question of one record."""

    record = models.ForeignKey(Record, on_delete=models.CASCADE, related_name="suggestions")
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="suggestions")
    value = models.JSONField()
    score = models.FloatField(null=True, blank=True)
    agent = models.CharField(max_length=200, default="")
    rationale = models.TextField(blank=True, default="")
    raw = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["record", "question", "agent"], name="uniq_suggestion_agent"),
        ]


class AnnotatorStanding(models.Model):
    """An annotator's standing on one dataset, set by the quality policies or by an admin: paused
    (no more records; nothing they did is lost) and/or excluded (their responses left out of
    exports; reversible, never a deletion). No row: active and included."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="standings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    paused = models.BooleanField(default=False)
    excluded = models.BooleanField(default=False)
    reason = models.CharField(max_length=300, blank=True, default="")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", help_text="None: set by a policy")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "user"], name="uniq_annotator_standing")]


class Review(models.Model):
    """A reviewer's decision on one record: accept one annotator's answer, set their own verdict, or
    send the record back for more answers. Kept beside the votes, never in place of them; the
    export uses `values` (response values) instead of the votes by default."""

    class Decision(models.TextChoices):
        ACCEPTED = "accepted", "Accepted an answer"
        OWN = "own", "Own verdict"
        SENT_BACK = "sent_back", "Sent back for more answers"

    record = models.OneToOneField(Record, on_delete=models.CASCADE, related_name="review")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    # the verdict in response-values form ({question name: value}); empty when sent back
    values = models.JSONField(default=dict, blank=True)
    accepted_response = models.ForeignKey(Response, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["dataset", "decision"], name="review_dataset_idx")]


class Job(models.Model):
    """One long operation (import, export, generation, judging, ...) split into chunks.

    Handlers per kind are registered in annotation.jobs; Celery tasks run one chunk each.
    Counters are the sum of the chunks' counters and are updated with F() expressions.
    """

    class Status(models.TextChoices):
        """queued, running; then it ends as succeeded (no item failed), partly_failed (some items failed),
        failed (every item failed, or the job stopped on an error: resumable) or cancelled (stopped by a user)."""

        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTLY_FAILED = "partly_failed", "Partly failed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    # what a job that ran all its chunks ends as (annotation.jobs.job_final_status decides which)
    FINISHED = (Status.SUCCEEDED, Status.PARTLY_FAILED, Status.FAILED)

    kind = models.CharField(max_length=40)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="jobs")
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    name = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=64, blank=True, default="")
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    tokens = models.PositiveBigIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    input_file = models.CharField(max_length=500, blank=True, default="")
    output_file = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workspace", "kind", "-created_at"], name="job_list_idx")]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def progress(self) -> float:
        return min(1.0, (self.done + self.failed) / self.total) if self.total else (1.0 if not self.is_active else 0.0)


class JobChunk(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    spec = models.JSONField(default=dict, blank=True)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    # liveness (annotation.jobs): a running chunk refreshes heartbeat_at while it works; the sweep
    # re-queues a running (or retry-waiting) chunk whose heartbeat is older than PREFLAB_JOB_STALL_SECONDS
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    requeues = models.PositiveIntegerField(default=0, help_text="times the sweep re-queued it (no heartbeat)")
    requeued_at = models.DateTimeField(null=True, blank=True)
    requeue_note = models.CharField(max_length=300, blank=True, default="",
                                    help_text="when and why the sweep last re-queued or gave up the chunk")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="uniq_job_chunk")]
        indexes = [models.Index(fields=["heartbeat_at"], condition=models.Q(status__in=["running", "failed"]),
                                name="job_chunk_stall_idx")]


class JobError(models.Model):
    """The final error of one item of a job (a rejected import line, a failed LLM call...)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="errors")
    item = models.CharField(max_length=255, help_text="Line number, prompt key, record id...")
    error = models.TextField()
    raw = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["job", "item"], name="uniq_job_error_item")]
