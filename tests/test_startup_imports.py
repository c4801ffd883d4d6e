"""What a web or worker process loads when it starts: the numeric stack (numpy, scipy, pyarrow) loads only when a
computation that needs it runs, so every process serving annotators stays small (it cost +37 MB and ~10% CPU per
request when the URL conf pulled it in)."""
import subprocess
import sys

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
