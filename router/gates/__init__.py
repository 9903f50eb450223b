"""What a request passes on its way to an upstream: `access` (keys), `budget` (the budget
gate over the ledger), `tier_health` and its per-tier `breaker`, and `blame` (which of a
request's failures count against a tier). No web framework here."""
