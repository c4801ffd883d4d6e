"""Helpers the whole suite shares (fixtures are in conftest.py, factories in factories.py)."""
from __future__ import annotations

import os

import pytest

REQUIRE_SERVICES = os.environ.get("PREFLAB_REQUIRE_SERVICES") == "1"


def need(condition: bool, what: str, missing: str = "not available") -> None:
    """Skip the test when `what` is missing; fail it instead in a run that requires the services
    (PREFLAB_REQUIRE_SERVICES=1, as CI sets)."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required in this run (PREFLAB_REQUIRE_SERVICES=1) but is {missing}")
    pytest.skip(f"{what} {missing}")


def chunk_run_again(job, index: int) -> None:
    """Run a chunk's handler once more, directly: what a second copy of the chunk's task (acks_late
    redelivery, or sent twice) does when it passed the "chunk not done yet" check before the first
    copy finished."""
    from annotation.jobs import ChunkContext, job_handler_for

    chunk = job.chunks.get(index=index)
    job_handler_for(job.kind).run_chunk(job, chunk, ChunkContext(job, chunk))


def login(user):
    """A Django test client logged in as `user` (pages; the API tests use tests.conftest.client_for)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client
