"""Policy hot reload: apply a new policy without a restart or a dropped request.

Where a new policy comes from:
- `PUT /admin/policy` and `POST /admin/policy/rollback?to=N` (`router.server.policy_admin`);
- the policy file, watched (size and mtime polled every `interval_s`) and re-read on `SIGHUP`;
- another replica on the same store: the store's newest version number is polled at the same
  interval, so an applied policy reaches every replica within about `interval_s` (0.5 s) plus
  the time to load it.

Each is validated first, by building the whole `Runtime` it would serve (policy fields and
cross-references, the scorer it names, keys, upstreams): an invalid policy is refused with every
field path and reason and the running one stays. Only then is it recorded as the next version in
the store (`router.ledger.versions`, a compare-and-set on the version it replaces) and swapped
in with one assignment. The replaced runtime is closed when its calls have ended.

At start a replica serves its file until `start()` has read the store: when the store holds an
applied version, that version is served (a replica that starts later comes up on what was
applied, not on its file), unless the file was modified after that version was applied (a
restart after an edit: the file is the latest change and becomes the next version); when the
store holds none, the file becomes version 1. A file edit is applied only when its text
differs from the version being served.

Budgets and spent money live in the ledger under each budget's label, so they carry over; a
budget removed or renamed (a new label) is reported in the answer and the log, never silently
reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass
from typing import Any

from policies import Policy, PolicyError, parse_policy_text
from policies.diff import budget_changes, policy_diff
from router.ledger import LedgerUnavailable
from router.ledger.audit import AuditLog
from router.ledger.versions import PolicyVersion, VersionConflict, text_sha256
from router.scoring import Scoring, load_scoring, resolve_threshold
from router.server.state import ProxyState, Runtime, build_runtime, policy_path

__all__ = ["Applied", "PolicyManager", "audit_admin"]

log = logging.getLogger("tierwise")

_RETIRE_LIMIT_S = 600.0  # a replaced runtime is closed by then even if a call still runs


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of an apply: the version now served and what changed."""

    version: PolicyVersion
    changes: list[str]
    budgets: dict[str, list[str]]  # removed / added / changed budget labels
    unchanged: bool = False  # the text was the served one's: nothing new was recorded

    def to_json(self) -> dict[str, Any]:
        return {
            **self.version.summary(),
            "unchanged": self.unchanged,
            "changes": self.changes,
            "budgets": self.budgets,
        }


