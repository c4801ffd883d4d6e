"""The preflab Django project.

The Celery app (preflab.celery) is not loaded when Django starts: a process that never sends a task (a
`manage.py judge` run, `migrate`, most commands) does not pay for importing Celery and kombu (~0.2 s of
CPU at every start). It loads where it is needed: `celery -A preflab worker` finds preflab.celery, and
annotation.tasks loads the app settings.PREFLAB_CELERY_APP names before its task is bound or sent.
`preflab.celery_app` still gives the app (loading it)."""


def __getattr__(name: str):
    if name == "celery_app":
        from .celery import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ("celery_app",)
