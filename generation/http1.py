"""A small asyncio HTTP/1.1 client for the LLM calls: keep-alive connections to one origin, a POST of a
JSON body, the answer's status, headers and body.

    pool = Http1Pool("https://api.example.com/v1/chat/completions", headers={"Authorization": "Bearer ..."})
    status, headers, body = await pool.post(b'{"model": ...}')      # headers: lower-case names
    await pool.close()

Why not aiohttp: its client spends 0.2-0.3 ms of CPU in Python on each request (header multidicts, URL
objects, tracing signals, cookie handling, timers), a third of all the CPU a judge job spends on a record,
on the thread that must keep hundreds of calls in flight. A chat completion needs none of it: one origin,
one method, a body with a Content-Length, a JSON answer. This client does that, over asyncio's own
transports (TLS by the standard ssl module, one context per pool).

Answers are read by httptools (llhttp, Node.js's HTTP parser), not by hand: Content-Length bodies,
chunked bodies, and bodies that end when the server closes; malformed answers raise HttpProtocolError; 1xx
interim answers are skipped; `Connection: close` (or HTTP/1.0) closes the connection after the answer.
Not done, as with the aiohttp client it replaces: redirects (a 3xx is the answer), proxies, cookies,
compressed bodies (it asks for none). A request sent on a kept-alive connection that the server had
closed meanwhile (nothing of an answer came back) is sent again once on a new connection, as browsers
and urllib3 do; any other connection failure raises ConnectionError for the caller's retries.
"""
from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import httptools

MAX_HEAD = 64 * 1024  # an answer's status line and headers; more is not an HTTP server we talk to


class HttpProtocolError(ConnectionError):
    """The server's answer is not HTTP/1.x as this client reads it."""


class _StaleConnection(ConnectionError):
    """A kept-alive connection closed by the server before any byte of the answer came back."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one request at a time. The answer is read by httptools (llhttp, the
    parser of Node.js): status line, headers, Content-Length / chunked / close-delimited bodies."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = True
        self._waiter: asyncio.Future | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._received = False  # any byte of the current answer
        self._head_bytes = 0    # bytes read before the answer's headers ended
        self._head_size = 0     # the headers' names and values
        self._status = 0
        self._headers: dict[str, str] = {}
        self._head_done = False
        self._body: list[bytes] = []
        self._answer: tuple[int, dict[str, str], bytes] | None = None

    # --- asyncio.Protocol ---
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():  # nothing asked: the connection is not usable
            self.close()
            return
        self._received = True
        try:
            if not self._head_done:
                self._head_bytes += len(data)
            self._parser.feed_data(data)
            if not self._head_done and self._head_bytes > MAX_HEAD:
                raise HttpProtocolError("the answer's headers are too long")
        except httptools.HttpParserUpgrade:  # never asked for
            self._fail(HttpProtocolError("the server switched protocols, which this client never asks for"))
            self.close()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HttpProtocolError):  # raised by a callback below
                self._fail(exc.__context__)
            elif self._answer is None:
                what = "malformed answer" if self._head_done else "not an HTTP/1.x answer"
                self._fail(HttpProtocolError(f"{what}: {exc}"))
            self.keep_alive = False  # bytes after the answer that are no answer: the connection cannot be reused
            self.close()
        except HttpProtocolError as exc:
            self._fail(exc)
            self.close()
            return
        if self._answer is not None and not self._waiter.done():
            self._waiter.set_result(self._answer)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost ends the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._answer is not None:
            waiter.set_result(self._answer)
        elif self._head_done and self._until_close():
            self.keep_alive = False
            waiter.set_result((self._status, self._headers, b"".join(self._body)))
        elif not self._received:
            waiter.set_exception(_StaleConnection("the server closed the connection before answering"))
        else:
            waiter.set_exception(ConnectionError(f"the server closed the connection mid-answer ({exc or 'EOF'})"))

    # --- httptools callbacks ---
    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value)
        if self._head_size > MAX_HEAD:
            raise HttpProtocolError("the answer's headers are too long")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip()
        headers = self._headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._head_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._answer is not None:  # a second answer to one request: the connection cannot be reused
            self.keep_alive = False
            return
        if 100 <= self._status < 200:  # interim (100 Continue, 103 Early Hints): the answer follows
            self._headers, self._body, self._head_done, self._head_bytes, self._head_size = {}, [], False, 0, 0
            return
        self.keep_alive = self._parser.get_http_version() == "1.1" and self._parser.should_keep_alive()
        self._answer = (self._status, self._headers, b"".join(self._body))

    def on_message_begin(self) -> None:
        if self._answer is not None:  # more than the answer: the connection cannot be reused
            self.keep_alive = False

    def _until_close(self) -> bool:
        """The answer's body ends when the server closes (neither a length nor chunks)."""
        return "content-length" not in self._headers and "chunked" not in self._headers.get("transfer-encoding", "").lower()

    # --- one request ---
    async def request(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._received, self._head_bytes, self._head_size, self._head_done = False, 0, 0, False
        self._status, self._headers, self._body, self._answer = 0, {}, [], None
        if self.closed:
            raise _StaleConnection("the server closed the connection")
        self.transport.write(data)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)


class Http1Pool:
    """Keep-alive connections to the origin of `url`, each used by one request at a time (the caller
    bounds how many run at once)."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        host = f"[{self.host}]" if ":" in self.host else self.host
        if parts.port and parts.port != (443 if self.ssl else 80):
            host = f"{host}:{parts.port}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity",
                 "Content-Type: application/json"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _transport, conn = await loop.create_connection(
            _Connection, self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None)
        return conn

    async def post(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        data = b"".join((self._head, str(len(body)).encode(), b"\r\n\r\n", body))
        while True:
            conn = None
            while self._idle:
                candidate = self._idle.pop()
                if not candidate.closed:
                    conn = candidate
                    break
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                answer = await conn.request(data)
            except _StaleConnection:
                conn.close()
                if reused:
                    continue  # the server had closed it while idle: send on another connection
                raise ConnectionError("the server closed the connection before answering")
            except BaseException:
                conn.close()  # cancelled (timeout) or failed mid-answer: its state is unknown
                raise
            if conn.keep_alive and not conn.closed:
                self._idle.append(conn)
            else:
                conn.close()
            return answer

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
