"""Reading and validating an incoming request body: size limit, read timeout, JSON nesting
limit, JSON, and the chat-completions fields the proxy itself relies on (everything else passes
through unchecked).

A body is read within `TIERWISE_BODY_TIMEOUT_S` (408 past it) and up to
`TIERWISE_MAX_BODY_BYTES` (413 past it). A client that sends its whole body before reading the
answer must still see that 413, so up to `MAX_DRAIN_BYTES` past the limit are read and thrown
away first (a connection closed with unread data is reset, and the reset destroys the answer).
At most `MAX_WAITING_BODIES` reads per process may wait for the rest of a body at once; past
that, a body that is not all there gets `OVERFLOW_GRACE_S`, so slow clients cannot pile up. The
deadlines are kept by one timer per process (`_Watch`), not one per request: a body that is
already there (nearly all of them) is read without arming anything.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from router.errors import BadRequest, BodyTimeout, BodyTooLarge, ClientGone

if TYPE_CHECKING:
    from router.settings import Settings

__all__ = [
    "MAX_DRAIN_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_MESSAGES",
    "MAX_TOKENS",
    "MAX_WAITING_BODIES",
    "OVERFLOW_GRACE_S",
    "json_depth",
    "json_kind",
    "parse_chat_request",
    "parse_json",
    "read_body",
]

MAX_MESSAGES = 10_000
"""The most messages a request may carry (both endpoints): more is refused with a 400 before
anything reads them (scoring, privacy detectors, translation)."""

MAX_JSON_DEPTH = 128
"""The deepest nesting of arrays and objects a request body may have (as serde_json's default);
real chat bodies, tool schemas included, stay far below it."""

MAX_TOKENS = 2**31 - 1
"""The largest `max_tokens` (`max_completion_tokens`, `n`) accepted: a signed 32-bit integer, what
providers take; anything above is a 400, not a request the budgets would try to price."""

MAX_DRAIN_BYTES = 16 * 1024 * 1024
"""How much of a body past the size limit is read and discarded so that the 413 reaches the
client; a body declared or sent longer than that gets the 413 and a closed connection."""

MAX_WAITING_BODIES = 128
"""How many reads per process may wait for the rest of their body at once."""

OVERFLOW_GRACE_S = 1.0
"""The time a body gets instead of the body timeout while `MAX_WAITING_BODIES` reads wait."""

_TICK_S = 0.25  # how often the deadlines of waiting reads are checked


class _Watch:
    """The deadlines of the body reads in progress, enforced by one timer that ticks while some
    read waits: a read past its deadline has its task cancelled (and knows why)."""

    def __init__(self) -> None:
        self.deadlines: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()
        self._ticking = False

    def enter(self, task: asyncio.Task[Any], timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        if len(self.deadlines) >= MAX_WAITING_BODIES:
            timeout_s = min(timeout_s, OVERFLOW_GRACE_S)
        self.deadlines[task] = loop.time() + timeout_s
        if not self._ticking:
            self._ticking = True
            loop.call_later(_TICK_S, self._tick, loop)

    def leave(self, task: asyncio.Task[Any]) -> bool:
        """Ends the watch of `task`'s read; True when it was cancelled for its deadline."""
        del self.deadlines[task]
        if task in self.expired:
            self.expired.discard(task)
            task.uncancel()
            return True
        return False

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, deadline in self.deadlines.items():
            if deadline <= now and task not in self.expired:
                self.expired.add(task)
                task.cancel()
        if self.deadlines:
            loop.call_later(_TICK_S, self._tick, loop)
        else:
            self._ticking = False


_WATCH = _Watch()


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    try:
        size = int(declared)
    except ValueError:
        raise BadRequest("invalid Content-Length header") from None
    if size < 0:
        raise BadRequest("invalid Content-Length header")
    return size


async def read_body(request: Request, settings: Settings) -> bytes:
    """The request body: 413 past `settings.max_body_bytes` (without buffering past it; the
    rest is drained up to `MAX_DRAIN_BYTES` so the answer arrives), 408 when it takes longer
    than `settings.body_timeout_s`, `ClientGone` (499) when the client disconnects first."""
    limit, timeout_s = settings.max_body_bytes, settings.body_timeout_s
    declared = _declared_length(request)
    too_large = declared is not None and declared > limit
    if too_large and declared is not None and declared - limit > MAX_DRAIN_BYTES:
        raise BodyTooLarge(limit)
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    task = asyncio.current_task()
    assert task is not None
    _WATCH.enter(task, timeout_s)
    try:
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientGone()
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                too_large = True
                if size - limit > MAX_DRAIN_BYTES:
                    raise BodyTooLarge(limit)
            elif chunk and not too_large:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
    except asyncio.CancelledError:
        if _WATCH.leave(task):
            if too_large:
                raise BodyTooLarge(limit) from None
            raise BodyTimeout(timeout_s, size, declared) from None
        raise
    except BaseException:
        _WATCH.leave(task)
        raise
    _WATCH.leave(task)
    if too_large:
        raise BodyTooLarge(limit)
    return b"".join(chunks)


_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')  # once escapes are gone, a string holds no quote
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
for _b in b"[{":
    _STEP[_b] = 1
for _b in b"]}":
    _STEP[_b] = -1


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in the UTF-8 JSON text `raw`, found without
    parsing (so without recursing): escapes, then strings, are cut out and the brackets left
    are counted. Linear time, all of it in C; exact for valid JSON."""
    text = _ESCAPE.sub(b"", raw) if b"\\" in raw else raw
    brackets = _STRING.sub(b"", text).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _too_deep(raw: bytes, limit: int) -> bool:
    if raw.count(b"[") + raw.count(b"{") <= limit:  # the common case: cannot be deeper
        return False
    encoding = json.detect_encoding(raw)
    if encoding.startswith(("utf-16", "utf-32")):
        raw = raw.decode(encoding).encode()
    return json_depth(raw) > limit


# every escape but a UTF-16 surrogate escape without its pair: what is left of a backslash
# once these are cut out starts a lone surrogate (a pair decodes to one code point)
_PAIRED_OR_NOT_SURROGATE = re.compile(
    rb"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|u(?![dD][89a-fA-F])|[^u])",
    re.DOTALL,
)


def _lone_surrogate(raw: bytes) -> str | None:
    """The first `\\uD800`-`\\uDFFF` escape in the JSON text `raw` that is not half of a
    surrogate pair, if any (such a string cannot be encoded as UTF-8, so it cannot go on).
    Linear, in C, and only run on bodies holding a `\\u` escape."""
    if raw[:1] in (b"\xff", b"\xfe") or b"\x00" in raw[:4]:  # UTF-16 or UTF-32 JSON
        raw = raw.decode(json.detect_encoding(raw)).encode()
    if b"\\u" not in raw:
        return None
    left = _PAIRED_OR_NOT_SURROGATE.sub(b"", raw)
    at = left.find(b"\\")
    return None if at < 0 else left[at : at + 6].decode("ascii", "replace")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (JSON numbers are finite)")


def _finite(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"{text} is out of range for a JSON number (overflows to infinity)")
    return value


def parse_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The decoded JSON of a request body; 400 when it is empty, not JSON (`NaN`, `Infinity`
    and numbers that overflow to infinity included: Python's parser takes them, JSON does not),
    nested deeper than `max_depth` (checked before the parser, which recurses, sees it), or
    holding a lone surrogate escape such as `"\\ud800"` (text no UTF-8 encoder, and so no
    upstream, can carry; refused rather than silently replaced)."""
    if not raw:
        raise BadRequest("request body is empty; expected a JSON object")
    too_deep = BadRequest(
        f"request body is nested too deeply: more than {max_depth} levels of arrays and objects"
    )
    try:
        if _too_deep(raw, max_depth):
            raise too_deep
        body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
        lone = _lone_surrogate(raw)
    except RecursionError:  # not reachable through the check above; never a 500 regardless
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if lone is not None:
        raise BadRequest(
            f"request body holds a lone UTF-16 surrogate escape ({lone} without its pair): "
            "not valid Unicode text; send characters as UTF-8 or as escaped surrogate pairs"
        )
    return body


def json_kind(value: Any) -> str:
    """How a wrong value is named in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


# roles whose messages must carry content (an assistant turn may be tool calls alone)
_CONTENT_REQUIRED = frozenset({"system", "developer", "user", "tool"})


def _check_content(where: str, role: str, message: Mapping[str, Any]) -> None:
    content = message.get("content")
    if content is None:
        if role in _CONTENT_REQUIRED:
            raise BadRequest(
                f"{where}.content is required for role {role!r} "
                "(a string or a list of content parts)"
            )
        return
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise BadRequest(
            f"{where}.content must be a string or a list of content parts, not {json_kind(content)}"
        )
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            got = json_kind(part) if not isinstance(part, dict) else "an object without a 'type'"
            raise BadRequest(
                f"{where}.content[{j}] must be a content part: an object with a 'type' "
                f'(e.g. {{"type": "text", "text": "..."}}), not {got}'
            )
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise BadRequest(f"{where}.content[{j}].text must be a string")


def _check_positive_int(body: Mapping[str, Any], field: str) -> None:
    value = body.get(field)
    if value is None:  # absent or null: the default
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"'{field}' must be a positive integer, not {json_kind(value)}")
    if value < 1:
        raise BadRequest(f"'{field}' must be a positive integer, not {value}")
    if value > MAX_TOKENS:
        raise BadRequest(f"'{field}' must be at most {MAX_TOKENS}, not {value}")


def parse_chat_request(raw: bytes) -> dict[str, Any]:
    """Parse an OpenAI chat-completions body; 400 naming the offending field for bad input.

    Checked: what the proxy itself reads (model, messages and their content shapes,
    max_tokens / max_completion_tokens, n, stream, stream_options, response_format); null
    means "absent" for the optional ones, as in OpenAI's API. The rest passes through."""
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("missing required field 'model' (a string, e.g. \"auto\")")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("missing required field 'messages' (a non-empty list)")
    if len(messages) > MAX_MESSAGES:
        raise BadRequest(f"'messages' has {len(messages)} entries; at most {MAX_MESSAGES}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{i}] must be an object, not {json_kind(message)}")
        role = message.get("role")
        if not isinstance(role, str):
            raise BadRequest(f"messages[{i}].role is required (a string)")
        _check_content(f"messages[{i}]", role, message)
    for field in ("max_tokens", "max_completion_tokens", "n"):
        _check_positive_int(body, field)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest(f"'stream' must be a boolean, not {json_kind(stream)}")
    for field in ("stream_options", "response_format"):
        value = body.get(field)
        if value is not None and not isinstance(value, dict):
            raise BadRequest(f"'{field}' must be an object, not {json_kind(value)}")
    return body
