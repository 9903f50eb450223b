"""Request validation, auth and usage sniffing (pure parts of the router)."""

from __future__ import annotations

import json

import pytest

from policies import Access
from policies.budgets import key_label
from router.auth import AccessConfigError, Caller, KeyChecker, caller_key, parse_keys
from router.errors import BadRequest, Forbidden, Unauthorized
from router.requests import parse_chat_request
from router.upstream import UsageTap


def test_valid_body_is_returned_as_is() -> None:
    raw = b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "seed": 1}'
    assert parse_chat_request(raw)["seed"] == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'"text"',
        b'{"model": 1, "messages": []}',
        b'{"model": "a", "messages": {}}',
        b'{"model": "a", "messages": ["x"]}',
        b"\xff\xfe",
    ],
)
def test_bad_bodies(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_chat_request(raw)


def test_caller_key_sources() -> None:
    assert caller_key({"authorization": "Bearer abc"}) == "abc"
    assert caller_key({"authorization": "Basic abc"}) is None
    assert caller_key({"x-api-key": " k "}) == "k"
    assert caller_key({}) is None


def test_key_checker_labels_and_teams() -> None:
    access = Access(open=False, keys_env="K", teams={"research": ["alice"]})
    checker = KeyChecker(access, {"K": "alice=sk-a, sk-b"})
    assert checker.check({"authorization": "Bearer sk-a"}) == Caller("alice", "research")
    assert checker.check({"x-api-key": "sk-b"}) == Caller(key_label("sk-b"), None)
    assert checker.labels == sorted(["alice", key_label("sk-b")])
    with pytest.raises(Unauthorized, match="invalid"):
        checker.check({"authorization": "Bearer sk-c"})
    with pytest.raises(Unauthorized, match="missing"):
        checker.check({})
    assert KeyChecker(Access(open=True), {}).check({}) == Caller(None, None)


def test_parse_keys() -> None:
    assert parse_keys(" alice=sk-1 ,sk-2,, ") == {"sk-1": "alice", "sk-2": key_label("sk-2")}


def test_admin_keys() -> None:
    access = Access(open=True, admin_keys_env="ADMIN")
    with pytest.raises(Forbidden, match="disabled"):
        KeyChecker(access, {}).check_admin({"authorization": "Bearer x"})
    checker = KeyChecker(access, {"ADMIN": "root-key"})
    checker.check_admin({"authorization": "Bearer root-key"})
    with pytest.raises(Unauthorized):
        checker.check_admin({"authorization": "Bearer nope"})


def test_closed_access_without_keys_refuses_to_start() -> None:
    with pytest.raises(AccessConfigError, match="holds no keys"):
        KeyChecker(Access(open=False, keys_env="K"), {})
    with pytest.raises(AccessConfigError, match="keys_env is not set"):
        KeyChecker(Access(open=False, keys_env=None), {})


def _event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def test_usage_tap_finds_usage_split_across_chunks() -> None:
    sniffer = UsageTap()
    stream = (
        _event({"choices": [{"delta": {"content": "hi"}}]})
        + _event({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
        + b"data: [DONE]\n\n"
    )
    cut = stream.index(b'"usage"') + 12
    out = b"".join(sniffer.feed(chunk) for chunk in (stream[:cut], stream[cut:]))
    out += sniffer.finish()
    assert out == stream  # nothing lost or reordered
    assert sniffer.usage is not None
    assert (sniffer.usage.prompt_tokens, sniffer.usage.completion_tokens) == (7, 3)


def test_usage_tap_ignores_null_usage_and_garbage() -> None:
    sniffer = UsageTap(strip=True)
    raw = _event({"usage": None}) + b'data: {"usage": broken\n\n'
    assert sniffer.feed(raw) + sniffer.finish() == raw
    assert sniffer.usage is None


def test_usage_tap_strips_the_usage_only_event_when_asked() -> None:
    content = _event({"choices": [{"delta": {"content": "hi"}}]})
    usage = _event({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 1}})
    done = b"data: [DONE]\n\n"
    tap = UsageTap(strip=True)
    assert tap.feed(content) is content  # untouched chunks are passed as the same object
    assert tap.feed(usage + done) + tap.finish() == done
    assert tap.usage is not None and tap.usage.prompt_tokens == 2
