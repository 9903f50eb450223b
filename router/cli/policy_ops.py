"""`tierwise policy diff | explain | apply | history | rollback`: operating policies.

`diff` and `explain` read files (and, for `explain --ledger`, the budget ledger); `apply`,
`history` and `rollback` talk to a running proxy's admin API (`/admin/policy`).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from policies import Policy, PolicyError, decide, load_policy
from policies.budgets import lines_for, pacing_ratio
from policies.diff import budget_changes, policy_diff
from router.cli.admin_client import DEFAULT_URL, AdminKey, Url, admin, message
from router.cli.console import console, report_policy_error

__all__ = ["register"]

out = console()
err = console(stderr=True)


def _load(file: Path) -> Policy:
    try:
        return load_policy(file)
    except PolicyError as exc:
        report_policy_error(exc)
        raise typer.Exit(2) from None


def diff(
    old: Annotated[Path, typer.Argument(help="The policy file in force (or the older one).")],
    new: Annotated[Path, typer.Argument(help="The policy file to compare with it.")],
) -> None:
    """What changes from OLD to NEW: every setting by field path (tiers, prices, thresholds,
    budgets, alerts, access), and the budgets removed, added or changed (exit 1 when they
    differ, 0 when they do not, 2 when one is invalid)."""
    a, b = _load(old), _load(new)
    lines = policy_diff(a, b)
    if not lines:
        out.print("no changes")
        return
    for line in lines:
        style = "green" if line.startswith("+ ") else "red" if line.startswith("- ") else ""
        out.print(f"[{style}]{line}[/]" if style else line, highlight=False, markup=bool(style))
    budgets = budget_changes(a, b)
    for kind, what in (
        ("removed", "no longer enforced; their spent money stays in the ledger"),
        ("added", "start from what the ledger holds under their label"),
        ("changed", "spent money carries over"),
    ):
        if budgets[kind]:
            out.print(f"budgets {kind}: {', '.join(budgets[kind])} ({what})", highlight=False)
    raise typer.Exit(1)


def explain(
    file: Annotated[Path, typer.Argument(help="Policy file.")],
    prompt: Annotated[str, typer.Option(help="The user prompt to route.")],
    model: Annotated[str, typer.Option(help="The model the client asks for.")] = "auto",
    key: Annotated[
        str | None, typer.Option(help="The caller's key label (for key and team budgets).")
    ] = None,
    ledger: Annotated[
        str | None,
        typer.Option(help="A ledger URL to read spent money from (default: nothing spent)."),
    ] = None,
    local_only: Annotated[
        bool, typer.Option(help="As if the request sent x-tierwise-local-only: true.")
    ] = False,
) -> None:
    """The decision FILE makes for one prompt, with every reason: difficulty, threshold and
    where it comes from, the tier chosen, local-only, pacing and soft limits, and the state of
    each budget line the request counts against."""
    from classifiers import scoring_text
    from router.scoring import load_scoring

    policy = _load(file)
    try:
        scoring = load_scoring(policy, str(file))
    except PolicyError as exc:
        err.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from None
    now = time.time()
    text = scoring_text([{"role": "user", "content": prompt}])
    difficulty = scoring.scorer.difficulty(text)
    try:
        first = decide(policy, model, difficulty, scoring.threshold)
    except LookupError as exc:
        err.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from None
    final, states = asyncio.run(_budgeted(policy, first, key, local_only, ledger, now))
    routing = policy.routing
    source = (
        "routing.threshold"
        if routing.threshold is not None
        else f"target_frontier_share {routing.target_frontier_share}"
        if routing.target_frontier_share is not None
        else "the default"
    )
    out.print(f"scorer      {scoring.scorer.name}", highlight=False)
    out.print(f"difficulty  {difficulty:.4f}", highlight=False)
    out.print(f"threshold   {scoring.threshold:.4f} (from {source})", highlight=False)
    out.print(f"decided     {first.tier} ({first.model}): {first.reason}", highlight=False)
    if final != first:
        out.print(f"then        {final.tier} ({final.model}): {final.reason}", highlight=False)
        if final.threshold != first.threshold:
            out.print(f"            threshold raised to {final.threshold:.4f}", highlight=False)
    out.print(f"served by   {final.tier}", highlight=False)
    if states:
        table = Table(title="budget lines of the frontier tier")
        for col in ("budget", "subject", "window", "limit $", "spent $", "pace"):
            table.add_column(
                col, justify="right" if col in ("limit $", "spent $", "pace") else "left"
            )
        for row in states:
            table.add_row(*row)
        out.print(table)


async def _budgeted(
    policy: Policy,
    decision: Any,
    key: str | None,
    local_only: bool,
    ledger_url: str | None,
    now: float,
) -> tuple[Any, list[tuple[str, ...]]]:
    """The decision after local-only and the budgets' pacing and soft limits, and the budget
    lines of the frontier tier with what the ledger holds."""
    from router.errors import ProxyError
    from router.gates.budget import BudgetGate
    from router.ledger import Line, open_store

    store = open_store(ledger_url or "memory://")
    try:
        gate = BudgetGate(policy, store.ledger, clock=lambda: now)
        team = next((t for t, labels in policy.access.teams.items() if key in labels), None)
        if local_only and not policy.tiers[decision.tier].local:
            try:
                decision = gate.local_only(decision)
            except ProxyError as exc:
                err.print(f"[red]refused:[/] {exc.message}", highlight=False)
                raise typer.Exit(1) from None
        decision = await gate.adjust(decision, key, team)
        lines = lines_for(policy, policy.routing.frontier_tier, key, team, now)
        states = await store.ledger.state(
            [Line(b.key, b.limit_micros, b.window.end) for b in lines], now
        )
    finally:
        await store.aclose()
    rows: list[tuple[str, ...]] = []
    for b, state in zip(lines, states, strict=True):
        used = state.spent_micros + state.reserved_micros
        pace = pacing_ratio(used, b.hard_micros, b.window, now)
        rows.append(
            (
                b.label,
                b.subject,
                b.window.id,
                f"{b.hard_micros / 1e6:.2f}",
                f"{used / 1e6:.4f}",
                f"{min(pace, 1e6):.2f}",
            )
        )
    return decision, rows


def _answered(response: httpx.Response) -> dict[str, Any]:
    """The JSON of a 200 answer; otherwise the error printed (each issue of an invalid policy
    on its own line) and exit 2 (1 for a version conflict)."""
    try:
        data: dict[str, Any] = response.json()
    except ValueError:
        data = {}
    if response.status_code == 200:
        return data
    error = data.get("error", {}) if isinstance(data, dict) else {}
    issues = error.get("issues") or []
    if issues:
        err.print(f"[bold red]refused: invalid policy[/] (HTTP {response.status_code}):")
        for issue in issues:
            err.print(
                f"  [yellow]{issue['path'] or '<root>'}[/]: {issue['reason']}", highlight=False
            )
    else:
        err.print(f"[red]HTTP {response.status_code}:[/] {message(response)}", highlight=False)
    raise typer.Exit(1 if response.status_code == 412 else 2)


def _print_applied(data: dict[str, Any]) -> None:
    if data.get("unchanged"):
        out.print(f"unchanged: version {data['version']} already serves this policy")
        return
    out.print(
        f"[green]applied[/] version {data['version']} ({data['source']} by {data['who']})",
        highlight=False,
    )
    for line in data.get("changes", []):
        out.print(f"  {line}", highlight=False, markup=False)
    for kind, labels in data.get("budgets", {}).items():
        if labels:
            out.print(f"  budgets {kind}: {', '.join(labels)}", highlight=False)


def apply(
    file: Annotated[Path, typer.Argument(help="Policy file to apply.")],
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    if_version: Annotated[
        int | None,
        typer.Option(help="Apply only while this version is served (else exit 1: 412)."),
    ] = None,
) -> None:
    """Apply FILE to a running proxy (`PUT /admin/policy`): validated there first; on success
    every replica on the same store serves it within seconds, without a restart."""
    proxy = admin(url, admin_key)
    _load(file)  # the same checks, here first: a clear error before anything is sent
    headers = {"content-type": "application/yaml"}
    if if_version is not None:
        headers["if-match"] = f'"{if_version}"'
    response = proxy.call("PUT", "/admin/policy", content=file.read_bytes(), headers=headers)
    _print_applied(_answered(response))


def rollback(
    version: Annotated[int, typer.Argument(help="The version to serve again.")],
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
) -> None:
    """Serve an earlier policy version again (recorded as a new version)."""
    proxy = admin(url, admin_key)
    response = proxy.call("POST", "/admin/policy/rollback", params={"to": version})
    _print_applied(_answered(response))


def history(
    url: Url = DEFAULT_URL,
    admin_key: AdminKey = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Versions to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The applied policy versions of a running proxy, newest first: number, when, who, how."""
    proxy = admin(url, admin_key)
    data = _answered(proxy.call("GET", "/admin/policy/history", params={"limit": limit}))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(title=f"policy versions (serving {data['current']})")
    for col in ("version", "applied (UTC)", "who", "source", "sha256"):
        table.add_column(col)
    for v in data["versions"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(v["at"]))
        table.add_row(str(v["version"]), when, v["who"], v["source"], v["sha256"][:12])
    out.print(table)


def register(policy_app: typer.Typer) -> None:
    policy_app.command("diff")(diff)
    policy_app.command("explain")(explain)
    policy_app.command("apply")(apply)
    policy_app.command("rollback")(rollback)
    policy_app.command("history")(history)
