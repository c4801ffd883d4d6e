"""Load the demo workspace, users and datasets (idempotent: running it again changes nothing new)."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from annotation.demo_data import DATASETS, GUIDELINES, demo_records
from annotation.models import Dataset, Membership, Workspace
from annotation.services import dataset_create, dataset_publish, member_upsert, pairwise_dataset_spec, records_upsert
from annotation.validation import field_specs_of, record_validate

DEMO_WORKSPACE = "Demo"
DEMO_USERS = [
    # username, password, role
    ("admin", "admin-demo", Membership.Role.ADMIN),
    ("alice", "alice-demo", Membership.Role.ANNOTATOR),
    ("bob", "bob-demo", Membership.Role.ANNOTATOR),
]


class Command(BaseCommand):
    help = "Create the demo workspace, an admin and two annotators, and three small demo datasets."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", default=DEMO_WORKSPACE)

    @transaction.atomic
    def handle(self, *args, workspace: str, **options):
        ws, _ = Workspace.objects.get_or_create(name=workspace)
        users = {u.username: u for u in get_user_model().objects.filter(username__in=[u for u, _, _ in DEMO_USERS])}
        for username, password, role in DEMO_USERS:
            # A password is set once, when the user is created (or has none): setting it again would log the
            # user out everywhere (sessions carry a hash of it) and undo a password they chose.
            keep = username in users and users[username].has_usable_password()
            member_upsert(workspace=ws, username=username, role=role, password=None if keep else password)
        admin = get_user_model().objects.get(username="admin")
        if not (admin.is_staff and admin.is_superuser):
            admin.is_staff = admin.is_superuser = True
            admin.save(update_fields=["is_staff", "is_superuser"])
        for spec in DATASETS:
            dataset = Dataset.objects.filter(workspace=ws, name=spec["name"]).first()
            n_responses = max(len(item["responses"]) for item in spec["items"])
            if dataset is None:
                fields, questions = pairwise_dataset_spec(responses=n_responses, extra=spec["extra"])
                dataset = dataset_create(workspace=ws, name=spec["name"], fields=fields, questions=questions,
                                         created_by=admin, guidelines=GUIDELINES,
                                         min_submitted=spec["min_submitted"], allow_ties=False,
                                         show_suggestions=True, shuffle_responses=True,
                                         visible_metadata=["topic"])  # "source" stays with admins
                verb = "created"
            else:
                verb = "updated"
            specs = field_specs_of(dataset)
            rows = [record_validate(r, specs) for r in demo_records(spec["items"])]
            counts = records_upsert(dataset=dataset, rows=rows)
            if dataset.status != Dataset.Status.PUBLISHED:
                dataset_publish(dataset=dataset)
            self.stdout.write(f"  {verb} “{dataset.name}”: {counts.created} records added, {counts.updated} refreshed")
        self.stdout.write(self.style.SUCCESS(f"Demo workspace “{ws.name}” is ready."))
