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
"""
from __future__ import annotations

import select

from django.db.backends.postgresql import base


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
    def hot_cursor(self):
        """A Django cursor (errors wrapped, queries logged as usual) whose parameters are bound on
        the server; for raw statements of fixed text run on every request."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        factory = self.connection.cursor_factory
        self.connection.cursor_factory = base.ServerBindingCursor
        try:
            return self._cursor()
        finally:
            self.connection.cursor_factory = factory

    def close_if_health_check_failed(self):
        if self.connection is None or not self.health_check_enabled or self.health_check_done or self.pool:
            return super().close_if_health_check_failed()
        if not socket_quiet(self.connection) and not self.is_usable():
            self.close()
        self.health_check_done = True
