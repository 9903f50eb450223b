"""What a request passes on its way to an upstream: `access` (keys), `budget` (the budget
gate over the ledger), `tier_health` and its per-tier `breaker`. No web framework here."""
