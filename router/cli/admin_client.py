"""Talking to a running proxy's admin API from the CLI (`spend`, `export`, `policy apply |
rollback | history`): the URL and key options, the call, and errors printed (never a stack
trace)."""

from __future__ import annotations

import os
from typing import Annotated, Any

import httpx
import typer

from router.cli.console import console

__all__ = ["DEFAULT_URL", "Admin", "AdminKey", "Url", "admin"]

err = console(stderr=True)

DEFAULT_URL = "http://127.0.0.1:8080"
Url = Annotated[str, typer.Option(help="The proxy's base URL (env TIERWISE_URL).")]
AdminKey = Annotated[
    str | None,
    typer.Option(help="An admin key (env TIERWISE_ADMIN_KEY; one of access.admin_keys_env)."),
]


class Admin:
    """One proxy's admin API: `base` URL and the admin key's header."""

    def __init__(self, base: str, key: str) -> None:
        self.base = base.rstrip("/")
        self.headers = {"authorization": f"Bearer {key}"}

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response, whatever its status; exit 2 when the proxy cannot be reached."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        try:
            return httpx.request(method, self.base + path, headers=headers, timeout=60, **kwargs)
        except httpx.HTTPError as exc:
            err.print(f"[red]cannot reach {self.base}:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None

    def get(self, path: str, **params: str) -> dict[str, Any]:
        """The JSON of a 200 answer; otherwise the error printed and exit 2."""
        response = self.call("GET", path, params=params or None)
        if response.status_code != 200:
            err.print(f"[red]{path}: HTTP {response.status_code}:[/] {message(response)}")
            raise typer.Exit(2)
        data: dict[str, Any] = response.json()
        return data


def message(response: httpx.Response) -> str:
    """The error message of an answer (the proxy's `error.message`, else its text)."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


def admin(url: str, admin_key: str | None) -> Admin:
    """`--url` (or TIERWISE_URL) and `--admin-key` (or TIERWISE_ADMIN_KEY); exit 2 without a
    key."""
    url = os.environ.get("TIERWISE_URL", url) if url == DEFAULT_URL else url
    key = admin_key or os.environ.get("TIERWISE_ADMIN_KEY")
    if not key:
        err.print("[red]an admin key is needed:[/] pass --admin-key or set TIERWISE_ADMIN_KEY")
        raise typer.Exit(2)
    return Admin(url, key)
