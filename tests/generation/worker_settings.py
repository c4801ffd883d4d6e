"""Settings of the Celery worker subprocesses in test_celery_worker.py: preflab's settings, plus a
Redis sweep for unacknowledged messages every second (kombu's default sweep runs every ~100 s), so
the chunk a SIGKILLed worker held is redelivered within seconds of CELERY_VISIBILITY_TIMEOUT."""
from preflab.settings import *  # noqa: F403

CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
                                   "unacked_restore_interval": 1, "unacked_restore_throttle": 1}
