"""Build each tier's `Upstream`: the OpenAI-compatible fast path where it applies, else litellm."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from policies import Policy, Tier
from router.upstreams.anthropic import ANTHROPIC_VERSION, AnthropicUpstream, messages_url
from router.upstreams.base import Upstream
from router.upstreams.openai import OpenAIUpstream
from router.upstreams.transports.base import Sender, SenderConfig

__all__ = [
    "OPENAI_COMPATIBLE",
    "HttpClient",
    "build_messages_upstreams",
    "build_upstreams",
    "make_sender",
    "missing_key_notes",
    "missing_keys",
    "uses_fast_path",
]

HttpClient = Literal["aiohttp", "httpx"]

# litellm provider prefix -> default API base for providers that speak OpenAI's wire format.
# `None` means the tier must give `api_base` (self-hosted servers).
OPENAI_COMPATIBLE: dict[str, str | None] = {
    "openai": "https://api.openai.com/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "moonshot": "https://api.moonshot.ai/v1",
    "minimax": "https://api.minimax.io/v1",
    "together_ai": "https://api.together.xyz/v1",
    "groq": "https://api.groq.com/openai/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "hosted_vllm": None,
    "vllm": None,
    "sglang": None,
    "llamacpp": None,
}


def _split(model: str) -> tuple[str, str]:
    provider, sep, name = model.partition("/")
    return (provider, name) if sep else ("", model)


def uses_fast_path(tier: Tier) -> bool:
    """True when the tier is served by the httpx fast path rather than litellm."""
    if tier.adapter != "auto":
        return tier.adapter == "openai"
    provider, _ = _split(tier.model)
    if provider in OPENAI_COMPATIBLE:
        return tier.api_base is not None or OPENAI_COMPATIBLE[provider] is not None
    return not provider and tier.api_base is not None


def missing_keys(policy: Policy, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Tier -> what is missing, for the tiers whose `api_key_env` names an unset (or empty)
    variable: `"ANTHROPIC_API_KEY is not set (tiers.frontier.api_key_env)"`. The proxy does
    not call such a tier (it could only fail, or be refused); it answers 502 with this text."""
    return {
        name: f"{tier.api_key_env} is not set (tiers.{name}.api_key_env)"
        for name, tier in policy.tiers.items()
        if tier.api_key_env and not environ.get(tier.api_key_env)
    }


def missing_key_notes(policy: Policy, environ: Mapping[str, str] = os.environ) -> list[str]:
    """One line per tier with a missing key: the variable, and what happens to requests routed
    there (`tierwise serve` and `tierwise policy check` print these; the proxy logs them)."""
    routing = policy.routing
    notes = []
    for name, missing in missing_keys(policy, environ).items():
        other = routing.frontier_tier if name == routing.cheap_tier else routing.cheap_tier
        can_fall_back = routing.fallback and other != name and other in policy.tiers
        auto = f"`auto` requests routed there fall back to {other}" if can_fall_back else ""
        pinned = (
            f"requests pinned to {name} fall back to {other}"
            if can_fall_back and routing.fallback_pinned
            else f"requests pinned to {name} fail with 502"
        )
        then = f"{auto}, {pinned}" if auto else "requests routed there fail with 502"
        notes.append(f"tier {name}: {missing.split(' (')[0]}; {then} until it is set")
    return notes


def make_sender(config: SenderConfig, http_client: HttpClient) -> Sender:
    """The pooled HTTP sender for one upstream URL, from the library `http_client` names."""
    if http_client == "httpx":
        from router.upstreams.transports.httpx import HttpxSender

        return HttpxSender(config)
    from router.upstreams.transports.aiohttp import AiohttpSender

    return AiohttpSender(config)


def _sender(
    name: str,
    tier: Tier,
    url: str,
    auth: tuple[str, str] | None,
    extra: list[tuple[str, str]],
    pool_size: int,
    http_client: HttpClient,
) -> Sender:
    """The pooled sender for tier `name` at `url`: JSON in, JSON or SSE out, the tier's key
    sent as `auth` (header name, value) when it has one, and the tier's timeouts."""
    headers = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        *extra,
    ]
    if auth is not None:
        headers.append(auth)
    config = SenderConfig(
        tier=name,
        url=url,
        headers=headers,
        timeout_s=tier.timeout_s,
        connect_timeout_s=tier.connect_timeout_s,
        pool_size=pool_size,
    )
    return make_sender(config, http_client)


def _api_key(tier: Tier) -> str | None:
    """The tier's key, read now from the variable its `api_key_env` names (unset or empty: None)."""
    return (os.environ.get(tier.api_key_env) or None) if tier.api_key_env else None


def build_upstreams(
    policy: Policy, pool_size: int = 512, http_client: HttpClient = "aiohttp"
) -> dict[str, Upstream]:
    """One upstream per tier. API keys are read from the env vars the tiers name, now."""
    upstreams: dict[str, Upstream] = {}
    for name, tier in policy.tiers.items():
        api_key = _api_key(tier)
        if uses_fast_path(tier):
            provider, model_name = _split(tier.model)
            base = tier.api_base or OPENAI_COMPATIBLE.get(provider)
            if base is None:
                raise ValueError(f"tiers.{name}.api_base: required for model {tier.model!r}")
            auth = ("authorization", f"Bearer {api_key}") if api_key else None
            sender = _sender(
                name, tier, f"{base}/chat/completions", auth, [], pool_size, http_client
            )
            served = model_name if provider in OPENAI_COMPATIBLE else tier.model
            upstreams[name] = OpenAIUpstream(name, served, sender)
        else:
            from router.upstreams.litellm import LiteLLMUpstream

            upstreams[name] = LiteLLMUpstream(
                name, tier.model, tier.api_base, api_key, tier.timeout_s
            )
    return upstreams


def build_messages_upstreams(
    policy: Policy, pool_size: int = 512, http_client: HttpClient = "aiohttp"
) -> dict[str, AnthropicUpstream]:
    """Native Messages-API upstreams for the tiers that speak it (`anthropic/...` models not
    forced onto the OpenAI fast path): `/v1/messages` requests routed there pass through."""
    natives: dict[str, AnthropicUpstream] = {}
    for name, tier in policy.tiers.items():
        provider, model_name = _split(tier.model)
        if provider != "anthropic" or uses_fast_path(tier):
            continue
        api_key = _api_key(tier)
        version = [("anthropic-version", ANTHROPIC_VERSION)]
        auth = ("x-api-key", api_key) if api_key else None
        url = messages_url(tier.api_base)
        sender = _sender(name, tier, url, auth, version, pool_size, http_client)
        natives[name] = AnthropicUpstream(name, model_name, sender)
    return natives
