"""OpenTelemetry traces, off unless asked for (`pip install 'tierwise[otel]'`, then
`TIERWISE_OTEL_EXPORTER=otlp` or `console`).

Each request is one trace: a `tierwise.request` span (continuing the client's `traceparent`
when it sends one) with children `auth`, `score`, `decide`, `budget` (one per attempt),
`upstream` (per attempt; streams carry `tierwise.ttft_s`) and `settle` (after the answer, in the
background). The upstream call carries a W3C `traceparent` naming its `upstream` span, on the
OpenAI-compatible fast path and the native Anthropic path (`router.upstreams.transports.base`
adds it to the request); litellm-translated tiers get none.

`otlp` exports over OTLP/HTTP, configured by the standard `OTEL_EXPORTER_OTLP_*` variables
(default `http://localhost:4318`); `console` prints each span as JSON on stdout. With tracing off
every `span()` is a shared no-op object: the request path pays an attribute lookup per stage.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any

__all__ = [
    "configure",
    "current",
    "enabled",
    "extract",
    "outgoing",
    "span",
    "traced",
    "traceparent",
]

_tracer: Any = None
_propagator: Any = None


class _NoSpan:
    """What `span()` gives while tracing is off."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: Any) -> None:
        return None


_NO_SPAN = _NoSpan()


def enabled() -> bool:
    return _tracer is not None


def configure(exporter: str | None = None) -> bool:
    """Turn tracing on for this process when `exporter` (default `TIERWISE_OTEL_EXPORTER`) is
    `otlp` or `console`; returns whether it is on. `RuntimeError` when the extra is missing."""
    global _tracer, _propagator
    if _tracer is not None:
        return True
    choice = exporter if exporter is not None else os.environ.get("TIERWISE_OTEL_EXPORTER", "")
    choice = choice.strip().lower()
    if choice in ("", "none", "off"):
        return False
    if choice not in ("otlp", "console"):
        raise RuntimeError(f"TIERWISE_OTEL_EXPORTER={choice!r}: use otlp, console or none")
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        raise RuntimeError("tracing needs the otel extra: pip install 'tierwise[otel]'") from None
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "tierwise")})
    provider = TracerProvider(resource=resource)
    if choice == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("tierwise")
    _propagator = TraceContextTextMapPropagator()
    return True


def extract(headers: Mapping[str, str]) -> Any:
    """The client's trace context (its `traceparent`), or None."""
    if _propagator is None or "traceparent" not in headers:
        return None
    return _propagator.extract({"traceparent": headers["traceparent"]})


def span(name: str, context: Any = None, **attributes: Any) -> Any:
    """A span as a context manager (a no-op while tracing is off)."""
    if _tracer is None:
        return _NO_SPAN
    clean = {
        k.replace("_", ".", 1) if k.startswith("tierwise_") else k: v
        for k, v in attributes.items()
        if v is not None
    }
    return _tracer.start_as_current_span(name, context=context, attributes=clean)


def traceparent() -> str | None:
    """The W3C `traceparent` of the current span, for an outgoing call (None when off)."""
    if _propagator is None:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def outgoing(name: str, **attributes: Any) -> Iterator[Any]:
    """A span around an upstream call whose requests carry its `traceparent` (only used while
    tracing is on: callers check `enabled()` first)."""
    from router.upstreams.transports.base import OUTGOING

    with span(name, **attributes) as current:
        parent = traceparent()
        token = OUTGOING.set((("traceparent", parent),) if parent else ())
        try:
            yield current
        finally:
            OUTGOING.reset(token)


def current() -> Any:
    """The current trace context (to parent work that runs later, elsewhere), or None."""
    if _tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


async def traced(
    name: str, work: Coroutine[Any, Any, None], parent: Any = None, **attributes: Any
) -> None:
    """Await `work` inside a span under `parent` (a `current()` taken earlier): background
    work such as a settlement, which may run after its request's span has ended."""
    with span(name, parent, **attributes):
        await work
