"""Job handlers are registered by dotted path and imported when a job of their kind first needs them, so a
process that runs one kind (manage.py judge) does not load the others' code; and a process's share of a
per-process limit when several processes run one job together."""
import subprocess
import sys

import pytest

from annotation.job_share import PROCESS_SHARE_ENV, process_share

PROBE = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "preflab.settings")
import django
django.setup()
from annotation.jobs import job_handler_for, job_kinds
lazy = ("generation.services.handler", "annotation.job_kinds", "judging.evaluation.simulation", "judging.services.handler")
print(" ".join(m for m in lazy if m in sys.modules))
print(" ".join(job_kinds()))
handlers = {kind: type(job_handler_for(kind)).__name__ for kind in ("judge", "generation", "export", "import", "simulation")}
print(" ".join(f"{k}={v}" for k, v in sorted(handlers.items())))
print(job_handler_for("export") is job_handler_for("export"))
"""


def test_handlers_are_imported_on_first_use_and_every_kind_is_known():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120)
    loaded, kinds, handlers, same = out.stdout.splitlines()
    assert loaded == "", f"imported at start-up: {loaded}"
    assert set(kinds.split()) >= {"dataset_delete", "export", "generation", "import", "judge", "simulation"}
    assert handlers.split() == ["export=ExportJobHandler", "generation=GenerationJobHandler", "import=ImportJobHandler",
                                "judge=JudgeJobHandler", "simulation=SimulationJobHandler"]
    assert same == "True"  # one instance per kind, however often it is asked for


@pytest.mark.parametrize("limit,n", [(256, 2), (5, 2), (7, 3), (64, 4), (2, 2)])
def test_the_shares_of_a_limit_add_up_to_it(monkeypatch, limit, n):
    shares = []
    for i in range(n):
        monkeypatch.setenv(PROCESS_SHARE_ENV, f"{i}/{n}")
        shares.append(process_share(limit))
    assert sum(shares) == limit and max(shares) - min(shares) <= 1
    monkeypatch.delenv(PROCESS_SHARE_ENV)
    assert process_share(limit) == limit  # a process running a job alone keeps the whole limit
