"""tierwise service: HTTP in, upstream out, money tracked (the I/O shell).

The layers, outside in (each imports only the ones below it; `tests/test_layers.py` checks):

- `server/`: the HTTP edge, the only place that knows Starlette/ASGI: the app, its state, the
  fast path, the chat and Messages handlers, admin, body parsing, dispatch and relay.
- `gates/`: what a request passes before and around its upstream call: access keys, the
  budget gate, tier health and its circuit breakers.
- `upstreams/`: outbound adapters (OpenAI-compatible, Anthropic, litellm) over `transports/`
  (aiohttp, httpx); they know nothing of gates, ledger, alerts, server or cli.
- `anthropic/`: Messages <-> chat translation only; `ledger/`: budgets and the request log
  (imports no other router package); `alerts/`; `local/`: the cheap tier's model server.
- `cli/`: one module per command group; `testing/`: fakes shipped on purpose (real servers for
  tests and benchmarks), never imported by a service module.
- `errors`, `settings`, `scoring`, `complexity_baseline`: shared by the layers above.
"""
