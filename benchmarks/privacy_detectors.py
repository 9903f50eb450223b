"""What do privacy detectors cost per request, and how often are they right?

    .venv/bin/python benchmarks/privacy_detectors.py [--repeat 2000]

Cost: `keep_local_rule` with every detector, a pattern and a term, over requests of ~2 KB
(real prompts from ../shared/data/routing, cut or joined to 2,000 characters: the goal is under
0.2 ms p50) and of 200 characters and 20 KB, none of which match, so every detector runs to the
end (the worst case). p50 / p99 over `--repeat` calls each. Quality: precision and recall per
detector on the labelled fixture `tests/fixtures/privacy_cases.jsonl` (true positives and hard
negatives). Writes benchmarks/results/privacy_detectors.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pct, prompts, save, show

from policies.detectors import DETECTORS
from policies.guards import KeepLocal
from policies.privacy import keep_local_rule

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "privacy_cases.jsonl"
RULES = KeepLocal.model_validate(
    {"detectors": list(DETECTORS), "patterns": [r"PROJECT-\d{4}"], "terms": ["Nightjar"]}
)


def _texts(size: int, n: int = 200) -> list[str]:
    pool = [p for p in prompts(400) if not keep_local_rule(RULES, None, None, [], p)]
    out: list[str] = []
    i = 0
    while len(out) < n:
        text = ""
        while len(text) < size:
            text += pool[i % len(pool)] + "\n"
            i += 1
        out.append(text[:size])
    return [t for t in out if not keep_local_rule(RULES, None, None, [], t)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    compiled = RULES.compiled()
    rows, cost = [], {}
    for size in (200, 2000, 20000):
        texts = _texts(size)
        times = []
        for k in range(args.repeat):
            text = texts[k % len(texts)]
            began = time.perf_counter()
            keep_local_rule(RULES, None, None, [], text, compiled)
            times.append((time.perf_counter() - began) * 1000)
        cost[size] = {"p50_ms": pct(times, 50), "p99_ms": pct(times, 99), "texts": len(texts)}
        rows.append((f"{size} chars", len(texts), pct(times, 50), pct(times, 99)))
    show("keep_local_rule, every detector, no match (ms)", ["request", "texts", "p50", "p99"], rows)
    cases = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
    quality, qrows = {}, []
    for name, detector in DETECTORS.items():
        tp = fp = fn = 0
        for case in cases:
            found, expected = detector(case["text"]), name in case["expect"]
            tp += found and expected
            fp += found and not expected
            fn += expected and not found
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        quality[name] = {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall}
        qrows.append((name, tp, fp, fn, precision, recall))
    show(
        f"detectors on {len(cases)} labelled cases",
        ["detector", "TP", "FP", "FN", "precision", "recall"],
        qrows,
    )
    path = save("privacy_detectors", {"cost": cost, "quality": quality, "cases": len(cases)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