class PolicyManager:
    def __init__(self, proxy: ProxyState, interval_s: float = 0.5) -> None:
        self.proxy = proxy
        self.interval_s = interval_s
        self.path = policy_path(proxy.settings)
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._file_seen: tuple[int, int] | None = None  # (size, mtime_ns) last read
        self._file_sha: str | None = None  # sha256 of the file's text last read
        self._failed: dict[int, str] = {}  # store versions this replica could not load
        self._signals = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Take the store's applied version (or record the file as version 1), then watch."""
        text = self._read_file()
        if text is not None:
            self._file_sha = text_sha256(text)
        try:
            await self._sync_with_store(text)
        except LedgerUnavailable as exc:
            log.warning("policy versions unavailable (%s); serving %s unversioned", exc, self.path)
        self._watcher = asyncio.ensure_future(self._watch())
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
            self._signals = True

    async def stop(self) -> None:
        if self._signals:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.wait([self._watcher], timeout=5)
        if self._retiring:
            await asyncio.wait(set(self._retiring), timeout=15)

    async def _sync_with_store(self, file_text: str | None) -> None:
        versions = self.proxy.store.versions
        newest = await versions.latest()
        if newest == 0 and file_text is not None:
            try:
                made = await versions.append(file_text, "file", time.time(), self._source(), 0)
            except VersionConflict as exc:  # another replica recorded its file first
                newest = exc.current
            else:
                self.proxy.current.version = made
                log.info("policy version 1 recorded from %s", self.path)
                details = {"version": 1, "sha256": made.sha256, "source": made.source}
                await audit_admin(self.proxy.store.audit, "file", "policy_applied", details)
                return
        if not newest:
            return
        latest = await versions.get(newest)
        if latest is not None and file_text is not None and self._file_is_newer(latest, file_text):
            # the file was edited after the newest version was applied (a restart after an
            # edit): the file is the latest change, so it is applied as the next version
            self.proxy.current.version = latest  # serving the file: apply() diffs against it
            try:
                await self.apply(file_text, "file", self._source(), expected=newest)
                return
            except (PolicyError, VersionConflict) as exc:
                log.error("policy file %s not applied at start (%s)", self.path, exc)
                self.proxy.current.version = None
        await self._load_version(newest)

    def _file_is_newer(self, latest: PolicyVersion, file_text: str) -> bool:
        """Is the file a change made after `latest` was applied (other text, later mtime)?"""
        if text_sha256(file_text) == latest.sha256:
            return False
        try:
            return self.path.stat().st_mtime > latest.at
        except OSError:
            return False

    # -- applying ----------------------------------------------------------------------------

    async def apply(self, text: str, who: str, source: str, expected: int | None = None) -> Applied:
        """Validate `text`, record it as the next version (only while `expected` is the newest,
        when given) and serve it. Raises `PolicyError` (invalid: nothing changes),
        `VersionConflict`, `LedgerUnavailable`."""
        async with self._lock:
            current = self.proxy.current
            if current.version is not None and text_sha256(text) == current.version.sha256:
                if expected is not None and expected != current.version.version:
                    raise VersionConflict(expected, current.version.version)
                return Applied(current.version, [], _no_budget_changes(), unchanged=True)
            runtime = await self._build(text, source)
            try:
                made = await self.proxy.store.versions.append(
                    text, who, time.time(), source, expected
                )
            except BaseException:
                await runtime.aclose()
                raise
            runtime.version = made
            old = self._swap(runtime)
            applied = Applied(
                made,
                policy_diff(old.policy, runtime.policy),
                budget_changes(old.policy, runtime.policy),
            )
        self._report(applied)
        await audit_admin(
            self.proxy.store.audit,
            who,
            "policy_applied",
            {"version": made.version, "sha256": made.sha256, "source": source},
        )
        return applied

    async def rollback(self, to: int, who: str, expected: int | None = None) -> Applied:
        """Apply version `to`'s text again, as a new version; `LookupError` when it is unknown."""
        target = await self.proxy.store.versions.get(to)
        if target is None:
            raise LookupError(f"no policy version {to}")
        return await self.apply(target.text, who, f"rollback:{to}", expected)

    async def reload_file(self, why: str, text: str | None = None) -> Applied | None:
        """Apply the policy file (its `text` when the caller has just read it) when it differs
        from the served version's; None when it is unchanged or cannot be read."""
        text = text if text is not None else self._read_file()
        if text is None:
            return None
        self._file_sha = text_sha256(text)
        try:
            applied = await self.apply(text, "file", self._source())
        except PolicyError as exc:
            log.error(
                "policy file %s not applied (%s); still serving version %s:\n%s",
                self.path,
                why,
                self.proxy.current.version_label,
                exc,
            )
            return None
        except (VersionConflict, LedgerUnavailable) as exc:
            log.warning("policy file %s not applied (%s): %s", self.path, why, exc)
            return None
        if applied.unchanged:
            log.info("policy file %s unchanged (%s)", self.path, why)
        return applied

    # -- internals ---------------------------------------------------------------------------

    def _source(self) -> str:
        return f"file:{self.path}"

    async def _build(self, text: str, source: str) -> Runtime:
        policy = parse_policy_text(text, source, self.path.parent)
        scoring = await self._scoring(policy, source)
        return build_runtime(self.proxy, policy, source, scoring)

    async def _scoring(self, policy: Policy, source: str) -> Scoring:
        """The served scorer when the new policy names the same one (only the threshold is
        resolved again), else the new one, loaded on a thread (an artifact takes ~0.5 s)."""
        served = self.proxy.current
        old, new = served.policy.routing, policy.routing
        if (old.scorer, old.model) == (new.scorer, new.model):
            scoring = served.scoring
            return Scoring(
                scoring.scorer,
                scoring.model,
                resolve_threshold(policy, scoring.scorer),
                scoring.blocking,
            )
        return await asyncio.to_thread(load_scoring, policy, source)

    def _swap(self, runtime: Runtime) -> Runtime:
        old = self.proxy.current
        runtime.start()
        self.proxy.current = runtime  # requests that arrive from now on use it
        task = asyncio.ensure_future(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return old

    async def _retire(self, old: Runtime) -> None:
        """Close `old` once no call that started on it is still running."""
        await asyncio.sleep(self.interval_s)  # requests routed but not yet calling
        deadline = time.monotonic() + _RETIRE_LIMIT_S
        while old.calls_in_flight() > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        try:
            await old.aclose()
        except Exception:
            log.exception("closing policy version %s", old.version_label)

    async def _load_version(self, number: int) -> None:
        """Serve the store's version `number` (applied by another replica or before start)."""
        if number in self._failed:
            return
        version = await self.proxy.store.versions.get(number)
        if version is None:
            return
        async with self._lock:
            current = self.proxy.current
            if current.version is not None and current.version.version >= number:
                return
            if current.version is None and version.sha256 == self._file_sha:
                current.version = version  # the file this replica serves is that version
                return
            try:
                runtime = await self._build(version.text, f"policy version {number}")
            except (PolicyError, ValueError) as exc:
                self._failed[number] = str(exc)
                log.error(
                    "policy version %s cannot be served here; still serving %s: %s",
                    number,
                    current.version_label,
                    exc,
                )
                return
            runtime.version = version
            old = self._swap(runtime)
        self._report(
            Applied(
                version,
                policy_diff(old.policy, runtime.policy),
                budget_changes(old.policy, runtime.policy),
            )
        )

    def _report(self, applied: Applied) -> None:
        v = applied.version
        if applied.unchanged:
            return
        log.warning(
            "policy version %s applied (%s by %s)%s",
            v.version,
            v.source,
            v.who,
            "".join(f"\n  {line}" for line in applied.changes),
        )
        for kind, labels in applied.budgets.items():
            if labels and kind != "added":
                log.warning(
                    "budgets %s by policy version %s: %s", kind, v.version, ", ".join(labels)
                )

    def _read_file(self) -> str | None:
        try:
            stat = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            log.error("policy file %s cannot be read: %s", self.path, exc)
            return None
        self._file_seen = (stat.st_size, stat.st_mtime_ns)
        return text

    def _file_changed(self) -> bool:
        try:
            stat = self.path.stat()
        except OSError:
            return False
        return (stat.st_size, stat.st_mtime_ns) != self._file_seen

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading %s", self.path)
        task = asyncio.ensure_future(self._sighup())
        self._retiring.add(task)  # kept alive until done
        task.add_done_callback(self._retiring.discard)

    async def _sighup(self) -> None:
        await self.reload_file("SIGHUP")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                if self._file_changed():
                    text = self._read_file()
                    if text is not None and text_sha256(text) != self._file_sha:
                        await self.reload_file("the file changed", text)
                newest = await self.proxy.store.versions.latest()
                served = self.proxy.current.version
                if newest and (served is None or newest > served.version):
                    await self._load_version(newest)
            except LedgerUnavailable as exc:
                log.debug("policy versions unavailable: %s", exc)
            except Exception:
                log.exception("policy watcher")


async def audit_admin(audit: AuditLog, who: str, action: str, details: dict[str, Any]) -> None:
    """An `admin` audit entry; a store that cannot take it is logged, the action stands."""
    try:
        await audit.append("admin", {"who": who, "action": action, **details}, time.time())
    except Exception as exc:
        log.error("audit entry for %s by %s not written: %s", action, who, exc)


def _applied(version: PolicyVersion, old: Runtime, new: Runtime) -> Applied:
    return Applied(
        version, policy_diff(old.policy, new.policy), budget_changes(old.policy, new.policy)
    )


def _no_budget_changes() -> dict[str, list[str]]:
    return {"removed": [], "added": [], "changed": []}
