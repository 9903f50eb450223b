"""The soak's books: the request log against the per-tier spend lines and every budget line.

The log is read through the admin API (`/admin/requests`, after every replica flushed what it
holds: `/admin/spend` writes its pending per-tier spend); the lines straight from the ledger
with tierwise's own `Ledger.state`, over every window the traffic touched (a run across
midnight or the hour is summed over both windows).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from policies import load_policy
from policies.budgets import UNLIMITED, lines_for, window_of
from router.ledger import Line, open_store

__all__ = ["Books", "read_books"]


@dataclass
class Books:
    records: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)  # one row per compared total
    settle_s: float = 0.0
    reserved_ids: list[str] = field(default_factory=list)  # live reservations left, if any

    @property
    def balanced(self) -> bool:
        return bool(self.lines) and all(r["equal"] for r in self.lines)

    def report(self) -> dict[str, Any]:
        by_status = Counter(str(r["status"]) for r in self.records)
        by_reason = Counter(r["reason"].split(":")[0] for r in self.records)
        return {
            "records": len(self.records),
            "by_status": dict(sorted(by_status.items())),
            "by_reason": dict(by_reason.most_common()),
            "lines": self.lines,
            "balanced": self.balanced,
            "settle_s": round(self.settle_s, 2),
            "first_record_time": min((r["time"] for r in self.records), default=None),
            "left_reserved": [_explain(i, self.records) for i in self.reserved_ids[:50]],
        }


async def _records(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "1000", **({"before": cursor} if cursor else {})}
        page = (await client.get(f"{url}/admin/requests", params=params)).json()
        out += page["requests"]
        cursor = page["next"]
        if not cursor or not page["requests"]:
            return out


def _keys(
    policy_path: Path, callers: dict[str, str | None], window: tuple[float, float]
) -> tuple[dict[str, list[str]], dict[tuple[str, str, str], list[str]]]:
    """The spend-line keys per tier and the budget-line keys per (budget, subject)."""
    policy = load_policy(policy_path)
    spend: dict[str, set[str]] = {tier: set() for tier in policy.tiers}
    budgets: dict[tuple[str, str, str], set[str]] = {}  # (scope, label, subject)
    t = window[0]
    while t <= window[1]:
        for tier in policy.tiers:
            spend[tier].add(f"_spend|{tier}|{window_of('day', 'UTC', t).id}")
            for caller, team in callers.items():
                for b in lines_for(policy, tier, caller, team, t):
                    scope = policy.budgets[b.budget].scope
                    budgets.setdefault((scope, b.label, b.subject), set()).add(b.key)
        t += 60.0
    return (
        {k: sorted(v) for k, v in spend.items()},
        {k: sorted(v) for k, v in budgets.items()},
    )


async def _ledger_totals(
    url: str, keys: dict[Any, list[str]], now: float
) -> dict[Any, tuple[int, int]]:
    store = open_store(url)
    try:
        out = {}
        for name, names in keys.items():
            lines = [Line(k, UNLIMITED, now + 86400) for k in names]
            states = await store.ledger.state(lines, now)
            spent = sum(s.spent_micros for s in states)
            out[name] = (spent, sum(s.reserved_micros for s in states))
        return out
    finally:
        await store.aclose()


def _teams(policy_path: Path, callers: Sequence[str]) -> dict[str, str | None]:
    teams = load_policy(policy_path).access.teams
    return {c: next((t for t, members in teams.items() if c in members), None) for c in callers}


async def read_books(
    ledger_url: str,
    policy_path: Path,
    replicas: Sequence[str],
    admin_key: str,
    callers: Sequence[str],
    window: tuple[float, float],
    settle_within_s: float = 30.0,
) -> Books:
    """Read the books until they balance or `settle_within_s` passes; the last reading."""
    by_caller = _teams(policy_path, callers)
    spend_keys, budget_keys = _keys(policy_path, by_caller, window)
    started = time.monotonic()
    headers = {"authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(headers=headers, timeout=30.0) as client:
        while True:
            for url in replicas:  # each replica writes out its own pending spend and records
                (await client.get(f"{url}/admin/spend")).raise_for_status()
                flush = await client.get(f"{url}/admin/requests", params={"limit": 1})
                flush.raise_for_status()
            books = Books(await _records(client, replicas[0]))
            spend = await _ledger_totals(ledger_url, spend_keys, time.time())
            lines = await _ledger_totals(ledger_url, budget_keys, time.time())
            books.lines = _compare(books.records, spend, lines)
            books.settle_s = time.monotonic() - started
            if books.balanced or books.settle_s > settle_within_s:
                if not books.balanced:
                    books.reserved_ids = await _reservations(ledger_url)
                return books
            await asyncio.sleep(1.0)


async def _reservations(url: str) -> list[str]:
    """Request ids holding a live reservation on any line (what the books' reserved sums)."""
    import redis.asyncio as aioredis  # benchmarks may know the Redis layout; tierwise's API not

    plain, _, prefix = url.partition("?prefix=")
    client = aioredis.Redis.from_url(plain, decode_responses=True)
    try:
        ids: set[str] = set()
        async for key in client.scan_iter(match=f"{{{prefix}}}:z:*"):
            ids.update(str(member) for member in await client.zrange(key, 0, -1))
        return sorted(ids)
    finally:
        await client.aclose()


def _explain(rid: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    found = next((r for r in records if r["request_id"] == rid.removesuffix("-1")), None)
    if found is None:
        return {"request_id": rid, "logged": False}
    keep = ("time", "tier", "reason", "status", "stream", "cost_micros")
    return {"request_id": rid, "logged": True, **{k: found[k] for k in keep}}


def _compare(
    records: list[dict[str, Any]],
    spend: dict[str, tuple[int, int]],
    lines: dict[tuple[str, str, str], tuple[int, int]],
) -> list[dict[str, Any]]:
    """Each ledger total beside what the log says it should hold."""
    by_tier: Counter[str] = Counter()
    by_team: Counter[str] = Counter()
    by_caller: Counter[str] = Counter()
    for r in records:
        by_tier[r["tier"]] += r["cost_micros"]
        by_caller[r["caller"] or "anonymous"] += r["cost_micros"]
        by_team[r["team"] or ""] += r["cost_micros"]
    total = sum(by_tier.values())
    rows = []

    def row(name: str, expected: int, found: tuple[int, int]) -> None:
        spent, reserved = found
        rows.append(
            {
                "line": name,
                "log": expected,
                "ledger": spent,
                "reserved": reserved,
                "equal": spent == expected and reserved == 0,
            }
        )

    for tier, found in spend.items():
        row(f"spend {tier}", by_tier[tier], found)
    per = {"team": by_team, "tier": by_tier, "key": by_caller}
    for (scope, label, subject), found in sorted(lines.items()):
        expected = total if scope == "global" else per[scope][subject]
        row(f"budget {label} / {subject}", expected, found)
    return rows
