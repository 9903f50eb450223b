"""A real HTTP receiver for alert webhooks, run as a process on 127.0.0.1 (tests, demos).

    python -m router.testing.receiver --port 9000 [--fail-first N]

- `POST /<any path>`: records the JSON body, path and headers; answers 200 — or 500 for the
  first N attempts (`--fail-first N`, or `POST /_fail {"n": N}` at run time), which are counted
  as attempts but not recorded as received;
- `GET /_received`: `{"received": [{"path", "headers", "body", "time"}], "attempts": N}`;
- `POST /_reset`: forget everything; `GET /healthz`: ready.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["create_receiver_app", "main"]


class _Log:
    def __init__(self, fail_first: int = 0) -> None:
        self.fail_left = fail_first
        self.attempts = 0
        self.received: list[dict[str, Any]] = []


def create_receiver_app(fail_first: int = 0) -> Starlette:
    log = _Log(fail_first)

    async def hook(request: Request) -> Response:
        log.attempts += 1
        raw = await request.body()
        if log.fail_left > 0:
            log.fail_left -= 1
            return JSONResponse({"error": "failing on purpose"}, status_code=500)
        try:
            body = json.loads(raw)
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        log.received.append(
            {
                "path": request.url.path,
                "headers": dict(request.headers),
                "body": body,
                "time": time.time(),
            }
        )
        return JSONResponse({"ok": True})

    async def received(request: Request) -> Response:
        return JSONResponse({"received": log.received, "attempts": log.attempts})

    async def fail(request: Request) -> Response:
        log.fail_left = int((await request.json()).get("n", 0))
        return JSONResponse({"fail_left": log.fail_left})

    async def reset(request: Request) -> Response:
        log.received.clear()
        log.attempts = 0
        log.fail_left = 0
        return JSONResponse({"ok": True})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/_received", received, methods=["GET"]),
            Route("/_fail", fail, methods=["POST"]),
            Route("/_reset", reset, methods=["POST"]),
            Route("/{path:path}", hook, methods=["POST"]),
        ]
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    args = parser.parse_args()
    uvicorn.run(
        create_receiver_app(args.fail_first),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
