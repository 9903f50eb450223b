"""Outbound adapters: `base` (the protocols and the SSE usage tap), `factory` (a tier's
upstream from the policy), `openai`, `anthropic`, `litellm`, over `transports/`. They never
import gates, the ledger, alerts, the server or the CLI."""
