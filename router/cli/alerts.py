"""`tierwise alerts test --policy FILE`: send a sample alert to every sink the policy names and
say, per sink, whether it was accepted (exit 2 if any was not)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer

from policies import Policy, PolicyError, load_policy
from router.cli.console import console, report_policy_error

__all__ = ["register"]

out = console()
err = console(stderr=True)

alerts_app = typer.Typer(help="Budget and routing-health alerts.", no_args_is_help=True)


async def _send_all(policy: Policy) -> list[tuple[str, str | None]]:
    from router.alerts import SinkError, build_sink, sample_alert

    results: list[tuple[str, str | None]] = []
    alert = sample_alert(time.time())
    for i, rule in enumerate(policy.alerts):
        sink = build_sink(rule.sink)
        name = f"alerts.{i}: {sink.name}"
        try:
            await sink.send(alert)
        except SinkError as exc:
            results.append((name, str(exc)))
        except Exception as exc:  # report, never a stack trace
            results.append((name, f"{type(exc).__name__}: {exc}"))
        else:
            results.append((name, None))
        finally:
            await sink.aclose()
    return results


@alerts_app.command("test")
def alerts_test(
    policy: Annotated[Path, typer.Option(help="Policy YAML file whose alert sinks to test.")],
) -> None:
    """Send one sample alert to every configured sink (one attempt each, no retries)."""
    try:
        loaded = load_policy(policy)
    except PolicyError as exc:
        report_policy_error(exc)
        raise typer.Exit(2) from None
    results = asyncio.run(_send_all(loaded))
    if not results:
        out.print(f"{policy}: no alert rules configured (nothing to test)")
        return
    failed = 0
    for name, problem in results:
        if problem is None:
            out.print(f"[green]ok[/]      {name}", highlight=False, soft_wrap=True)
        else:
            failed += 1
            out.print(f"[red]failed[/]  {name}: {problem}", highlight=False, soft_wrap=True)
    if failed:
        err.print(f"{failed} of {len(results)} sink(s) failed")
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
