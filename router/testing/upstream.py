"""A fake OpenAI- and Anthropic-compatible model server, run as a real process on 127.0.0.1.

    python -m router.testing.upstream --port 9100 [--delay-ms 0] [--name fake]

`POST /v1/chat/completions` (JSON and SSE, tools, `stream_options.include_usage`) and
`POST /v1/messages` (Anthropic Messages, JSON and SSE, tools: a `tool_use` answer unless the last
turn carries a `tool_result`; errors in Anthropic's shape). Directives in the last user message
steer it, so tests can provoke every behaviour through a real socket:

- `[[status:N]]` answer with HTTP status N and an error body;
- `[[sleep:S]]` wait S seconds before answering (timeouts);
- `[[chunks:N]]` stream N content chunks; `[[chunk_delay:S]]` wait S seconds between chunks;
- `[[empty:1]]` answer with empty content;
- `[[no_usage:1]]` stream without the usage chunk even when asked (as llama.cpp's server);
- `[[name:value@model]]` applies a directive only when the request names that model.

`GET /metrics` reports vLLM-style load (requests held by a sleep count as waiting).

`GET /_stats` reports requests per model, the last request body and stream counters (active,
completed, cancelled: a client that hangs up mid-stream shows as cancelled); `POST /_reset`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["create_fake_app", "main"]

_DIRECTIVE = re.compile(r"\[\[(\w+):([0-9.]+)(?:@([\w.:/-]+))?\]\]")


class _Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.by_model: Counter[str] = Counter()
        self.last_body: dict[str, Any] | None = None
        self.traceparents: list[str] = []  # W3C trace context received, in order (last 100)
        self.active_streams = 0
        self.completed_streams = 0
        self.cancelled_streams = 0
        self.waiting = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_model": dict(self.by_model),
            "last_body": self.last_body,
            "traceparents": self.traceparents,
            "active_streams": self.active_streams,
            "completed_streams": self.completed_streams,
            "cancelled_streams": self.cancelled_streams,
        }


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def _directives(messages: list[dict[str, Any]], model: Any = None) -> dict[str, float]:
    """`[[name:value]]` applies to every model, `[[name:value@model]]` only to that model."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    text = _text(last.get("content")) if last else ""
    return {k: float(v) for k, v, only in _DIRECTIVE.findall(text) if not only or only == model}


def _words(messages: list[dict[str, Any]], system: Any = None) -> int:
    return sum(len(_text(m.get("content")).split()) for m in messages) + len(_text(system).split())


