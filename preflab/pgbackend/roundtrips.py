"""The round trips a block of code makes to PostgreSQL, counted at psycopg's level: each time the
client sends something and then waits for the server's answer, so BEGIN, COMMIT and Django's health
check count, not only the statements Django logs.

    with round_trips() as trips:
        ...
    trips.count

psycopg runs every operation as a generator through Connection.wait; the count follows their kind:
  * a statement outside pipeline mode is one (two when psycopg first sends the BEGIN it owes:
    autocommit off and no transaction open);
  * in pipeline mode a statement is sent without waiting; the wait is at the pipeline's sync (a
    commit, a rollback or the end of the pipeline block) or when a cursor's rows are fetched early:
    one each;
  * setting autocommit and entering a pipeline send nothing (unless a pipeline has to sync first).
A statement psycopg prepares the first time it is executed outside a pipeline is one trip more
than counted here (once per statement and connection). Every connection of the process counts:
use it where one thread works.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class RoundTrips:
    count: int = 0


@contextmanager
def round_trips():
    import psycopg

    idle = psycopg.pq.TransactionStatus.IDLE
    original = psycopg.Connection.wait
    trips = RoundTrips()

    def counting_wait(self, gen, *args, **kwargs):
        name = getattr(gen, "__qualname__", "")
        pipeline = self._pipeline
        if name.endswith("_set_autocommit_gen"):
            trips.count += bool(pipeline and self.pgconn.transaction_status == idle)  # (a sync first)
        elif name.endswith("_enter_gen"):
            trips.count += bool(pipeline and pipeline.level and pipeline.command_queue)
        elif name.endswith("_execute_gen"):
            trips.count += not pipeline
            trips.count += not self.autocommit and self.pgconn.transaction_status == idle  # the BEGIN
        else:
            trips.count += 1
        return original(self, gen, *args, **kwargs)

    psycopg.Connection.wait = counting_wait
    try:
        yield trips
    finally:
        psycopg.Connection.wait = original
