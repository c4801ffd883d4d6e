"""Deployment: the Dockerfile's build steps, docker-compose.yml, `check --deploy`, and the production
server (granian + whitenoise) started with the exact command docker-compose.yml gives the web service."""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from .helpers import REPO, free_port, manage, need_tool, production_env

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"


# --- Dockerfile ---------------------------------------------------------------------------------

def dockerfile_runs() -> list[str]:
    """The RUN instructions of the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [re.sub(r"\s+", " ", line[4:]).strip() for line in text.splitlines() if line.startswith("RUN ")]


def dockerfile_env() -> dict[str, str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def test_dockerfile_installs_the_package_with_pip_install_e():
    pip = [r for r in dockerfile_runs() if "pip install" in r]
    assert pip and any(re.search(r"pip install -e \"\.", r) for r in pip), pip
    # The same command with the dev extra is what .ci/test runs before the suite.
    assert 'pip install -q --disable-pip-version-check -e ".[dev]"' in (REPO / ".ci" / "test").read_text()


def test_dockerfile_copies_every_package_and_the_files_the_app_reads():
    import tomllib

    copied = set()
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY "):
            copied.update(Path(p).name for p in line.split()[1:-1])
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        assert pattern.rstrip("*") in copied, f"{pattern} is not copied into the image"
    for needed in ("manage.py", "pyproject.toml", "README.md", "templates", "static"):
        assert needed in copied, needed
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not set(copied) & set(ignored)


def test_dockerfile_build_steps_succeed(tmp_path):
    """Runs the Dockerfile's manage.py RUN steps verbatim (collectstatic, check --deploy)."""
    steps = [r for r in dockerfile_runs() if "manage.py" in r]
    assert any("collectstatic --noinput" in s for s in steps), steps
    assert any("check --deploy" in s for s in steps), steps
    env = production_env(tmp_path)
    for key in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "BEHIND_PROXY"):
        env.pop(key)  # the steps must carry what they need themselves
    image_env = dockerfile_env()
    env["STATICFILES_STORAGE"] = image_env["STATICFILES_STORAGE"]
    for step in steps:
        done = subprocess.run(["bash", "-c", step], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"Dockerfile step failed: {step}\n{done.stdout}\n{done.stderr}"
    manifest = Path(env["STATIC_ROOT"]) / "staticfiles.json"
    assert manifest.exists(), "collectstatic with the image's storage writes the whitenoise manifest"
    assert list(Path(env["STATIC_ROOT"]).rglob("*.js.gz")), "whitenoise compresses the static files"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".env", ".venv", "var", ".git"):
        assert entry in ignored


# --- manage.py check --deploy and the production switches ---------------------------------------

