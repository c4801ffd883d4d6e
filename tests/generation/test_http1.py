"""generation.http1: the HTTP/1.1 client of the LLM calls, against raw socket servers that answer the ways
HTTP servers do (Content-Length, chunked, until close, interim 100, keep-alive closed while idle)."""
import asyncio

import pytest

from generation.http1 import Http1Pool


class RawServer:
    """A TCP server that reads one request at a time and answers with `answers[i]` (bytes, sent as is),
    then closes the connection when `close_after[i]` is true. Counts connections and requests."""

    def __init__(self, answers, close_after=None, split=False):
        self.answers = list(answers)
        self.close_after = close_after or [False] * len(self.answers)
        self.split = split  # send each answer a few bytes at a time
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                answer, close = self.answers.pop(0), self.close_after.pop(0)
                if self.split:
                    for i in range(0, len(answer), 7):
                        writer.write(answer[i:i + 7])
                        await writer.drain()
                        await asyncio.sleep(0)
                else:
                    writer.write(answer)
                    await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def run(server: RawServer, bodies: list[bytes], headers=None):
    async def main():
        srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        pool = Http1Pool(f"http://127.0.0.1:{port}/v1/chat/completions", headers=headers)
        try:
            out = []
            for body in bodies:
                out.append(await pool.post(body))
                await asyncio.sleep(0.01)  # let a server's close arrive before the next request
            return out
        finally:
            await pool.close()
            srv.close()
            await srv.wait_closed()

    return asyncio.run(main())


def answer(body: bytes, status="200 OK", extra=b"") -> bytes:
    return b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: " + \
        str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body


@pytest.mark.parametrize("split", [False, True])
def test_content_length_answers_reuse_one_connection_and_the_request_is_well_formed(split):
    server = RawServer([answer(b'{"a": 1}'), answer(b'{"a": 2}', "429 Too Many Requests", b"Retry-After: 3\r\n")],
                       split=split)
    (s1, h1, b1), (s2, h2, b2) = run(server, [b'{"q": 1}', b'{"q": 22}'], headers={"Authorization": "Bearer k"})
    assert (s1, b1, s2, b2) == (200, b'{"a": 1}', 429, b'{"a": 2}')
    assert h2["retry-after"] == "3" and h1["content-type"] == "application/json"
    assert server.connections == 1
    head, _, body = server.requests[1].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
    assert {"Content-Length: 9", "Content-Type: application/json", "Authorization: Bearer k"} <= set(lines[1:])
    assert any(line.startswith("Host: 127.0.0.1:") for line in lines) and body == b'{"q": 22}'


@pytest.mark.parametrize("split", [False, True])
def test_chunked_answer_with_trailers_and_an_interim_100(split):
    chunked = (b"HTTP/1.1 100 Continue\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4;ext=1\r\n{\"ch\r\n6\r\nunked\"\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n")
    server = RawServer([chunked, answer(b"{}")], split=split)
    (s1, _h1, b1), (s2, _h2, b2) = run(server, [b"{}", b"{}"])
    assert (s1, b1) == (200, b'{"chunked"}') and (s2, b2) == (200, b"{}")
    assert server.connections == 1  # the chunked answer ended cleanly: the connection was kept


def test_an_answer_delimited_by_the_close_and_connection_close_answers_open_a_new_connection():
    until_close = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"till\": \"close\"}"
    server = RawServer([until_close, answer(b"{}", extra=b"Connection: close\r\n"), answer(b"{}")],
                       close_after=[True, True, False])
    results = run(server, [b"{}", b"{}", b"{}"])
    assert [r[2] for r in results] == [b'{"till": "close"}', b"{}", b"{}"]
    assert server.connections == 3


def test_a_kept_alive_connection_the_server_closed_while_idle_is_replaced_once_transparently():
    # the server closes after the first answer without saying so: the next request finds it closed and is
    # sent again on a new connection
    server = RawServer([answer(b'{"n": 1}'), answer(b'{"n": 2}')], close_after=[True, False])
    results = run(server, [b"{}", b"{}"])
    assert [r[2] for r in results] == [b'{"n": 1}', b'{"n": 2}']
    assert server.connections == 2 and len(server.requests) == 2


def test_a_connection_closed_mid_answer_or_before_any_answer_is_a_connection_error():
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"short\""
    server = RawServer([cut], close_after=[True])
    with pytest.raises(ConnectionError, match="mid-answer"):
        run(server, [b"{}"])
    silent = RawServer([b""], close_after=[True])  # reads the request, answers nothing, closes
    with pytest.raises(ConnectionError, match="before answering"):
        run(silent, [b"{}"])


def test_not_http_and_bad_urls_are_refused():
    with pytest.raises(ConnectionError, match="not an HTTP/1.x answer"):
        run(RawServer([b"SSH-2.0-OpenSSH\r\n\r\n"], close_after=[True]), [b"{}"])
    with pytest.raises(ValueError, match="not an http"):
        Http1Pool("ftp://example.com/x")


@pytest.mark.parametrize("split", [False, True])
def test_malformed_answers_are_connection_errors_for_the_retries(split):
    bad_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    with pytest.raises(ConnectionError, match="malformed answer"):
        run(RawServer([bad_chunk], close_after=[True], split=split), [b"{}"])
    bad_status = b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n{}"
    with pytest.raises(ConnectionError, match="not an HTTP/1.x answer"):
        run(RawServer([bad_status], close_after=[True], split=split), [b"{}"])


def test_headers_past_the_limit_are_refused():
    huge = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * (70 * 1024) + b"\r\nContent-Length: 2\r\n\r\n{}"
    with pytest.raises(ConnectionError, match="headers are too long"):
        run(RawServer([huge], close_after=[True]), [b"{}"])


def test_http10_answers_and_answers_followed_by_stray_bytes_are_not_kept_alive():
    http10 = b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\n{\"n\": 1}"
    trailing = answer(b'{"n": 2}') + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"  # an answer nobody asked for
    server = RawServer([http10, trailing, answer(b'{"n": 3}')], close_after=[False, False, False])
    results = run(server, [b"{}", b"{}", b"{}"])
    assert [(r[0], r[2]) for r in results] == [(200, b'{"n": 1}'), (200, b'{"n": 2}'), (200, b'{"n": 3}')]
    assert server.connections == 3


def test_an_upgrade_nobody_asked_for_is_a_connection_error_not_a_hang():
    upgrade = b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    with pytest.raises(ConnectionError, match="switched protocols"):
        run(RawServer([upgrade], close_after=[False]), [b"{}"])
