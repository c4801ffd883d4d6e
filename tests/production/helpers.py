"""Helpers for the production tests: the production environment, subprocesses of manage.py."""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

from tests.helpers import need

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

# Variables a developer's shell or the CI may set that must not leak into a "production" subprocess.
_STRIP = ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE",
          "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS", "BEHIND_PROXY", "STATICFILES_STORAGE", "STATIC_ROOT",
          "DJANGO_SETTINGS_MODULE", "CACHE_URL",
          # set by the browser tests for Playwright's event loop; a deployment never sets it
          "DJANGO_ALLOW_ASYNC_UNSAFE")


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a production deployment (as in .env.example), on a throw-away SQLite file."""
    env = {k: v for k, v in os.environ.items() if k not in _STRIP}
    env.update({
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "preflab.example.org,localhost,127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": "https://preflab.example.org",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "BEHIND_PROXY": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        "PREFLAB_VAR_DIR": str(tmp_path / "var"),
        "STATIC_ROOT": str(tmp_path / "staticfiles"),
        "PREFLAB_ENV_FILE": str(tmp_path / "no.env"),
        "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    env.update(extra)
    return env


def manage(args: list[str], env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_tool(path: str | None, what: str) -> str:
    need(bool(path), what, missing="not installed")
    return path