def create_fake_app(delay_ms: float = 0.0, name: str = "fake") -> Starlette:
    stats = _Stats()
    sse = {"cache-control": "no-cache"}

    async def prelude(
        body: dict[str, Any], request: Request | None = None
    ) -> tuple[dict[str, float], Response | None]:
        stats.requests += 1
        parent = request.headers.get("traceparent") if request is not None else None
        if parent:
            stats.traceparents = [*stats.traceparents[-99:], parent]
        stats.by_model[str(body.get("model"))] += 1
        stats.last_body = body
        d = _directives(body.get("messages") or [], body.get("model"))
        wait = delay_ms / 1000 + d.get("sleep", 0.0)
        if wait:
            stats.waiting += 1
            try:
                await asyncio.sleep(wait)
            finally:
                stats.waiting -= 1
        status = int(d.get("status", 200))
        if status != 200:
            err = {"error": {"message": f"fake {status}", "type": "fake_error", "code": status}}
            return d, JSONResponse(err, status_code=status)
        return d, None

    def reply_words(body: dict[str, Any], count: int) -> list[str]:
        return [f"w{i}" for i in range(count - 1)] + [f"from-{name}:{body.get('model')}"]

    async def chat(request: Request) -> Response:
        body = await request.json()
        d, failure = await prelude(body, request)
        if failure is not None:
            return failure
        model = body.get("model", "fake-model")
        messages = body.get("messages") or []
        prompt_tokens = _words(messages)
        tools = body.get("tools")
        wants_tool = bool(tools) and messages[-1].get("role") != "tool"
        n_chunks = int(d.get("chunks", 5))
        words = reply_words(body, n_chunks)
        created = int(time.time())
        base = {"id": "chatcmpl-fake", "created": created, "model": model}
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": n_chunks,
            "total_tokens": prompt_tokens + n_chunks,
        }
        tool_call = None
        if wants_tool:
            fn = tools[0].get("function", {}).get("name", "tool")
            tool_call = {
                "id": "call_fake1",
                "type": "function",
                "function": {"name": fn, "arguments": json.dumps({"query": "fake"})},
            }
        if not body.get("stream"):
            text = "" if d.get("empty") else " ".join(words)
            message: dict[str, Any] = {"role": "assistant", "content": text}
            finish = "stop"
            if tool_call is not None:
                message = {"role": "assistant", "content": None, "tool_calls": [tool_call]}
                finish = "tool_calls"
            choices = [
                {"index": i, "message": message, "finish_reason": finish, "logprobs": None}
                for i in range(int(body.get("n") or 1))
            ]
            return JSONResponse(
                base | {"object": "chat.completion", "choices": choices, "usage": usage}
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if d.get("no_usage"):  # as llama-cpp-python's server: include_usage ignored
            include_usage = False
        delay = d.get("chunk_delay", 0.0)

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk = base | {
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        async def events() -> AsyncIterator[bytes]:
            stats.active_streams += 1
            finished = False
            try:
                yield event({"role": "assistant", "content": ""})
                if tool_call is not None:
                    yield event({"tool_calls": [dict(tool_call, index=0)]})
                    yield event({}, "tool_calls")
                else:
                    for i, word in enumerate(words):
                        if delay:
                            await asyncio.sleep(delay)
                        yield event({"content": word if i == 0 else " " + word})
                    yield event({}, "stop")
                if include_usage:
                    tail = base | {"object": "chat.completion.chunk", "choices": [], "usage": usage}
                    yield b"data: " + json.dumps(tail).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"
                finished = True
            finally:
                stats.active_streams -= 1
                if finished:
                    stats.completed_streams += 1
                else:
                    stats.cancelled_streams += 1

        return StreamingResponse(events(), media_type="text/event-stream", headers=sse)

    async def messages(request: Request) -> Response:
        if not request.headers.get("x-api-key"):
            err = {"type": "error", "error": {"type": "authentication_error", "message": "no key"}}
            return JSONResponse(err, status_code=401)
        body = await request.json()
        d, failure = await prelude(body, request)
        if failure is not None:
            status = failure.status_code
            kind = "overloaded_error" if status == 529 else "api_error"
            if status < 500:
                kind = "rate_limit_error" if status == 429 else "invalid_request_error"
            err = {"type": "error", "error": {"type": kind, "message": f"fake {status}"}}
            return JSONResponse(err, status_code=status)
        model = body.get("model", "fake-claude")
        turns = body.get("messages") or []
        n_chunks = int(d.get("chunks", 5))
        words = reply_words(body, n_chunks)
        usage = {
            "input_tokens": _words(turns, body.get("system")),
            "output_tokens": n_chunks,
        }
        last = turns[-1].get("content") if turns else None
        answered = isinstance(last, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in last
        )
        tool = None
        if body.get("tools") and not answered:
            tool = {
                "type": "tool_use",
                "id": "toolu_fake1",
                "name": body["tools"][0].get("name", "tool"),
                "input": {"query": "fake"},
            }
        stop = "tool_use" if tool is not None else "end_turn"
        msg = {"id": "msg_fake", "type": "message", "role": "assistant", "model": model}
        if not body.get("stream"):
            content = [tool] if tool is not None else [{"type": "text", "text": " ".join(words)}]
            return JSONResponse(
                msg
                | {
                    "content": content,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": usage,
                }
            )

        def event(kind: str, data: dict[str, Any]) -> bytes:
            return f"event: {kind}\ndata: {json.dumps(data | {'type': kind})}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            start_usage = {"input_tokens": usage["input_tokens"], "output_tokens": 1}
            yield event(
                "message_start",
                {
                    "message": msg
                    | {
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    }
                },
            )
            if tool is not None:
                yield event(
                    "content_block_start", {"index": 0, "content_block": tool | {"input": {}}}
                )
                arguments = json.dumps(tool["input"])
                for part in (arguments[:5], arguments[5:]):
                    yield event(
                        "content_block_delta",
                        {"index": 0, "delta": {"type": "input_json_delta", "partial_json": part}},
                    )
            else:
                yield event(
                    "content_block_start",
                    {"index": 0, "content_block": {"type": "text", "text": ""}},
                )
                for i, word in enumerate(words):
                    text = word if i == 0 else " " + word
                    yield event(
                        "content_block_delta",
                        {"index": 0, "delta": {"type": "text_delta", "text": text}},
                    )
            yield event("content_block_stop", {"index": 0})
            yield event(
                "message_delta",
                {
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": n_chunks},
                },
            )
            yield event("message_stop", {})

        return StreamingResponse(events(), media_type="text/event-stream", headers=sse)

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def get_stats(request: Request) -> Response:
        return JSONResponse(stats.as_dict())

    async def metrics(request: Request) -> Response:
        """vLLM-style load: requests held by `[[sleep:S]]` count as waiting."""
        text = (
            f"vllm:num_requests_running {stats.active_streams}\n"
            f"vllm:num_requests_waiting {stats.waiting}\n"
        )
        return Response(text, media_type="text/plain")

    async def reset(request: Request) -> Response:
        stats.reset()
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/_stats", get_stats, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/_reset", reset, methods=["POST"]),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Fake OpenAI/Anthropic-compatible upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="fixed service time")
    parser.add_argument("--name", default="fake", help="tag put into every answer")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_fake_app(args.delay_ms, args.name),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
