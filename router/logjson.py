"""`--log-format json`: every log record as one JSON object per line on stderr.

`{"time": "2026-12-04T21:00:00.123Z", "level": "info", "logger": "tierwise", "message": ...}`,
plus the record's structured fields: the decision line each request writes
(`tierwise.decisions`, see `router.server.call`) carries them under `"decision"`. Exceptions
come as `"exception"` (the formatted traceback, one string).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["JsonFormatter"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        decision = getattr(record, "decision", None)
        if isinstance(decision, dict):
            line["decision"] = decision
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"), default=str)
