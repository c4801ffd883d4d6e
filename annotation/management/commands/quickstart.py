"""One command from a bare machine to a running preflab: migrate, seed the demo, serve, work.

    python manage.py quickstart             # http://127.0.0.1:8000/ (this machine only), Ctrl-C stops everything
    python manage.py quickstart --port 8080
    python manage.py quickstart --public    # reachable from other machines (demo passwords, DEBUG on: trusted networks only)
    python manage.py quickstart --no-serve  # only migrate and seed
    python manage.py quickstart --verbose   # also the web server's and the worker's own start-up output

The port is checked before anything else: a port in use is the first thing said, and the exit code is 1.
Running it again keeps the database, the users' passwords and their sessions (nobody is logged out).
"""
from __future__ import annotations

import errno
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from .seed_demo import DEMO_USERS, DEMO_WORKSPACE

LOCAL = "127.0.0.1"
EVERYWHERE = "0.0.0.0"
READY_WAIT = 30.0  # seconds to wait for the web server to answer before giving up


def port_problem(host: str, port: int) -> str | None:
    """Why `host:port` cannot be bound now ("already in use", ...), or None when it can."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"{host} is not an address of this machine ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no obstacle
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "already in use"
            return exc.strerror or str(exc)
    return None


class Command(BaseCommand):
    help = ("Migrate, create the demo workspace and users, then run the web server and a Celery worker "
            "on 127.0.0.1 (--public for every address).")

    def add_arguments(self, parser):
        parser.add_argument("--no-serve", action="store_true", help="only migrate and seed the demo data")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default=LOCAL,
                            help=f"address to bind (default {LOCAL}: this machine only)")
        parser.add_argument("--public", action="store_true",
                            help=f"bind {EVERYWHERE}: reachable from other machines, with DEBUG on and the demo "
                                 "passwords; for a trusted network only")
        parser.add_argument("--no-worker", action="store_true", help="do not start a Celery worker")
        parser.add_argument("--verbose", action="store_true",
                            help="show the web server's and the Celery worker's own start-up output")

    def handle(self, *args, no_serve: bool, port: int, host: str, public: bool, no_worker: bool, verbose: bool,
               **options):
        if public:
            host = EVERYWHERE
        if not no_serve:
            problem = port_problem(host, port)
            if problem:
                raise CommandError(f"port {port} on {host}: {problem}. Stop what uses it (another quickstart?) "
                                   f"or choose another port: manage.py quickstart --port {port + 1}")
        db = settings.DATABASES["default"]
        call_command("migrate", interactive=False, verbosity=0)
        call_command("seed_demo", stdout=self.stdout if verbose else io.StringIO())
        self.stdout.write(f"Database ready ({db['ENGINE'].rsplit('.', 1)[-1]}: {db['NAME']}); "
                          f"demo workspace “{DEMO_WORKSPACE}” loaded.")
        if no_serve:
            self._print_credentials()
            self.stdout.write("Serve it with: manage.py quickstart")
            return
        self._serve(host, port, worker=not no_worker, verbose=verbose)

    # --- what it prints ---------------------------------------------------------------------------------

    def _print_credentials(self) -> None:
        from django.contrib.auth import get_user_model

        users = {u.username: u for u in get_user_model().objects.filter(username__in=[u for u, _, _ in DEMO_USERS])}
        self.stdout.write("Demo users:")
        for username, password, role in DEMO_USERS:
            user = users.get(username)
            shown = password if user is not None and user.check_password(password) else "(password changed)"
            self.stdout.write(f"    {username:<6} / {shown:<11} ({role}{', staff' if username == 'admin' else ''})")

    def _print_open(self, host: str, port: int, *, worker: bool) -> None:
        from annotation.models import Dataset

        shown = LOCAL if host in (EVERYWHERE, "::") else host
        base = f"http://{shown if ':' not in shown else f'[{shown}]'}:{port}"
        self._print_credentials()
        self.stdout.write(self.style.SUCCESS(f"Open {base}/ and log in"
                                             f"{' (web server and worker' if worker else ' (web server'}"
                                             f" running; Ctrl-C stops {'both' if worker else 'it'})"))
        first = Dataset.objects.filter(workspace__name=DEMO_WORKSPACE).order_by("id").first()
        if first is not None:  # the main job: ranking, straight after login
            self.stdout.write(f"Start ranking: {base}/datasets/{first.pk}/annotate/   dashboard: {base}/datasets/{first.pk}/")
        if host not in (LOCAL, "localhost", "::1"):
            self.stdout.write(self.style.WARNING(
                f"Listening on {host}: other machines can reach it, with DEBUG on and the demo passwords above. "
                "Use a trusted network only."))

    # --- serving ------------------------------------------------------------------------------------------

    def _serve(self, host: str, port: int, *, worker: bool, verbose: bool) -> None:
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        quiet = {} if verbose else {"stdout": subprocess.DEVNULL}
        env = dict(os.environ)
        if host not in (LOCAL, "localhost", "::1") and "ALLOWED_HOSTS" not in env:
            env["ALLOWED_HOSTS"] = "*"  # asked for with --public / --host: answer to whatever name others use
        procs: list[tuple[str, subprocess.Popen]] = []
        if worker:
            worker_env = dict(env)
            if not verbose:  # Celery's warning about running as root and kombu's about the embedded broker's host name
                worker_env["PYTHONWARNINGS"] = "ignore:You're running the worker with superuser privileges"
            procs.append(("worker", subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "preflab", *([] if verbose else ["--quiet"]), "worker",
                 "--loglevel", "WARNING" if verbose else "ERROR", "--queues", settings.PREFLAB_CPU_QUEUE,
                 "--concurrency", "2", "--hostname", f"quickstart-{port}@%h"],
                cwd=settings.BASE_DIR, env=worker_env, **quiet)))
        procs.append(("web", subprocess.Popen([sys.executable, manage, "runserver", f"{host}:{port}", "--noreload"],
                                              cwd=settings.BASE_DIR, env=env, **quiet)))
        stopping = False
        failed: list[str] = []

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)  # Ctrl-C (also when started from a script that ignores it)
        announced = False
        deadline = time.monotonic() + READY_WAIT
        try:
            while not stopping:
                for name, proc in procs:
                    if proc.poll() is not None:
                        failed.append(f"the {name} process exited with code {proc.returncode}")
                        stopping = True
                        break
                if not stopping and not announced:
                    if _answers(host, port):
                        self._print_open(host, port, worker=worker)
                        announced = True
                    elif time.monotonic() > deadline:
                        failed.append(f"the web server did not answer on port {port} within {READY_WAIT:.0f} s")
                        stopping = True
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        self._stop(procs)
        if failed:
            raise CommandError("; ".join(failed) + " (run with --verbose to see its output)")

    def _stop(self, procs: list[tuple[str, subprocess.Popen]]) -> None:
        self.stdout.write("Stopping…")
        for _, proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"the {name} process did not stop in time; killing it")
                proc.kill()
                proc.wait()
        self.stdout.write("Stopped.")


def _answers(host: str, port: int) -> bool:
    """True once something accepts connections on the served port."""
    target = LOCAL if host == EVERYWHERE else ("::1" if host == "::" else host)
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        return False
