"""Hostile request bodies over a raw socket against a real proxy process (issue 15 items 4-7):
lone surrogates, NaN / Infinity, absurd `max_tokens`, over-limit bodies (413 that arrives),
slow and incomplete bodies (408 within `TIERWISE_BODY_TIMEOUT_S`, and a cap on how many may
wait at once). Each answer is API-shaped and the proxy log needs no traceback to explain it."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest

from router.server.body import MAX_TOKENS, MAX_WAITING_BODIES
from router.testing.processes import ServerProcess
from tests.conftest import StartProxy, write_policy

TIMEOUT_S = 1.5
CHAT = '{"model": "auto", "messages": [{"role": "user", "content": %s}]%s}'
MESSAGES = '{"model": "cheap", "max_tokens": %s, "messages": [{"role": "user", "content": %s}]}'
COUNT = '{"model": "cheap", "messages": [{"role": "user", "content": %s}]%s}'


@pytest.fixture(scope="module")
def proxy(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    policy = write_policy(
        tmp_path_factory.mktemp("bodies") / "policy.yaml",
        fake_upstream.url,
        budgets=[{"scope": "global", "window": "day", "limit_usd": 100}],
    )
    return start_proxy(policy, env={"TIERWISE_BODY_TIMEOUT_S": str(TIMEOUT_S)})


def _connect(proxy: ServerProcess) -> socket.socket:
    port = int(proxy.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(30)
    return sock


def _head(path: str, length: int | None = None, close: bool = True) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    lines.append(framing)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of the one answer on `sock` (read until it closes)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def _post(proxy: ServerProcess, path: str, raw: bytes) -> tuple[int, dict[str, str], Any]:
    sock = _connect(proxy)
    sock.sendall(_head(path, len(raw)) + raw)
    return _answer(sock)


def _message(path: str, body: Any) -> str:
    if path.startswith("/v1/messages"):
        assert body["type"] == "error"
    message: str = body["error"]["message"]
    return message


def _log_is_clean(proxy: ServerProcess) -> None:
    assert proxy.log is not None
    log = proxy.log.read_text(errors="replace")
    assert "Traceback" not in log and "Exception in ASGI" not in log


ENDPOINTS = {
    "/v1/chat/completions": lambda content, extra="": CHAT % (content, extra),
    "/v1/messages": lambda content, extra="": MESSAGES % ("16" + extra, content),
    "/v1/messages/count_tokens": lambda content, extra="": COUNT % (content, extra),
}


# -- item 4: a lone surrogate --------------------------------------------------------------------


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_a_lone_surrogate_is_400(proxy: ServerProcess, path: str) -> None:
    status, _, body = _post(proxy, path, ENDPOINTS[path](r'"a\ud800b"').encode())
    assert status == 400, body
    assert "lone UTF-16 surrogate escape (\\ud800 without its pair)" in _message(path, body)
    _log_is_clean(proxy)


def test_a_surrogate_pair_still_passes(proxy: ServerProcess) -> None:
    raw = (COUNT % (r'"\ud83d\ude00"', "")).encode()
    status, _, body = _post(proxy, "/v1/messages/count_tokens", raw)
    assert status == 200 and body["input_tokens"] > 0


# -- item 5: NaN, Infinity and absurd max_tokens --------------------------------------------------


@pytest.mark.parametrize("path", list(ENDPOINTS))
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_400(proxy: ServerProcess, path: str, literal: str) -> None:
    extra = f', "temperature": {literal}' if path != "/v1/messages" else ""
    raw = ENDPOINTS[path]('"hi"', extra)
    if path == "/v1/messages":
        raw = raw.replace('"max_tokens": 16', f'"max_tokens": 16, "temperature": {literal}')
    status, _, body = _post(proxy, path, raw.encode())
    assert status == 400, body
    assert "not valid JSON" in _message(path, body) and literal in _message(path, body)


@pytest.mark.parametrize("value", [10**30, MAX_TOKENS + 1])
def test_absurd_max_tokens_is_400_not_a_budget_refusal(proxy: ServerProcess, value: int) -> None:
    status, _, body = _post(
        proxy, "/v1/chat/completions", (CHAT % ('"hi"', f', "max_tokens": {value}')).encode()
    )
    assert status == 400, body
    assert f"'max_tokens' must be at most {MAX_TOKENS}" in body["error"]["message"]
    status, _, body = _post(proxy, "/v1/messages", (MESSAGES % (value, '"hi"')).encode())
    assert status == 400, body
    assert f"max_tokens: must be at most {MAX_TOKENS}" in _message("/v1/messages", body)


# -- item 6: over-limit bodies get their 413 -------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_an_over_limit_body_with_content_length_gets_its_413(
    proxy: ServerProcess, path: str
) -> None:
    size = 10 * 1024 * 1024 + 10
    sock = _connect(proxy)
    sock.sendall(_head(path, size) + b" " * size)
    status, headers, body = _answer(sock)
    assert status == 413
    assert "exceeds the limit of 10485760 bytes" in _message(path, body)
    assert headers["connection"] == "close"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_an_over_limit_chunked_body_gets_its_413(proxy: ServerProcess, path: str) -> None:
    sock = _connect(proxy)
    sock.sendall(_head(path))
    piece = b" " * 65536
    for _ in range(12 * 16):  # 12 MiB
        sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
    sock.sendall(b"0\r\n\r\n")
    status, _, body = _answer(sock)
    assert status == 413
    assert "exceeds the limit" in _message(path, body)
    _log_is_clean(proxy)


# -- item 7: slow and incomplete bodies -----------------------------------------------------------


def test_an_incomplete_body_gets_408_after_the_timeout(proxy: ServerProcess) -> None:
    for path in ENDPOINTS:
        sock = _connect(proxy)
        started = time.monotonic()
        sock.sendall(_head(path, 1000, close=False) + b'{"model": "auto"')
        status, headers, body = _answer(sock)
        assert status == 408, body
        assert TIMEOUT_S <= time.monotonic() - started < TIMEOUT_S + 3
        assert "16 of 1000 bytes within 1.5s (TIERWISE_BODY_TIMEOUT_S)" in _message(path, body)
        assert headers["connection"] == "close"
    _log_is_clean(proxy)


def test_twenty_trickling_bodies_all_get_408_while_normal_traffic_flows(
    proxy: ServerProcess,
) -> None:
    results: list[int] = []

    def trickle() -> None:
        sock = _connect(proxy)
        sock.sendall(_head("/v1/chat/completions", 500, close=False))
        sock.settimeout(0.2)
        status = 0
        for byte in b" " * 40:  # 1 byte per 0.2 s: 8 s, far past the timeout
            try:
                sock.sendall(bytes([byte]))
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            status = int(data.split()[1]) if data else 0
            break
        results.append(status)
        sock.close()

    threads = [threading.Thread(target=trickle) for _ in range(20)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    status, _, body = _post(proxy, "/v1/chat/completions", (CHAT % ('"hi"', "")).encode())
    assert status == 200, body
    for thread in threads:
        thread.join()
    assert results == [408] * 20
    assert time.monotonic() - started < TIMEOUT_S + 4


def test_past_the_cap_a_waiting_body_gets_only_the_grace(
    start_proxy: StartProxy, fake_upstream: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    policy = write_policy(tmp_path_factory.mktemp("cap") / "policy.yaml", fake_upstream.url)
    proxy = start_proxy(policy, env={"TIERWISE_BODY_TIMEOUT_S": "30"})
    waiting = []
    for _ in range(MAX_WAITING_BODIES):
        sock = _connect(proxy)
        sock.sendall(_head("/v1/chat/completions", 100, close=False) + b"{")
        waiting.append(sock)
    time.sleep(0.5)  # all of them are waiting now
    started = time.monotonic()
    sock = _connect(proxy)
    sock.sendall(_head("/v1/chat/completions", 100, close=False) + b"{")
    status, _, body = _answer(sock)
    assert status == 408, body
    assert time.monotonic() - started < 3  # the grace (1 s), not the 30 s timeout
    status, _, body = _post(proxy, "/v1/chat/completions", (CHAT % ('"hi"', "")).encode())
    assert status == 200, body  # a body that is all there is never refused
    for sock in waiting:
        sock.close()
