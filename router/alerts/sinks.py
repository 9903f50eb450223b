"""Where alerts go: the `Sink` seam and its three implementations (log, webhook, Slack).

`send` raises `SinkError` (with a readable reason) when the alert was not accepted; retrying is
the queue's job, not the sink's.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from policies.schema import AlertSink
from router.alerts.payload import Alert, slack_message

__all__ = ["LogSink", "Sink", "SinkError", "WebhookSink", "build_sink"]

log = logging.getLogger("tierwise.alerts")


class SinkError(RuntimeError):
    """An alert was not delivered; `retryable` is False when trying again cannot help."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Sink(Protocol):
    name: str

    async def send(self, alert: Alert) -> None: ...

    async def aclose(self) -> None: ...


class LogSink:
    """Writes the alert's payload to the `tierwise.alerts` log (WARNING level)."""

    def __init__(self) -> None:
        self.name = "log"

    async def send(self, alert: Alert) -> None:
        log.warning("ALERT %s: %s %s", alert.kind, alert.text, json.dumps(alert.payload()))

    async def aclose(self) -> None:
        return None


class WebhookSink:
    """POSTs JSON to a URL: the alert payload (`webhook`) or a Slack message (`slack`).

    Any 2xx is success; 4xx other than 408/429 is permanent (retrying cannot fix it); timeouts,
    connection errors, 408, 429 and 5xx are retryable.
    """

    def __init__(
        self,
        url: str,
        slack: bool = False,
        headers: Mapping[str, str] | None = None,
        missing_env: list[str] | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.url = url
        self.slack = slack
        self.name = f"{'slack' if slack else 'webhook'} {url}"
        self.headers = dict(headers or {})
        self.missing_env = list(missing_env or [])
        self._client = httpx.AsyncClient(timeout=timeout_s)

    def body(self, alert: Alert) -> dict[str, Any]:
        return slack_message(alert) if self.slack else alert.payload()

    async def send(self, alert: Alert) -> None:
        if self.missing_env:
            raise SinkError(
                f"header value env var(s) not set: {', '.join(self.missing_env)}", retryable=False
            )
        try:
            response = await self._client.post(
                self.url, json=self.body(alert), headers=self.headers
            )
        except httpx.HTTPError as exc:
            raise SinkError(f"{type(exc).__name__}: {exc or 'no detail'}") from None
        if response.is_success:
            return
        status = response.status_code
        retryable = status >= 500 or status in (408, 429)
        raise SinkError(f"HTTP {status}: {response.text[:200]}", retryable=retryable)

    async def aclose(self) -> None:
        await self._client.aclose()


def build_sink(config: AlertSink, environ: Mapping[str, str] | None = None) -> Sink:
    """The sink a policy entry describes; header values named by `headers_env` come from
    `environ` (default: the process environment). A missing variable doesn't fail here: the
    sink reports it on every send (and `tierwise alerts test` shows it)."""
    if config.type == "log":
        return LogSink()
    env = os.environ if environ is None else environ
    headers = dict(config.headers)
    missing = []
    for header, var in config.headers_env.items():
        value = env.get(var)
        if value:
            headers[header] = value
        else:
            missing.append(var)
    assert config.url is not None  # the schema requires it for http sinks
    return WebhookSink(config.url, config.type == "slack", headers, missing, config.timeout_s)