def test_check_deploy_passes_with_production_settings(tmp_path):
    done = manage(["check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


@pytest.mark.parametrize("key", [None, "", "insecure-dev-key-change-me-" + "x" * 30, "short-key",
                                 "a" * 60])
def test_startup_refuses_a_missing_default_or_weak_secret_key_when_debug_is_off(tmp_path, key):
    env = production_env(tmp_path)
    if key is None:
        env.pop("SECRET_KEY")
    else:
        env["SECRET_KEY"] = key
    done = manage(["check"], env)
    assert done.returncode != 0
    assert "SECRET_KEY" in done.stderr and "ImproperlyConfigured" in done.stderr


def _settings_in(env: dict[str, str], *names: str) -> dict[str, str]:
    code = ("import django, json; django.setup(); from django.conf import settings as s; "
            f"print(json.dumps({{n: repr(getattr(s, n)) for n in {list(names)!r}}}))")
    env = dict(env, DJANGO_SETTINGS_MODULE="preflab.settings")
    done = subprocess.run(["python", "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    import json

    return json.loads(done.stdout.strip().splitlines()[-1])


def test_production_settings_make_cookies_secure_and_come_from_the_environment(tmp_path):
    env = production_env(tmp_path)
    values = _settings_in(env, "DEBUG", "SECRET_KEY", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
                          "SESSION_COOKIE_HTTPONLY", "SECURE_HSTS_SECONDS", "SECURE_SSL_REDIRECT",
                          "SECURE_PROXY_SSL_HEADER", "ALLOWED_HOSTS")
    assert values["DEBUG"] == "False"
    assert values["SECRET_KEY"] == repr(env["SECRET_KEY"])
    assert values["SESSION_COOKIE_SECURE"] == "True"
    assert values["CSRF_COOKIE_SECURE"] == "True"
    assert values["SESSION_COOKIE_HTTPONLY"] == "True"
    assert int(values["SECURE_HSTS_SECONDS"]) >= 31536000
    assert values["SECURE_SSL_REDIRECT"] == "True"
    assert values["SECURE_PROXY_SSL_HEADER"] == repr(("HTTP_X_FORWARDED_PROTO", "https"))
    assert values["ALLOWED_HOSTS"] == repr(["preflab.example.org", "localhost", "127.0.0.1"])


def test_development_defaults_do_not_claim_production(tmp_path):
    env = production_env(tmp_path)
    for key in ("DEBUG", "SECRET_KEY", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "BEHIND_PROXY"):
        env.pop(key)
    values = _settings_in(env, "DEBUG", "SESSION_COOKIE_SECURE", "SECURE_SSL_REDIRECT")
    assert values == {"DEBUG": "True", "SESSION_COOKIE_SECURE": "False", "SECURE_SSL_REDIRECT": "False"}
    # ...and check --deploy says so: the development defaults are not deployable.
    done = manage(["check", "--deploy", "--fail-level", "WARNING"], env)
    assert done.returncode != 0 and "security.W018" in done.stderr + done.stdout


# --- docker-compose.yml ---------------------------------------------------------------------------

def compose_env(tmp_path: Path) -> Path:
    """.env.example with its required blanks filled, as a user would after `cp .env.example .env`."""
    text = (REPO / ".env.example").read_text()
    text = re.sub(r"(?m)^SECRET_KEY=$", "SECRET_KEY=" + "k" * 20 + "x9" * 20, text)
    text = re.sub(r"(?m)^POSTGRES_PASSWORD=$", "POSTGRES_PASSWORD=s3cret-pw", text)
    text = re.sub(r"(?m)^VLLM_MODEL=.*$", "VLLM_MODEL=acme/tiny-chat-model", text)
    path = tmp_path / ".env"
    path.write_text(text)
    return path


def test_env_example_has_no_secret_values():
    values = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                  if line and not line.startswith("#"))
    for key in ("SECRET_KEY", "POSTGRES_PASSWORD", "HUGGING_FACE_HUB_TOKEN", "VLLM_API_KEY"):
        assert values[key] == "", f"{key} must be blank in .env.example"
    assert values["DEBUG"] == "false"


def _check_compose(config: dict) -> None:
    services = config["services"]
    assert set(services) >= {"postgres", "redis", "web", "worker", "gpu-worker", "vllm"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert any(v.split(":")[1] == "/var/lib/postgresql/data" for v in _volumes(services["postgres"]))
    web = " ".join(_command(services["web"]))
    assert "manage.py migrate --noinput" in web and "granian --interface wsgi preflab.wsgi" in web
    assert re.search(r"celery -A preflab worker -Q \$+\{PREFLAB_CPU_QUEUE", " ".join(_command(services["worker"])))
    gpu = services["gpu-worker"]
    assert "gpu" in " ".join(_command(gpu)) and "-Q" in " ".join(_command(gpu))
    assert gpu["build"]["args"]["PREFLAB_EXTRAS"] == "vllm"
    for name in ("gpu-worker", "vllm"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert services["vllm"]["image"].startswith("vllm/vllm-openai")


def _command(service: dict) -> list[str]:
    cmd = service.get("command", [])
    return cmd if isinstance(cmd, list) else shlex.split(cmd)


def _volumes(service: dict) -> list[str]:
    out = []
    for v in service.get("volumes", []):
        out.append(v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}")
    return out


def test_compose_file_structure():
    _check_compose(yaml.safe_load(COMPOSE.read_text()))


def test_docker_compose_config_validates_with_the_env_file(tmp_path):
    tool = need_tool(shutil.which("docker-compose"), "docker-compose (Debian package docker-compose)")
    env_file = compose_env(tmp_path)
    done = subprocess.run([tool, "--project-directory", str(REPO), "-f", str(COMPOSE), "--env-file", str(env_file),
                           "config"], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PREFLAB_ENV_FILE": str(env_file)})
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    _check_compose(config)
    services = config["services"]
    assert "acme/tiny-chat-model" in services["vllm"]["command"]
    web_env = services["web"]["environment"]
    assert web_env["DATABASE_URL"].startswith("postgres://preflab:s3cret-pw@postgres:5432/preflab")
    assert web_env["DEBUG"] == "false" and web_env["SECRET_KEY"].startswith("kkkk")
    assert web_env["CELERY_BROKER_URL"].startswith("redis://redis:6379")


def test_docker_compose_refuses_to_start_without_required_secrets(tmp_path):
    tool = need_tool(shutil.which("docker-compose"), "docker-compose (Debian package docker-compose)")
    env_file = tmp_path / ".env"
    env_file.write_text(compose_env(tmp_path).read_text().replace("POSTGRES_PASSWORD=s3cret-pw", "POSTGRES_PASSWORD="))
    done = subprocess.run([tool, "--project-directory", str(REPO), "-f", str(COMPOSE), "--env-file", str(env_file),
                           "config"], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PREFLAB_ENV_FILE": str(env_file)})
    assert done.returncode != 0 and "POSTGRES_PASSWORD" in done.stderr


def _login_path() -> str:
    from django.conf import settings
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse(settings.LOGIN_URL)
    except NoReverseMatch:  # the UI's login page is not wired yet: Django admin's login
        return reverse("admin:login")


# --- the web service's command, for real -----------------------------------------------------------

def test_web_service_command_migrates_and_serves_static_files_securely(tmp_path):
    """Runs docker-compose.yml's web command (migrate + granian) on SQLite with production settings."""
    config = yaml.safe_load(COMPOSE.read_text())
    command = _command(config["services"]["web"])
    assert command[:2] == ["sh", "-c"]
    port = free_port()
    script = command[2].replace("$$", "$").replace("--host 0.0.0.0 --port 8000", f"--host 127.0.0.1 --port {port}")
    env = production_env(tmp_path, WEB_WORKERS="1", WEB_THREADS="4",
                         STATICFILES_STORAGE=dockerfile_env()["STATICFILES_STORAGE"])
    collected = manage(["collectstatic", "--noinput"], env)
    assert collected.returncode == 0, collected.stderr
    proc = subprocess.Popen(["sh", "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                health = requests.get(base + "/healthz", timeout=30)  # the first request loads the app: slow on a busy machine
                break
            except (requests.ConnectionError, requests.ReadTimeout):  # listening while its worker still loads the app
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "the web server did not start"
                time.sleep(0.3)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        https = {"X-Forwarded-Proto": "https", "Host": "preflab.example.org"}
        # plain http is redirected to https
        plain = requests.get(base + "/api/v1/datasets/", headers={"Host": "preflab.example.org"},
                             allow_redirects=False, timeout=5)
        assert plain.status_code == 301 and plain.headers["Location"].startswith("https://preflab.example.org/")
        # unknown hosts are refused
        assert requests.get(base + "/api/v1/datasets/", headers={"Host": "evil.example.com",
                                                                 "X-Forwarded-Proto": "https"},
                            timeout=5).status_code == 400
        # static files come from whitenoise (hashed names, long cache, compressed)
        manifest = (Path(env["STATIC_ROOT"]) / "staticfiles.json").read_text()
        import json

        paths = json.loads(manifest)["paths"]
        js = next(v for k, v in paths.items() if k.endswith(".js"))
        static = requests.get(f"{base}/static/{js}", headers={**https, "Accept-Encoding": "gzip"}, timeout=5)
        assert static.status_code == 200
        assert "max-age=315360000" in static.headers.get("Cache-Control", "")
        assert static.headers.get("Content-Encoding") in ("gzip", "br")
        # the API wants credentials; HSTS and nosniff are on
        api = requests.get(base + "/api/v1/datasets/", headers=https, timeout=5)
        assert api.status_code in (401, 403)
        assert "max-age=31536000" in api.headers.get("Strict-Transport-Security", "")
        assert api.headers.get("X-Content-Type-Options") == "nosniff"
        assert "script-src 'self'" in api.headers.get("Content-Security-Policy", "")
        assert "camera=()" in api.headers.get("Permissions-Policy", "")
        # the login page sets its CSRF cookie Secure
        login = requests.get(base + _login_path(), headers=https, timeout=5, allow_redirects=False)
        assert login.status_code == 200, login.status_code
        cookie = login.headers.get("Set-Cookie", "")
        assert "csrftoken=" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    finally:
        import os
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- every page under the image's static storage ---------------------------------------------------

def test_every_page_renders_with_the_production_static_storage(db, settings, tmp_path):
    """Whitenoise's manifest storage (the image's) raises on a {% static %} file that does not exist:
    render every page of the walk as workspace A's admin and annotator with it."""
    from django.core.management import call_command
    from django.test import Client

    from .test_access import ROUTES, World

    settings.STATIC_ROOT = str(tmp_path / "static")
    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": dockerfile_env()["STATICFILES_STORAGE"]}}
    call_command("collectstatic", "--noinput", verbosity=0)
    world = World()
    try:
        broken = []
        for route in ROUTES:
            if route.is_api or "get" not in route.methods:
                continue
            url = "/" + route.route
            for name in route.params:
                url = re.sub(rf"<(?:\w+:)?{name}>", str(world.param_value(route, name)), url)
            for user in (world.admin_a, world.annotator_a):
                client = Client(raise_request_exception=False)
                client.force_login(user)
                response = client.get(url)
                if response.status_code >= 500:
                    exc = response.exc_info[1] if getattr(response, "exc_info", None) else ""
                    broken.append(f"GET {url} as {user.username}: {response.status_code} {exc!s:.200}")
        assert not broken, "\n".join(broken)
    finally:
        world.close()


def test_api_docs_are_served_from_the_apps_static_files(db, settings, tmp_path):
    """Swagger UI comes with the app (drf-spectacular-sidecar, collected like any static file), so /api/docs/ works
    without internet access: its page names no other host, and every file it loads is in the collected manifest."""
    from django.core.management import call_command
    from django.test import Client

    settings.STATIC_ROOT = str(tmp_path / "static")
    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": dockerfile_env()["STATICFILES_STORAGE"]}}
    call_command("collectstatic", "--noinput", verbosity=0)
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html), html
    assert "cdn.jsdelivr.net" not in html and "@latest" not in html
    loaded = re.findall(r"""(?:src|href)\s*=\s*["']?(/static/[^"' >]+)""", html)
    assert any("swagger-ui-bundle" in u for u in loaded), loaded
    for url in loaded:
        assert (tmp_path / "static" / url.removeprefix("/static/")).exists(), url


def test_dockerfile_cmd_serves_with_the_compose_web_command():
    """The image's own CMD and docker-compose.yml's web service start the same server the same way."""
    cmd = next(line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD "))
    image = " ".join(json.loads(cmd[4:])[2].split())
    compose = " ".join(_command(yaml.safe_load(COMPOSE.read_text())["services"]["web"])[2].replace("$$", "$").split())
    assert image == compose and "granian --interface wsgi preflab.wsgi:application" in image
