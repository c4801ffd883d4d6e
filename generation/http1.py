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

Answers read: Content-Length bodies, chunked bodies, and bodies that end when the server closes; 1xx
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

MAX_HEAD = 64 * 1024  # an answer's status line and headers; more is not an HTTP server we talk to


class HttpProtocolError(ConnectionError):
    """The server's answer is not HTTP/1.x as this client reads it."""


class _StaleConnection(ConnectionError):
    """A kept-alive connection closed by the server before any byte of the answer came back."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = True
        self._waiter: asyncio.Future | None = None
        self._buf = bytearray()
        self._received = False  # any byte of the current answer
        self._head: tuple[int, dict[str, str]] | None = None
        self._mode = ""         # "length" | "chunked" | "close"
        self._length = 0
        self._body = bytearray()  # chunked: the chunks read so far

    # --- asyncio.Protocol ---
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():  # nothing asked: the connection is not usable
            self.close()
            return
        self._received = True
        self._buf += data
        try:
            self._parse()
        except HttpProtocolError as exc:
            self._fail(exc)
            self.close()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost ends the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._head is not None and self._mode == "close":
            status, headers = self._head
            self.keep_alive = False
            waiter.set_result((status, headers, bytes(self._buf)))
        elif not self._received:
            waiter.set_exception(_StaleConnection("the server closed the connection before answering"))
        else:
            waiter.set_exception(ConnectionError(f"the server closed the connection mid-answer ({exc or 'EOF'})"))

    # --- one request ---
    async def request(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._buf.clear()
        self._received, self._head, self._mode = False, None, ""
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

    def _parse(self) -> None:
        buf = self._buf
        while self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise HttpProtocolError("the answer's headers are too long")
                return
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[:end + 4]
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise HttpProtocolError(f"not an HTTP/1.x answer: {lines[0][:100]!r}")
            status = int(parts[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    name = name.strip().lower()
                    value = value.strip()
                    headers[name] = f"{headers[name]}, {value}" if name in headers else value
            if 100 <= status < 200:  # interim (100 Continue, 103 Early Hints): the answer follows
                continue
            connection = headers.get("connection", "").lower()
            self.keep_alive = parts[0] == "HTTP/1.1" and "close" not in connection
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._mode, self._length = "chunked", -1
                self._body.clear()
            elif "content-length" in headers:
                try:
                    self._mode, self._length = "length", int(headers["content-length"])
                except ValueError:
                    raise HttpProtocolError(f"bad Content-Length {headers['content-length']!r}")
            elif status in (204, 304):
                self._mode, self._length = "length", 0
            else:
                self._mode, self.keep_alive = "close", False
            self._head = (status, headers)
        status, headers = self._head
        if self._mode == "length":
            if len(buf) >= self._length:
                body = bytes(buf[:self._length])
                if len(buf) > self._length:  # more than the answer: the connection cannot be reused
                    self.keep_alive = False
                self._waiter.set_result((status, headers, body))
        elif self._mode == "chunked":
            self._chunks(status, headers)

    def _chunks(self, status: int, headers: dict[str, str]) -> None:
        buf = self._buf
        while True:
            if self._length < 0:  # a chunk's size line
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                try:
                    size = int(bytes(buf[:end]).split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise HttpProtocolError("bad chunk size")
                del buf[:end + 2]
                if size == 0:
                    self._length = 0
                else:
                    self._length = size
                    continue
            if self._length == 0:  # after the last chunk: trailers, then an empty line
                if buf[:2] == b"\r\n":
                    del buf[:2]
                else:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        return
                    del buf[:end + 4]
                if buf:
                    self.keep_alive = False
                self._waiter.set_result((status, headers, bytes(self._body)))
                return
            if len(buf) < self._length + 2:
                return
            self._body += buf[:self._length]
            del buf[:self._length + 2]
            self._length = -1


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
