"""One command from a bare machine to a running preflab: migrate, seed the demo, serve, work.

    python manage.py quickstart             # http://127.0.0.1:8000/, Ctrl-C stops everything
    python manage.py quickstart --port 8080
    python manage.py quickstart --no-serve  # only migrate and seed
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from .seed_demo import DEMO_USERS


class Command(BaseCommand):
    help = "Migrate, create the demo workspace and users, then run the web server and a Celery worker."

    def add_arguments(self, parser):
        parser.add_argument("--no-serve", action="store_true", help="only migrate and seed the demo data")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
        parser.add_argument("--no-worker", action="store_true", help="do not start a Celery worker")

    def handle(self, *args, no_serve: bool, port: int, host: str, no_worker: bool, **options):
        db = settings.DATABASES["default"]
        self.stdout.write(self.style.MIGRATE_HEADING(f"1/3 Migrating the database ({db['ENGINE'].rsplit('.', 1)[-1]}: {db['NAME']})"))
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write(self.style.MIGRATE_HEADING("2/3 Loading the demo workspace"))
        call_command("seed_demo", stdout=self.stdout)
        self._print_credentials(host, port)
        if no_serve:
            return
        self.stdout.write(self.style.MIGRATE_HEADING("3/3 Starting the web server and a worker (Ctrl-C stops both)"))
        self._serve(host, port, worker=not no_worker)

    def _print_credentials(self, host: str, port: int) -> None:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"  Open http://{shown}:{port}/ and log in as:"))
        for username, password, role in DEMO_USERS:
            self.stdout.write(f"    {username:<6} / {password:<11} ({role}{', staff' if username == 'admin' else ''})")
        from annotation.models import Dataset

        first = Dataset.objects.filter(workspace__name="Demo").order_by("id").first()
        if first is not None:  # the main job: ranking, straight after login
            self.stdout.write(self.style.SUCCESS(
                f"  Start ranking: http://{shown}:{port}/datasets/{first.pk}/annotate/   "
                f"dashboard: http://{shown}:{port}/datasets/{first.pk}/"))
        self.stdout.write("")

    def _serve(self, host: str, port: int, *, worker: bool) -> None:
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        procs: list[tuple[str, subprocess.Popen]] = []
        if worker:
            procs.append(("worker", subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "preflab", "worker", "--loglevel", "WARNING",
                 "--queues", settings.PREFLAB_CPU_QUEUE, "--concurrency", "2", "--hostname", f"quickstart-{port}@%h"],
                cwd=settings.BASE_DIR)))
        procs.append(("web", subprocess.Popen([sys.executable, manage, "runserver", f"{host}:{port}", "--noreload"],
                                              cwd=settings.BASE_DIR)))
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)  # Ctrl-C (also when started from a script that ignores it)
        try:
            while not stopping:
                for name, proc in procs:
                    if proc.poll() is not None:
                        self.stderr.write(f"the {name} process exited with code {proc.returncode}; stopping")
                        stopping = True
                        break
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        self.stdout.write("\nStopping…")
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
        self.stdout.write(self.style.SUCCESS("Stopped."))
