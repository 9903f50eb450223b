"""The `tierwise` command line (typer)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from policies import Policy, PolicyError, default_policy_path, load_policy
from router.cli.console import PIPE_WIDTH, console, is_terminal, report_policy_error

if TYPE_CHECKING:
    from router.scoring import Scoring

__all__ = ["app", "full_app", "main"]

app = typer.Typer(
    name="tierwise",
    help="tierwise: a model routing proxy (cheap open model or frontier model, per request).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="Check, compare, explain and apply policies.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

err = console(stderr=True)
out = console()


@app.command()
def serve(
    policy: Annotated[
        Path | None,
        typer.Option(
            help="Policy YAML file (env TIERWISE_POLICY). "
            "Default: the embedded policies/default.yaml."
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (env TIERWISE_HOST; 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port to listen on (env TIERWISE_PORT; 8080).")
    ] = None,
    ledger_url: Annotated[
        str | None,
        typer.Option(
            help="Spend ledger: memory://, sqlite:///path, redis://host:port/db "
            "(env TIERWISE_LEDGER_URL)."
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes sharing the port (state lives in Redis).")
    ] = 1,
    log_level: Annotated[
        str | None, typer.Option(help="debug, info, warning or error (env TIERWISE_LOG_LEVEL).")
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            help="text, or json: one JSON object per line, with a decision line per request "
            "(env TIERWISE_LOG_FORMAT)."
        ),
    ] = None,
    access_log: Annotated[
        bool, typer.Option(help="Log every request line (slower; off by default).")
    ] = False,
    proxy_headers: Annotated[
        bool,
        typer.Option(
            help="Trust X-Forwarded-For/-Proto from a load balancer on 127.0.0.1 "
            "(off by default: it costs time on every request and tierwise does not use them)."
        ),
    ] = False,
) -> None:
    """Run the proxy: OpenAI-compatible API at http://HOST:PORT/v1."""
    import uvicorn

    from router.gates.access import AccessConfigError
    from router.scoring import load_scoring
    from router.server.state import load_settings_policy
    from router.settings import Settings, log_config

    overrides = {
        "TIERWISE_POLICY": str(policy) if policy else None,
        "TIERWISE_HOST": host,
        "TIERWISE_PORT": str(port) if port is not None else None,
        "TIERWISE_LEDGER_URL": ledger_url,
        "TIERWISE_LOG_LEVEL": log_level,
        "TIERWISE_LOG_FORMAT": log_format,
    }
    if log_format is not None and log_format not in ("text", "json"):
        err.print(f"[bold red]--log-format:[/] {log_format!r} is neither text nor json")
        raise typer.Exit(2)
    for name, value in overrides.items():
        if value is not None:
            os.environ[name] = value
    settings = Settings()
    try:
        loaded, source = load_settings_policy(settings)
        from router.gates.access import KeyChecker

        KeyChecker(loaded.access)
        scoring = load_scoring(loaded, source)  # a missing routing.model fails here, not later
    except PolicyError as exc:
        report_policy_error(exc)
        raise typer.Exit(2) from None
    except AccessConfigError as exc:
        err.print(f"[bold red]refusing to start:[/] {exc}")
        raise typer.Exit(2) from None
    if os.environ.get("TIERWISE_OTEL_EXPORTER", "").strip().lower() not in ("", "none", "off"):
        from router import tracing

        try:
            tracing.configure()  # in this process only to check it can be; workers do it again
        except RuntimeError as exc:
            err.print(f"[bold red]refusing to start:[/] {exc}")
            raise typer.Exit(2) from None
    try:
        _check_store(settings.ledger_url)
    except ValueError as exc:
        err.print(f"[bold red]refusing to start:[/] TIERWISE_LEDGER_URL: {exc}")
        raise typer.Exit(2) from None

    def say(markup: str, level: str = "info") -> None:
        """A start-up line: rich text on stderr, or with --log-format json a JSON log line."""
        if settings.log_format != "json":
            err.print(markup, highlight=False)
            return
        import logging

        from rich.text import Text

        from router.logjson import JsonFormatter

        plain = Text.from_markup(markup).plain
        record = logging.LogRecord(
            "tierwise", getattr(logging, level.upper()), "", 0, plain, None, None
        )
        sys.stderr.write(JsonFormatter().format(record) + "\n")
        sys.stderr.flush()

    if loaded.access.open:
        say(
            "[bold yellow]WARNING: access.open is true: anyone who can reach "
            f"{settings.host}:{settings.port} can use the proxy (and spend your budget). "
            "Use this for local development only.[/]",
            "warning",
        )
    for i, rule in enumerate(loaded.alerts):
        for header, var in rule.sink.headers_env.items():
            if not os.environ.get(var):
                say(
                    f"[yellow]note:[/] alerts.{i}.sink takes header {header} from {var}, which is "
                    "not set; alerts to that sink will fail (and be logged) until it is.",
                    "warning",
                )
    from router.upstreams.factory import missing_key_notes

    for note in missing_key_notes(loaded):
        say(f"[yellow]note:[/] {note}.", "warning")
    say(
        f"tierwise: policy {source}, scorer {_scorer_origin(scoring)}, "
        f"listening on http://{settings.host}:{settings.port}/v1"
    )
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # /metrics adds up every worker's counters (router.server.metrics); a fresh directory
        # per start, so that a restart does not count the previous run's requests again
        import atexit
        import shutil
        import tempfile

        shared = tempfile.mkdtemp(prefix="tierwise-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
        atexit.register(shutil.rmtree, shared, ignore_errors=True)
    uvicorn.run(
        "router.server.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level,
        access_log=access_log,
        proxy_headers=proxy_headers,
        log_config=log_config(settings.log_level, settings.log_format),
    )


def _scorer_origin(scoring: Scoring) -> str:
    where = scoring.model if scoring.model is not None else "the heuristic fallback"
    return f"{scoring.scorer.name} ({where})"


def _checked_scorer(policy: Policy, source: str) -> str:
    """The scorer the policy names, loaded to prove it loads unless it is the shipped default
    (which always does: the heuristic stands in for a missing artifact)."""
    routing = policy.routing
    if routing.model is None and routing.scorer == "fast":
        return "fast (shipped)"
    from router.scoring import load_scoring  # imports skops: only when there is a file to check

    return _scorer_origin(load_scoring(policy, source))


def _check_store(url: str) -> None:
    """Open and close the ledger store once, so a bad URL fails before the server starts."""
    import asyncio

    from router.ledger import open_store

    asyncio.run(open_store(url).aclose())


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="Policy YAML file to validate.")],
) -> None:
    """Validate a policy file, and load the difficulty model it names (`routing.model`, or
    `routing.scorer: accurate`); prints each problem with its field path (exit code 2 if
    invalid)."""
    try:
        loaded = load_policy(file)
        scorer = _checked_scorer(loaded, str(file))
    except PolicyError as exc:
        report_policy_error(exc)
        raise typer.Exit(2) from None
    rule = (
        f"threshold {loaded.routing.threshold}"
        if loaded.routing.threshold is not None
        else f"target_frontier_share {loaded.routing.target_frontier_share}"
        if loaded.routing.target_frontier_share is not None
        else "threshold 0.5 (default)"
    )
    out.print(
        f"[green]ok[/] {file}: tiers {', '.join(loaded.tiers)}; routing {rule}; "
        f"scorer {scorer}; "
        f"{len(loaded.budgets)} budget(s), {len(loaded.alerts)} alert rule(s); "
        f"access {'OPEN' if loaded.access.open else 'keys from ' + str(loaded.access.keys_env)}"
    )
    from router.upstreams.factory import (
        missing_key_notes,  # a note, not an error: set where it runs
    )

    for note in missing_key_notes(loaded):
        out.print(f"[yellow]note:[/] {note}.", highlight=False)


