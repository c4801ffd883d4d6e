"""PostgreSQL backend: Django's, with a connection health check that costs no round trip.

With persistent connections (CONN_MAX_AGE) Django checks a reused connection at the first query
of every request (CONN_HEALTH_CHECKS) by sending `SELECT 1`: one round trip per request, on the
annotation hot path a fifth of its statements. This backend asks the socket instead: an idle
connection (autocommit, no transaction open, nothing sent since the last answer) has nothing to
read unless the server spoke first, and the server speaks first only to end the session
(administrator shutdown or restart, pg_terminate_backend, idle timeouts: an error message, then
the connection closes) or to deliver a notice or a notification. So a quiet socket means a usable
connection, as far as `SELECT 1` could tell, and anything else (data waiting, the connection marked
closed or broken by psycopg, a transaction left open) falls back to Django's own check. What neither
check can see (a network path gone without the peer closing) fails the request's first query, as
it would one statement later with `SELECT 1`; Django then drops the connection at the request's end.

It also gives the hot path's fixed raw statements (annotation.hotpath, annotation.services' next
and submit) a cursor that binds parameters on the server (`hot_cursor`), so psycopg prepares each
statement once it ran `prepare_threshold` times on the connection (settings: 5, or
PREFLAB_DB_PREPARE_THRESHOLD; 0 turns it off, for a pooler in transaction mode without
prepared-statement support): PostgreSQL then skips parsing and planning them. The ORM keeps
Django's client-side binding, which psycopg never prepares.

And a transaction for the hot path's writes whose BEGIN and COMMIT cost no round trip of their own
(`hot_transaction`): its statements go in batches over psycopg's pipeline mode, BEGIN with the
first batch and COMMIT with the last, each batch one round trip (the statements stay separate,
each with its own READ COMMITTED snapshot, run in the order sent). Django's own transaction.atomic
cannot do this: psycopg sends its BEGIN lazily but waits for it in pipeline mode, and Django
commits after the block, so BEGIN and COMMIT would each be a round trip of their own.

The hot cursors are kept for reuse on their connection (a few idle ones): making a psycopg cursor
(its adapters, its loaders made again for every result) cost more than the statement's own Python.

And timestamps are loaded by psycopg's compiled loader: Django's (a Python subclass of psycopg's
Python loader, called for every timestamptz value) parses each in Python, then sets Django's time
zone on it; fast_tzloader gives the same values.
"""
from __future__ import annotations

import select
from contextlib import contextmanager
from functools import cache

from django.db import transaction
from django.db.backends import utils
from django.db.backends.postgresql import base
from psycopg import adapters as psycopg_adapters
from psycopg.adapt import Loader
from psycopg.pq import Format

_TIMESTAMPTZ_OID = psycopg_adapters.types["timestamptz"].oid


@cache
def fast_tzloader(tz):
    """A timestamptz loader giving what Django's (psycopg_any.register_tzloader) gives: the value
    read in the session's time zone, then `tz` set as its tzinfo (Django sets the session's time
    zone to its own when it connects, so there it is only the label: datetime.timezone.utc), with
    the parsing done by psycopg's default loader (compiled with psycopg[binary]) instead of Python."""
    parser = psycopg_adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT)

    class FastTzLoader(Loader):
        timezone = tz  # (Django's create_cursor compares it with its own)

        def __init__(self, oid, context=None):
            super().__init__(oid, context)
            self._parse = parser(oid, context).load

        def load(self, data):
            value = self._parse(data)
            return value if value is None or value.tzinfo is tz else value.replace(tzinfo=tz)

    return FastTzLoader


class _HotCursorWrapper(utils.CursorWrapper):
    """A hot cursor: closing it gives the psycopg cursor back to its connection for reuse (once: a
    second close does nothing; the cursor is not to be used after it)."""

    released = False

    def close(self):
        if not self.released:
            self.released = True
            self.db._hot_release(self.cursor)


class _HotCursorDebugWrapper(utils.CursorDebugWrapper):
    released = False
    close = _HotCursorWrapper.close


def socket_quiet(connection) -> bool:
    """Whether a psycopg connection is open, idle and has nothing waiting to be read."""
    import psycopg
    from psycopg import pq

    if connection.closed or connection.broken:
        return False
    if connection.info.transaction_status != pq.TransactionStatus.IDLE:
        return False
    try:
        poller = select.poll()
        poller.register(connection.pgconn.socket, select.POLLIN | select.POLLPRI)
        return not poller.poll(0)  # (errors and hang-ups are always reported)
    except (OSError, ValueError, psycopg.Error):  # no usable socket: let Django's own check decide
        return False


