"""`stage_progress`: one rich progress bar per named stage, for long CLI work (train, adapt)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["Report", "stage_progress"]

Report = Callable[[str, int, int], None]  # (stage, done, total)


@contextmanager
def stage_progress(console: Console) -> Iterator[Report]:
    """Yield a `report(stage, done, total)` callback that draws a bar per stage on `console`."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done)

        yield report
