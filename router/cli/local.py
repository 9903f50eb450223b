"""`tierwise local up|down|status`: run the cheap tier's model server on this host."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from router.cli.console import console

__all__ = ["local_app", "register"]

out = console()
err = console(stderr=True)

local_app = typer.Typer(
    help="Run the local model server behind the cheap tier (llama.cpp on CPU, vLLM/SGLang on GPU).",
    no_args_is_help=True,
)

StateDir = Annotated[
    Path | None,
    typer.Option(
        help="Where the pid file and log live (env TIERWISE_STATE_DIR; ~/.local/state/tierwise)."
    ),
]
_DEFAULT_GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"


def _served_name(model: str) -> str:
    path = Path(model.rstrip("/"))
    return path.stem if path.suffix == ".gguf" else path.name


@local_app.command("up")
def up(
    engine: Annotated[
        str, typer.Option(help="llamacpp (CPU, embedded default), vllm or sglang (GPU).")
    ] = "llamacpp",
    port: Annotated[int, typer.Option(help="Port the model server listens on.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface the model server listens on.")] = "127.0.0.1",
    model: Annotated[
        str | None,
        typer.Option(
            help="GGUF file (llamacpp; default: the bundled Gemma 3 270M) or model directory / "
            "hub id (vllm, sglang; required)."
        ),
    ] = None,
    served_model_name: Annotated[
        str | None,
        typer.Option(help="Model id clients use (policy: model: openai/<name>)."),
    ] = None,
    tensor_parallel_size: Annotated[
        int | None, typer.Option(help="GPUs to shard the model over (vllm, sglang).")
    ] = None,
    max_model_len: Annotated[
        int | None, typer.Option(help="Context length in tokens (llamacpp default 2048).")
    ] = None,
    gpu_memory_utilization: Annotated[
        float | None, typer.Option(help="Share of GPU memory to use, in (0, 1] (vllm, sglang).")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (llamacpp).")] = None,
    chat_format: Annotated[
        str | None,
        typer.Option(
            help="llama-cpp-python chat format for a GGUF without a chat template "
            "(default model: gemma)."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="Seconds to wait for /v1/models (default 120 llamacpp, 900 GPU)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the command that would run, and exit.")
    ] = False,
    state_dir: StateDir = None,
) -> None:
    """Start the model server in the background; returns once it answers /v1/models."""
    from router.local import (
        DEFAULT_CHAT_FORMAT,
        DEFAULT_SERVED_NAME,
        ENGINES,
        AlreadyRunning,
        EngineSpec,
        LocalServer,
        LocalServerError,
        command,
        default_gguf,
        model_dir,
        render,
    )

    if engine not in ENGINES:
        err.print(f"[red]unknown engine {engine!r}:[/] choose one of {', '.join(ENGINES)}")
        raise typer.Exit(2)
    if model is None and engine != "llamacpp":
        err.print(
            f"[red]--model is required for {engine}:[/] a model directory or hub id, "
            "e.g. --model /models/Qwen2.5-7B-Instruct"
        )
        raise typer.Exit(2)
    try:
        if model is None:
            model_path = str(model_dir() / _DEFAULT_GGUF_NAME) if dry_run else str(default_gguf())
            served = served_model_name or DEFAULT_SERVED_NAME
            chat_format = chat_format or DEFAULT_CHAT_FORMAT
        else:
            model_path = str(Path(model).expanduser().resolve()) if Path(model).exists() else model
            served = served_model_name or _served_name(model)
        spec = EngineSpec(
            engine=engine,
            model=model_path,
            served_name=served,
            port=port,
            host=host,
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            threads=threads,
            chat_format=chat_format,
        )
    except (LocalServerError, ValueError) as exc:
        err.print(f"[red]cannot start the local server:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if dry_run:
        print(render(command(spec)))
        return
    server = LocalServer(state_dir)
    wait = timeout if timeout is not None else (120.0 if engine == "llamacpp" else 900.0)
    err.print(f"starting {engine} on {host}:{port} (model {served}; log {server.log_file}) ...")
    try:
        state = server.start(spec, timeout_s=wait)
    except AlreadyRunning as exc:
        err.print(f"[green]{escape(str(exc))}[/]; nothing to do (tierwise local down stops it)")
        return
    except LocalServerError as exc:
        err.print(f"[red]cannot start the local server:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    out.print(
        f"[green]local {state.engine} server up[/]: pid {state.pid}, {state.url}/v1, "
        f"model {state.served_name}\n"
        f"cheap tier: model: openai/{state.served_name}, api_base: {state.url}/v1, local: true"
    )


@local_app.command("down")
def down(state_dir: StateDir = None) -> None:
    """Stop the local model server (SIGTERM, then SIGKILL after 10 s)."""
    from router.local import LocalServer

    state = LocalServer(state_dir).stop()
    if state is None:
        out.print("no local server is running")
        return
    out.print(f"stopped local {state.engine} server (pid {state.pid}, port {state.port})")


@local_app.command("status")
def status(
    state_dir: StateDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the local server's pid, engine, model, port, health and load (exit 1 if unhealthy)."""
    from router.local import LocalServer

    s = LocalServer(state_dir).status()
    if as_json:
        payload = {
            "running": s.running,
            "healthy": s.healthy,
            "detail": s.detail,
            "models": s.models,
            "load": s.load._asdict() if s.load else None,
            "server": None
            if s.state is None
            else {
                "pid": s.state.pid,
                "engine": s.state.engine,
                "model": s.state.model,
                "served_name": s.state.served_name,
                "url": s.state.url,
                "log": s.state.log,
                "started_at": s.state.started_at,
            },
        }
        print(json.dumps(payload, indent=2))
    elif s.state is None:
        out.print(s.detail)
    else:
        table = Table(title="local model server", show_header=False)
        table.add_column("field")
        table.add_column("value")
        health = "[green]healthy[/]" if s.healthy else f"[red]down[/] ({escape(s.detail)})"
        load = (
            f"{s.load.running} running, {s.load.waiting} waiting"
            if s.load
            else "n/a (the engine publishes no load; the proxy counts its in-flight requests)"
        )
        rows = [
            ("engine", s.state.engine),
            ("pid", str(s.state.pid)),
            ("model", s.state.model),
            ("served as", ", ".join(s.models) or s.state.served_name),
            ("url", f"{s.state.url}/v1"),
            ("health", health),
            ("load", load if s.healthy else "-"),
            ("uptime", f"{time.time() - s.state.started_at:.0f} s"),
            ("log", s.state.log),
        ]
        for name, value in rows:
            table.add_row(name, value if name == "health" else escape(value))
        out.print(table)
    if not s.healthy:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(local_app, name="local")
