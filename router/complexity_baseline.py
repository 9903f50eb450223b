"""LiteLLM's rule-based ``complexity_router`` as free difficulty anchors, scored through litellm.

A user comparing tierwise's difficulty classifier with what they already have gets LiteLLM's
complexity router for free, so every evaluation reports it beside the classifier. Both anchors
are computed by litellm's own code, offline: no network, no API key, no model call.

- :func:`heuristic` (``litellm_heuristic``): the continuous weighted rule score that
  ``ComplexityRouter.classify(prompt)`` returns before it maps the score to a tier (token count,
  code / reasoning / technical / simple keywords, multi-step patterns, question marks, weighted
  by ``ComplexityRouterConfig().dimension_weights``). With litellm's default configuration the
  score lies in ``[-0.15, 0.925]`` (:data:`HEURISTIC_RANGE`); the empty text scores ``-0.1``.
- :func:`heuristic_v2` (``litellm_heuristic_v2``): ``1 - P(success of the simplest tier)``
  from litellm's ``classifier_type="heuristic_v2"``: ``await ComplexityRouter.aclassify(prompt)``
  on a router configured that way returns a ``heuristic_v2_forecast`` whose ``probabilities``
  (per tier, from ``TierSuccessPredictor`` over the bundled ``ultrafeedback`` artifact, keyed by
  ``adaptive_router.classifier.classify_prompt``'s request type and ``similarity_cohort``) are
  read at the first tier of ``TIER_SEVERITY_ORDER`` (``SIMPLE``). In ``[0, 1]``; it takes few
  distinct values (one per request-type x length-bucket x code/maths/multiple-choice/non-ASCII
  cohort), so it ties a lot.

Higher means harder for both. The texts are scored as the caller's ask (litellm scores the user
message; tierwise's scored text of a single-turn prompt is the prompt itself). Each batch scores
every distinct text once. Measured on this project's 15,558 routing prompts (6,725 distinct), on
one busy CPU core: ``heuristic`` ~2 ms and ``heuristic_v2`` ~0.6 ms per distinct prompt.

The routers are built once, lazily, with a routing context that refuses every use: nothing the
scoring does may pick a deployment or call a model. This module is the only one that imports
litellm's complexity router; :func:`litellm_anchors` raises :class:`AnchorUnavailable` (with the
reason) when the installed litellm has no such router or no ``heuristic_v2``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from router.upstreams.litellm import import_litellm

__all__ = [
    "ANCHOR_NAMES",
    "HEURISTIC_RANGE",
    "AnchorUnavailable",
    "BatchScorer",
    "heuristic",
    "heuristic_v2",
    "litellm_anchors",
    "litellm_version",
]

BatchScorer = Callable[[Sequence[str]], list[float]]

ANCHOR_NAMES: tuple[str, str] = ("litellm_heuristic", "litellm_heuristic_v2")
"""The names the anchors carry in every evaluation (tables, JSON)."""

HEURISTIC_RANGE: tuple[float, float] = (-0.15, 0.925)
"""Bounds of :func:`heuristic` under litellm's default dimension weights."""

_MODEL_NAME = "tierwise-anchor"


class AnchorUnavailable(RuntimeError):
    """litellm's complexity router (or its ``heuristic_v2``) cannot be imported or built."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"LiteLLM complexity_router anchors unavailable: {reason} "
            "(install a litellm that ships litellm.router_strategy.complexity_router with "
            "classifier_type 'heuristic_v2')"
        )
        self.reason = reason


class _ScoringOnlyContext:
    """The routing context handed to the routers: any use (deployments, model calls) fails."""

    def __getattr__(self, name: str) -> NoReturn:
        raise RuntimeError(f"complexity anchors only score prompts; routing context .{name} used")


@dataclass(frozen=True, slots=True)
class _Routers:
    rule: Any  # ComplexityRouter, classifier_type "heuristic" (litellm's default)
    v2: Any  # ComplexityRouter, classifier_type "heuristic_v2"
    simplest: str  # the first tier of TIER_SEVERITY_ORDER ("SIMPLE")
    version: str


@functools.cache
def _routers() -> _Routers:
    try:
        litellm = import_litellm()
        from litellm.router_strategy.complexity_router import ComplexityRouter
        from litellm.router_strategy.complexity_router.config import TIER_SEVERITY_ORDER
    except ImportError as exc:
        raise AnchorUnavailable(f"cannot import it ({exc})") from exc
    ctx = _ScoringOnlyContext()
    try:
        rule = ComplexityRouter(model_name=_MODEL_NAME, ctx=ctx)
        v2 = ComplexityRouter(
            model_name=_MODEL_NAME,
            ctx=ctx,
            complexity_router_config={"classifier_type": "heuristic_v2"},
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise AnchorUnavailable(f"cannot build it offline ({exc})") from exc
    version = str(getattr(litellm, "version", None) or _distribution_version())
    return _Routers(rule, v2, TIER_SEVERITY_ORDER[0].value, version)


def _distribution_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("litellm")
    except PackageNotFoundError:
        return "unknown"


def litellm_version() -> str:
    """The installed litellm's version (raises :class:`AnchorUnavailable` like the anchors)."""
    return _routers().version


def _distinct(texts: Sequence[str], score: Callable[[str], float]) -> list[float]:
    seen: dict[str, float] = {}
    for text in texts:
        if text not in seen:
            seen[text] = score(text)
    return [seen[t] for t in texts]


def heuristic(texts: Sequence[str]) -> list[float]:
    """litellm's weighted complexity score of each text (higher = harder; see the module doc)."""
    rule = _routers().rule
    return _distinct(texts, lambda text: float(rule.classify(text)[1]))


def _run(coro: Coroutine[Any, Any, list[float]]) -> list[float]:
    """Run `coro` to completion; in a worker thread when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def heuristic_v2(texts: Sequence[str]) -> list[float]:
    """``1 - P(success at the simplest tier)`` from litellm's heuristic_v2, per text."""
    routers = _routers()
    distinct = list(dict.fromkeys(texts))

    async def score_all() -> list[float]:
        out: list[float] = []
        for text in distinct:
            outcome = await routers.v2.aclassify(text)
            forecast: Mapping[str, Any] | None = outcome.heuristic_v2_forecast
            if forecast is None:
                raise AnchorUnavailable(
                    f"aclassify gave no heuristic_v2 forecast ({outcome.cause})"
                )
            out.append(1.0 - float(forecast["probabilities"][routers.simplest]))
        return out

    found = dict(zip(distinct, _run(score_all()), strict=True))
    return [found[t] for t in texts]


def litellm_anchors() -> dict[str, BatchScorer]:
    """``{"litellm_heuristic": heuristic, "litellm_heuristic_v2": heuristic_v2}``.

    Builds litellm's routers first, so a missing or too old litellm fails here with
    :class:`AnchorUnavailable` instead of in the middle of an evaluation.
    """
    _routers()
    return dict(zip(ANCHOR_NAMES, (heuristic, heuristic_v2), strict=True))
