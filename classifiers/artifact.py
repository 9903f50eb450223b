"""Persisting a trained scorer: a skops file plus a metadata JSON, both byte-for-byte reproducible.

``<dir>/difficulty.skops`` holds the fitted :class:`~classifiers.model.DifficultyRegressor`, or a
dict of them by head name for a gated model (:mod:`classifiers.gated`) (skops,
not pickle: loading only accepts the types listed in :data:`TRUSTED`). ``<dir>/difficulty.json``
holds the metadata: training files and their sha256, library versions, hyper-parameters, metrics
and the reference score quantiles used for calibration. Zip timestamps are pinned and JSON keys
sorted, so retraining on the same data writes identical bytes.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import skops.io as sio

from classifiers.gated import GatedScorer
from classifiers.lean import LeanScorer
from classifiers.model import DifficultyRegressor

if TYPE_CHECKING:
    from classifiers.accurate import AccurateScorer
    from classifiers.adapt import AdaptedScorer

__all__ = [
    "ARTIFACT_DIR",
    "METADATA_NAME",
    "MODEL_NAME",
    "TRUSTED",
    "ArtifactError",
    "load_metadata",
    "load_model",
    "load_scorer",
    "save",
    "save_heuristic_reference",
]

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"
MODEL_NAME = "difficulty.skops"
METADATA_NAME = "difficulty.json"
TRUSTED = frozenset({"classifiers.model.DifficultyRegressor"})
_EPOCH = (1980, 1, 1, 0, 0, 0)


class ArtifactError(RuntimeError):
    """The artifact is missing, corrupt, or holds types that are not trusted."""


def _canonical_ids(node: Any, ids: dict[int, int]) -> Any:
    """Replace skops' memory-address ``__id__`` values (and the ``<id>.npy`` file names they
    give) with their order of first appearance, so the same model gives the same schema."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int):
                out[key] = ids.setdefault(value, len(ids) + 1)
            elif key == "file" and isinstance(value, str) and value.endswith(".npy"):
                stem = value[: -len(".npy")]
                out[key] = (
                    f"{ids.setdefault(int(stem), len(ids) + 1)}.npy" if stem.isdigit() else value
                )
            else:
                out[key] = _canonical_ids(value, ids)
        return out
    if isinstance(node, list):
        return [_canonical_ids(v, ids) for v in node]
    return node


def _pin_zip(data: bytes) -> bytes:
    """Rewrite skops' zip canonically: renumbered ids, sorted entries, fixed timestamps."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        ids: dict[int, int] = {}
        schema = _canonical_ids(json.loads(src.read("schema.json")), ids)
        entries = {"schema.json": json.dumps(schema, indent=2).encode("utf-8")}
        for name in src.namelist():
            if name == "schema.json":
                continue
            stem = name[: -len(".npy")] if name.endswith(".npy") else ""
            new = f"{ids[int(stem)]}.npy" if stem.isdigit() and int(stem) in ids else name
            entries[new] = src.read(name)
        for name in sorted(entries):
            pinned = zipfile.ZipInfo(name, date_time=_EPOCH)
            pinned.compress_type = zipfile.ZIP_DEFLATED
            pinned.external_attr = 0o644 << 16
            dst.writestr(pinned, entries[name], compresslevel=9)
    return out.getvalue()


def save(
    model: DifficultyRegressor | Mapping[str, DifficultyRegressor],
    metadata: dict[str, Any],
    directory: Path | str,
) -> Path:
    """Write the model (one regressor, or a gated model's heads by name) and metadata into
    `directory` (created if needed); returns the model path."""
    if not isinstance(model, DifficultyRegressor):
        model = dict(sorted(model.items()))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MODEL_NAME
    path.write_bytes(_pin_zip(sio.dumps(model)))
    text = json.dumps(metadata, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    (directory / METADATA_NAME).write_text(text, encoding="utf-8")
    return path


def save_heuristic_reference(quantiles: list[float], directory: Path | str) -> Path:
    """Write the heuristic fallback's reference quantiles (``heuristic_reference.json``)."""
    path = Path(directory) / "heuristic_reference.json"
    data = {"what": "HeuristicScorer difficulty quantiles over the training prompts"}
    text = json.dumps({**data, "quantiles": quantiles}, indent=1, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _model_path(path: Path | str) -> Path:
    path = Path(path)
    return path / MODEL_NAME if path.is_dir() else path


def load_metadata(path: Path | str = ARTIFACT_DIR) -> dict[str, Any]:
    """The metadata JSON beside the model file (a directory or the ``.skops`` path)."""
    meta = _model_path(path).with_name(METADATA_NAME)
    try:
        data: dict[str, Any] = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{meta}: cannot read metadata: {exc}") from None
    return data


def load_model(
    path: Path | str = ARTIFACT_DIR,
) -> DifficultyRegressor | dict[str, DifficultyRegressor]:
    """The fitted regressor, or a gated model's heads by name; refuses files holding any type
    outside :data:`TRUSTED`."""
    model_path = _model_path(path)
    try:
        data = model_path.read_bytes()
        untrusted = set(sio.get_untrusted_types(data=data))
        if not untrusted <= TRUSTED:
            raise ArtifactError(f"{model_path}: untrusted types {sorted(untrusted - TRUSTED)}")
        model = sio.loads(data, trusted=sorted(untrusted))
    except ArtifactError:
        raise
    except Exception as exc:  # skops raises many kinds on a corrupt file
        raise ArtifactError(f"{model_path}: cannot load: {exc}") from None
    if isinstance(model, DifficultyRegressor):
        return model
    if (
        isinstance(model, dict)
        and model
        and all(isinstance(k, str) and isinstance(v, DifficultyRegressor) for k, v in model.items())
    ):
        return model
    raise ArtifactError(f"{model_path}: not a DifficultyRegressor or a dict of them")


def load_scorer(
    path: Path | str = ARTIFACT_DIR,
) -> LeanScorer | GatedScorer | AdaptedScorer | AccurateScorer:
    """The lean serving scorer of a saved artifact, calibrated with its reference quantiles: a
    :class:`LeanScorer` for one regressor, a :class:`GatedScorer` for a gated model, an
    :class:`~classifiers.adapt.AdaptedScorer` for a directory holding ``adapted.json``, an
    :class:`~classifiers.accurate.AccurateScorer` for one holding ``accurate.json`` (it needs the
    ``accurate`` extra and the built encoder)."""
    if Path(path).is_dir() and (Path(path) / "accurate.json").exists():
        from classifiers.accurate import load_accurate

        return load_accurate(path)
    if Path(path).is_dir() and (Path(path) / "adapted.json").exists():
        from classifiers.adapt import load_adapted

        return load_adapted(path)
    metadata = load_metadata(path)
    quantiles = metadata.get("reference", {}).get("raw_quantiles")
    if not isinstance(quantiles, list) or len(quantiles) < 2:
        raise ArtifactError(f"{path}: metadata has no reference.raw_quantiles")
    name = str(metadata.get("name", "tfidf-ridge"))
    model = load_model(path)
    if isinstance(model, DifficultyRegressor):
        return LeanScorer(model, quantiles, name=name)
    heads = metadata.get("heads", {}).get("quantiles")
    if not isinstance(heads, dict) or not all(
        isinstance(heads.get(h), list) and len(heads[h]) >= 2 for h in ("bench", "chat")
    ):
        raise ArtifactError(f"{path}: gated model without heads.quantiles.bench/chat in metadata")
    try:
        return GatedScorer(model, heads, quantiles, name=name)
    except ValueError as exc:
        raise ArtifactError(f"{path}: {exc}") from None
