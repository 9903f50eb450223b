"""Budget and routing-health alerts: what an alert says (`payload`), where it goes (`sinks`),
how it gets there without slowing a request (`queue`), and when it fires (`manager`)."""

from __future__ import annotations

from router.alerts.manager import AlertManager
from router.alerts.payload import Alert, sample_alert, slack_message
from router.alerts.queue import AlertQueue, DeliveryStats
from router.alerts.sinks import LogSink, Sink, SinkError, WebhookSink, build_sink

__all__ = [
    "Alert",
    "AlertManager",
    "AlertQueue",
    "DeliveryStats",
    "LogSink",
    "Sink",
    "SinkError",
    "WebhookSink",
    "build_sink",
    "sample_alert",
    "slack_message",
]
