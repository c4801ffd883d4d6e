"""A process's share of per-process limits while several processes run one job together
(annotation.jobs.job_run_processes). Its own module, free of Django, so the LLM client reads it
wherever it runs."""
from __future__ import annotations

import os

PROCESS_SHARE_ENV = "PREFLAB_PROCESS_SHARE"


def process_share(limit: int) -> int:
    """This process's part of a per-process limit (the LLM client's max_concurrency of an endpoint) while
    it is process i of n running one job together (job_run_processes sets PREFLAB_PROCESS_SHARE="i/n"):
    the n parts add up to the limit, so the job as a whole keeps it; each part is at least 1."""
    share = os.environ.get(PROCESS_SHARE_ENV)
    if not share:
        return limit
    i, n = (int(x) for x in share.split("/"))
    return max(1, limit // n + (1 if i < limit % n else 0))
