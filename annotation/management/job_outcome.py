"""How a command that ran a job (or waited for one) ends: one line in the kind's words, and an exit code
that says whether every item went through (0) or not (1: the job failed or partly failed, or stopped).

    job_command_end(self, job, again="manage.py generate --resume 12")
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotation.job_selectors import job_outcome_line
from annotation.models import Job


def job_command_end(command: BaseCommand, job: Job, *, again: str = "") -> None:
    """Print the outcome line of a job that has ended; raise CommandError (exit 1) unless it succeeded.
    `again` is the command that resumes it or retries its failed items, added to the line when it did not."""
    job.refresh_from_db()
    line = job_outcome_line(job)
    if job.status == Job.Status.SUCCEEDED:
        command.stdout.write(command.style.SUCCESS(line))
        return
    raise CommandError(f"{line}{f'; again with: {again}' if again else ''}")
