"""Process settings from `TIERWISE_*` environment variables (CLI options override them)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "log_config"]


class Settings(BaseSettings):
    """Everything the process needs besides the policy file's contents.

    Every field can be set from the environment: `TIERWISE_POLICY`, `TIERWISE_HOST`,
    `TIERWISE_PORT`, `TIERWISE_LEDGER_URL`, `TIERWISE_MAX_BODY_BYTES`, ...
    """

    model_config = SettingsConfigDict(env_prefix="TIERWISE_", extra="ignore")

    policy: Path | None = Field(default=None, description="policy YAML; None = embedded default")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    ledger_url: str = Field(
        default="sqlite:///tierwise.db", description="memory://, sqlite:///path or redis://"
    )
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="seconds a request body may take to arrive; past them the answer is a 408",
    )
    spool_dir: Path = Field(
        default=Path("tierwise-spool"),
        description="where writes a redis:// ledger cannot take are kept until it is back",
    )
    spool_max_mb: int = Field(default=256, gt=0, description="spool size limit per process")
    log_level: str = "info"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text lines, or one JSON object per line with a decision line per request",
    )
    policy_poll_s: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="how often the policy file and the store's applied version are checked",
    )
    pool_connections: int = Field(default=512, gt=0, description="upstream connection pool size")
    http_client: Literal["aiohttp", "httpx"] = Field(
        default="aiohttp", description="library for the OpenAI-compatible fast path"
    )


def log_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """The process's logging: uvicorn's own configuration plus the `tierwise` loggers (fallbacks,
    alerts, the request log, ...) at `level` on stderr, one line per record, never wrapped
    (`LEVEL: tierwise: message`; `TIERWISE_LOG_LEVEL` / `--log-level`). `log_format="json"`:
    every logger, uvicorn's too, as JSON lines (`router.logjson`)."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["tierwise"] = {
        "()": "uvicorn.logging.DefaultFormatter",
        "fmt": "%(levelprefix)s %(name)s: %(message)s",
        "use_colors": None,
    }
    if log_format == "json":
        for name in list(config["formatters"]):
            config["formatters"][name] = {"()": "router.logjson.JsonFormatter"}
    config["handlers"]["tierwise"] = {
        "formatter": "tierwise",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["tierwise"] = {
        "handlers": ["tierwise"],
        "level": level.upper(),
        "propagate": False,
    }
    return config
