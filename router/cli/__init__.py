"""The `tierwise` command: `root` builds the app, and each command group has its own module
(`adapt`, `alerts`, `classifier`, `local`, `spend`; `console` and `progress` are shared)."""

from router.cli.root import app, main

__all__ = ["app", "main"]
