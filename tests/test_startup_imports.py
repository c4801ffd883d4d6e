"""What a web or worker process loads when it starts: the numeric stack (numpy, scipy, pyarrow) loads only when a
computation that needs it runs, so every process serving annotators stays small (it cost +37 MB and ~10% CPU per
request when the URL conf pulled it in)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HEAVY = ("numpy", "scipy", "pyarrow", "krippendorff")

PROBE = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "preflab.settings")
import django
django.setup()
from django.urls import get_resolver
get_resolver().url_patterns  # the whole URL conf, with every view module
from preflab.celery import app
app.loader.import_default_modules()  # the worker's task modules
print(" ".join(m for m in %r if m in sys.modules))
"""


def test_startup_does_not_load_the_numeric_stack():
    out = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,)], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "", f"loaded at startup: {out.stdout.strip()}"


LAZY_CELERY_PROBE = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "preflab.settings")
import django
django.setup()
import annotation.jobs, judging.management.commands.judge, generation.management.commands.generate  # noqa: F401
before = [m for m in ("celery", "kombu") if m in sys.modules]
from django.conf import settings
from annotation.tasks import job_chunk_run
app = job_chunk_run.app
print(" ".join(before) or "-", app.main, app.conf.task_default_queue == settings.PREFLAB_CPU_QUEUE,
      app.conf.broker_url == settings.CELERY_BROKER_URL, "annotation.job_chunk_run" in app.tasks)
"""


def test_celery_loads_only_where_a_task_is_sent_and_then_with_the_projects_app():
    """Django's start and the job commands that run chunks in their own process (manage.py judge, generate)
    do not import Celery (~0.2 s of CPU at each start); the task module, imported where a chunk is sent,
    binds the task to the project's app and its settings, not to Celery's unconfigured default app."""
    out = subprocess.run([sys.executable, "-c", LAZY_CELERY_PROBE], capture_output=True, text=True, check=True,
                         timeout=120)
    assert out.stdout.split() == ["-", "preflab", "True", "True", "True"], out.stdout + out.stderr


MANAGE_EXIT_PROBE = """
import gc, os, sys
sys.argv = ["manage.py", "spectacular", "--file", sys.argv[1]]
import manage
manage.main()
print(gc.get_freeze_count() > 1000)
"""


def test_a_command_leaves_its_objects_out_of_the_collection_at_exit(tmp_path):
    """manage.py freezes what a finished command holds, so Python's last full collection does not walk it
    (0.1-0.2 s after a judge job); what the command wrote is whole."""
    out_file = tmp_path / "schema.yaml"
    out = subprocess.run([sys.executable, "-c", MANAGE_EXIT_PROBE, str(out_file)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "True", out.stdout + out.stderr
    text = out_file.read_text()
    assert text.startswith("openapi:") and "/api/v1/datasets/{dataset_id}/next/" in text
