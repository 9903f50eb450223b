"""Request validation, auth and usage sniffing (pure parts of the router)."""

from __future__ import annotations

import json

import pytest

from policies import Access
from router.auth import AccessConfigError, KeyChecker, caller_key
from router.errors import BadRequest, Unauthorized
from router.requests import parse_chat_request
from router.upstream import UsageSniffer


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


def test_key_checker() -> None:
    checker = KeyChecker(Access(open=False, keys_env="K"), {"K": "a, b"})
    assert checker.check({"authorization": "Bearer b"}) == "b"
    with pytest.raises(Unauthorized, match="invalid"):
        checker.check({"authorization": "Bearer c"})
    with pytest.raises(Unauthorized, match="missing"):
        checker.check({})
    assert KeyChecker(Access(open=True), {}).check({}) is None


def test_closed_access_without_keys_refuses_to_start() -> None:
    with pytest.raises(AccessConfigError, match="holds no keys"):
        KeyChecker(Access(open=False, keys_env="K"), {})
    with pytest.raises(AccessConfigError, match="keys_env is not set"):
        KeyChecker(Access(open=False, keys_env=None), {})


def _event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def test_usage_sniffer_finds_usage_split_across_chunks() -> None:
    sniffer = UsageSniffer()
    stream = (
        _event({"choices": [{"delta": {"content": "hi"}}]})
        + _event({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
        + b"data: [DONE]\n\n"
    )
    cut = stream.index(b'"usage"') + 12
    for chunk in (stream[:cut], stream[cut:]):
        sniffer.feed(chunk)
    sniffer.finish()
    assert sniffer.usage is not None
    assert (sniffer.usage.prompt_tokens, sniffer.usage.completion_tokens) == (7, 3)


def test_usage_sniffer_ignores_null_usage_and_garbage() -> None:
    sniffer = UsageSniffer()
    sniffer.feed(_event({"usage": None}) + b'data: {"usage": broken\n\n')
    sniffer.finish()
    assert sniffer.usage is None