@policy_app.command("default")
def policy_default() -> None:
    """Print the embedded default policy (a starting point for your own), byte for byte:
    `tierwise policy default > my.yaml` gives a file `tierwise policy check` accepts."""
    sys.stdout.write(default_policy_path().read_text(encoding="utf-8"))
    sys.stdout.flush()


_registered = False


def full_app() -> typer.Typer:
    """The `tierwise` app with every command group registered (once: the groups' modules are
    imported only here, so a plain `import router.cli` stays light)."""
    global _registered
    if not _registered:
        from router.cli import (
            adapt,
            alerts,
            audit,
            classifier,
            export,
            keys,
            local,
            policy_ops,
            simulate,
            spend,
        )

        for group in (alerts, classifier, adapt, spend, local, simulate, export, keys, audit):
            group.register(app)
        policy_ops.register(policy_app)
        _registered = True
    return app


def main() -> None:
    full_app()
    command = typer.main.get_command(app)
    if not is_terminal():
        _plain_help(command)
        # one line per option and per command, nothing cut to fit an assumed 80 columns
        command.context_settings.update(terminal_width=PIPE_WIDTH, max_content_width=PIPE_WIDTH)
    command()


def _plain_help(command: Any) -> None:  # a (typer-vendored) click Command
    """Piped or redirected, `--help` is click's plain text instead of rich panels drawn for an
    assumed 80-column terminal (which cut option help and command summaries)."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


if __name__ == "__main__":
    main()
