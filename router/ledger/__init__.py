"""Budget ledger and request log storage: `open_store(url)` gives both for one URL."""

from router.ledger.base import Ledger, LedgerUnavailable, Line, LineState, Refused
from router.ledger.memory import MemoryLedger
from router.ledger.requestlog import MemoryRequestLog, Page, RequestLog, RequestRecord
from router.ledger.sqlite import SqliteLedger, SqliteRequestLog
from router.ledger.store import SUPPORTED, Store, open_store

__all__ = [
    "SUPPORTED",
    "Ledger",
    "LedgerUnavailable",
    "Line",
    "LineState",
    "MemoryLedger",
    "MemoryRequestLog",
    "Page",
    "Refused",
    "RequestLog",
    "RequestRecord",
    "SqliteLedger",
    "SqliteRequestLog",
    "Store",
    "open_store",
]