class DatabaseWrapper(base.DatabaseWrapper):
    _HOT_IDLE_MAX = 4  # idle hot cursors kept per connection (a request uses two at once)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._hot_idle = []  # (psycopg cursor, the time zones it loads timestamps with: _hot_zones)

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if base.is_psycopg3:
            connection.adapters.register_loader("timestamptz", fast_tzloader(self.timezone))
        return connection

    def hot_cursor(self):
        """A Django cursor (errors wrapped, queries logged as usual) whose parameters are bound on
        the server; for raw statements of fixed text run on every request. Its psycopg cursor is
        one the connection kept from an earlier hot cursor, when there is one."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            cursor = self._hot_take()
            self.validate_thread_sharing()
            return (_HotCursorDebugWrapper if self.queries_logged else _HotCursorWrapper)(cursor, self)

    def _hot_take(self):
        """A psycopg cursor binding parameters on the server, for the open connection: a kept one
        (_hot_release) when there is one, else a new one."""
        while self._hot_idle:
            kept, zones = self._hot_idle.pop()
            if kept.connection is self.connection and not kept.closed and zones == self._hot_zones():
                return kept
            kept.close()
        factory = self.connection.cursor_factory
        self.connection.cursor_factory = base.ServerBindingCursor
        try:
            return self.create_cursor()
        finally:
            self.connection.cursor_factory = factory

    def _hot_zones(self):
        """Django's time zone and the session's (a psycopg cursor keeps the loaders it made, and a
        timestamp loader the session's time zone it was made in): a kept cursor is reused while
        they stay (Django changes them together, when its settings change)."""
        return self.timezone, self.timezone_name

    def _hot_release(self, cursor):
        """Keep a closed hot cursor's psycopg cursor for the next one (while its connection is this
        wrapper's and out of pipeline mode, its results all read), else close it."""
        pg = self.connection
        if (len(self._hot_idle) < self._HOT_IDLE_MAX and pg is not None and cursor.connection is pg and not cursor.closed
                and not pg.closed and pg.pgconn.pipeline_status == 0):
            self._hot_idle.append((cursor, self._hot_zones()))
        else:
            cursor.close()

    def _close(self):
        idle, self._hot_idle = self._hot_idle, []
        for cursor, _ in idle:
            try:
                cursor.close()
            except Exception:  # noqa: BLE001 - the connection is closing anyway
                pass
        return super()._close()

    @contextmanager
    def hot_transaction(self):
        """A transaction of batches (HotTransaction.batch), committed at the end of the block (with
        the batch marked last, else by a COMMIT of its own) and rolled back on any exception.
        Inside an atomic block (or with autocommit off) it is a savepoint of that block, as
        transaction.atomic would make, and the batches carry no BEGIN or COMMIT.

        Django does not see this transaction (the connection stays in autocommit for it): nothing
        run inside may open a transaction.atomic block or rely on transaction.on_commit."""
        if self.in_atomic_block or not self.get_autocommit():
            with transaction.atomic(using=self.alias):
                yield HotTransaction(self, own=False)
            return
        self.close_if_health_check_failed()
        self.ensure_connection()
        tx = HotTransaction(self, own=True)
        try:
            yield tx
            if tx.begun and not tx.committed:
                with self.wrap_database_errors:
                    self.connection.execute("COMMIT", prepare=False)
        except BaseException:
            self._hot_rollback()
            raise

    def _hot_rollback(self):
        """End a failed hot transaction; a connection that cannot roll back is closed rather than
        left in a transaction for the next request to run in."""
        if self.connection is None:
            return
        try:
            with self.wrap_database_errors:
                self.connection.rollback()
        except Exception:  # noqa: BLE001 - the original exception is the one that matters
            try:
                self.close()
            except Exception:  # noqa: BLE001
                self.connection = None

    def close_if_health_check_failed(self):
        if self.connection is None or not self.health_check_enabled or self.health_check_done or self.pool:
            return super().close_if_health_check_failed()
        if not socket_quiet(self.connection) and not self.is_usable():
            self.close()
        self.health_check_done = True


class HotTransaction:
    """The batches of one DatabaseWrapper.hot_transaction."""

    def __init__(self, wrapper: DatabaseWrapper, *, own: bool):
        self.wrapper = wrapper
        self.own = own  # this transaction sends its own BEGIN and COMMIT (no atomic block around it)
        self.begun = False
        self.committed = False

    @contextmanager
    def batch(self, *, last: bool = False):
        """The statements executed in the block are sent without waiting and their results read at
        its end, all in one round trip (so a cursor's rows are there only after the block). The
        transaction's BEGIN goes before the first batch's statements; with `last`, its COMMIT after
        this batch's (nothing may be run in the transaction after it). An error of any statement
        is raised at the end of the block (the later statements were not run)."""
        pg = self.wrapper.connection
        commands = self.wrapper._hot_take() if self.own else None
        try:
            with self.wrapper.wrap_database_errors, pg.pipeline():
                if self.own and not self.begun:
                    self.begun = True
                    commands.execute("BEGIN", prepare=False)  # (no plan to prepare)
                yield
                if self.own and last:
                    commands.execute("COMMIT", prepare=False)
        finally:
            if commands is not None:
                self.wrapper._hot_release(commands)
        if self.own and last:
            self.committed = True
