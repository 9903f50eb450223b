"""PGR-versus-strong-share plots (matplotlib, Agg backend, imported only when plotting)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from classifiers.evaluate import Evaluation

__all__ = ["plot_pgr"]


def plot_pgr(evaluations: Sequence[Evaluation], path: Path | str) -> Path:
    """One panel per evaluation: PGR against strong share for every scorer; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(evaluations)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.0), squeeze=False)
    for ax, ev in zip(axes[0], evaluations, strict=True):
        for result in ev.results:
            x, y = result.curve
            style = ":" if result.name in ("random", "oracle") else "-"
            label = f"{result.name} (APGR {result.metrics['apgr']:.3f})"
            ax.plot(x, y, style, label=label, linewidth=1.4)
        ax.set_title(f"{ev.label}\n{ev.weak} -> {ev.strong} (n={ev.n})", fontsize=8)
        ax.set_xlabel("strong share")
        ax.set_ylabel("PGR")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path
