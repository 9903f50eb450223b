"""Request validation, auth and usage sniffing (pure parts of the router)."""

from __future__ import annotations

import json

import pytest

from policies import Access
from policies.budgets import key_label
from router.errors import BadRequest, Forbidden, Unauthorized
from router.gates.access import AccessConfigError, Caller, KeyChecker, caller_key, parse_keys
from router.server.body import MAX_JSON_DEPTH, json_depth, parse_chat_request, parse_json
from router.upstreams.base import UsageTap


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


def _chat(**fields: object) -> bytes:
    body = {"model": "auto", "messages": [{"role": "user", "content": "x"}], **fields}
    return json.dumps(body).encode()


def _user(content: object) -> bytes:
    return _chat(messages=[{"role": "user", "content": content}])


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (_user(5), "messages[0].content must be a string or a list of content parts, not a number"),
        (_user({"text": "x"}), "messages[0].content must be a string"),
        (_user([1, 2]), "messages[0].content[0] must be a content part"),
        (_user(["x"]), "not a string"),
        (_user([{"text": "x"}]), "an object without a 'type'"),
        (_user([{"type": "text", "text": 3}]), "messages[0].content[0].text must be a string"),
        (_user(None), "messages[0].content is required for role 'user'"),
        (_chat(messages=[{"role": "system"}]), "content is required for role 'system'"),
        (_chat(messages=[7]), "messages[0] must be an object, not a number"),
        (_chat(max_tokens="lots"), "'max_tokens' must be a positive integer, not a string"),
        (_chat(max_tokens=-5), "'max_tokens' must be a positive integer, not -5"),
        (_chat(max_tokens=0), "'max_tokens'"),
        (_chat(max_tokens=1.5), "'max_tokens' must be a positive integer, not a number"),
        (_chat(max_tokens=True), "not a boolean"),
        (_chat(max_completion_tokens=-1), "'max_completion_tokens'"),
        (_chat(n=0), "'n' must be a positive integer"),
        (_chat(n="2"), "'n'"),
        (_chat(stream="yes"), "'stream' must be a boolean, not a string"),
        (_chat(stream=1), "'stream'"),
        (_chat(stream_options=True), "'stream_options' must be an object"),
        (_chat(response_format="json"), "'response_format' must be an object"),
    ],
)
def test_fields_the_proxy_relies_on_are_checked(raw: bytes, needle: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_chat_request(raw)
    assert needle in caught.value.message


@pytest.mark.parametrize(
    "raw",
    [
        _chat(max_tokens=None, max_completion_tokens=None, n=None, stream=None),
        _chat(max_tokens=1, max_completion_tokens=5, n=3, stream=False),
        _chat(stream_options={"include_usage": True}, response_format={"type": "json_object"}),
        _user([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "u"}}]),
        _user([{"type": "input_audio", "input_audio": {"data": "..", "format": "wav"}}]),
        _user(""),
        _chat(
            messages=[
                {"role": "user", "content": "call it"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
                {"role": "assistant"},
                {"role": "tool", "tool_call_id": "1", "content": [{"type": "text", "text": "r"}]},
                {"role": "ipython", "content": None},
            ],
            tools=[{"type": "function", "function": {"name": "f"}}],
            logit_bias={"50256": -100},
            vendor_extension=[1, {"anything": ["goes"]}],
        ),
    ],
)
def test_valid_shapes_and_everything_else_pass_through(raw: bytes) -> None:
    assert parse_chat_request(raw) == json.loads(raw)


def _nested(depth: int, open_: str = "[", close: str = "]") -> bytes:
    return (open_ * depth + close * depth).encode()


def test_json_depth_counts_structure_not_strings() -> None:
    assert json_depth(b'"x"') == 0
    assert json_depth(b"[]") == 1
    assert json_depth(b'{"a": [{"b": [1, 2]}, []]}') == 4
    assert json_depth(_nested(300)) == 300
    assert json_depth(b'{"a": "[[[[{{{{", "b": "\\\\", "c": "\\"[[[["}') == 1
    assert json_depth(b'["\\\\\\"[[", [["\\\\"]]]') == 3
    deep = json.dumps({"m": [{"c": "[" * 5000 + '"\\' * 500}]}).encode()
    assert json_depth(deep) == 3


@pytest.mark.parametrize(
    "raw",
    [
        _nested(MAX_JSON_DEPTH + 1),
        _nested(5000),
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"[" * 100_000,  # unterminated, still refused for its depth
        ('{"model": "auto", "messages": ' + "[" * 3000 + "]" * 3000 + "}").encode(),
        _nested(200).decode().encode("utf-16"),
    ],
)
def test_nesting_beyond_the_limit_is_refused_before_parsing(raw: bytes) -> None:
    with pytest.raises(BadRequest, match="nested too deeply: more than 128 levels"):
        parse_json(raw)
    with pytest.raises(BadRequest, match="nested too deeply"):
        parse_chat_request(raw)


def test_nesting_up_to_the_limit_parses() -> None:
    assert json_depth(_nested(MAX_JSON_DEPTH)) == MAX_JSON_DEPTH
    assert isinstance(parse_json(_nested(MAX_JSON_DEPTH)), list)
    strings = json.dumps(["[" * 10_000, "{" * 10_000]).encode()
    assert parse_json(strings) == ["[" * 10_000, "{" * 10_000]


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


def test_readme_states_the_nesting_limit() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"nested over {MAX_JSON_DEPTH} levels deep" in " ".join(readme.split())
