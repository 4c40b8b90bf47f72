"""``emotion evaluate fusion``: the fusion forest on label-aligned triples built from three manifests.

    emotion evaluate fusion --speech S.csv --text T.csv --image I.csv [--n 1000] [--seed 0] [--json OUT.json]

Each modality's manifest goes through its own ``training.<modality>.evaluate.predict_manifest``
(the services' code path), every distinct input once. Then ``n`` triples are drawn: a label
uniformly from the labels all three manifests have (balanced), and for it one speech row, one
text row and one image row with that label (with replacement). Rows a model could not score (a
NaN row, e.g. an image with no face under ``--detect auto``) are left out of the pool before
drawing; a label left with no row in some modality is not drawn. The result is a flat dict:

* ``"speech"``, ``"text"``, ``"image"``, ``"speech+text"``, ``"speech+image"``, ``"text+image"``,
  ``"speech+text+image"``: the fusion forest given only those modalities (``"kind": "fusion"``);
* ``"speech (single model)"``, ``"text (single model)"``, ``"image (single model)"``: the arg-max of
  that modality model alone on the same triples (``"kind": "single"``).

Each value has ``accuracy``, ``macro_f1`` and ``n`` (plus ``kind`` and ``modalities``).
"""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from services.fusion.model import SUBSETS, FusionModel, load
from services.fusion.settings import get_settings
from shared.errors import ModelNotReady
from shared.labels import LABELS, MODALITIES
from training.fusion.data import ModalityItems, build_triples, common_labels, triple_probabilities
from training.fusion.scoring import fuse_subset, summary
from training.manifest import Manifest, ManifestError, read_manifest

INPUT_COLUMNS = {"speech": "path", "text": "text", "image": "path"}
SINGLE_SUFFIX = " (single model)"

#: A modality predictor: manifest -> (n, 7) probabilities.
Predictor = Callable[[Manifest], np.ndarray]


def modality_predictor(modality: str, detect: str | None = None) -> Predictor:
    """``training.<modality>.evaluate.predict_manifest`` with its options; a clear error if it is missing."""
    import importlib

    try:
        module = importlib.import_module(f"training.{modality}.evaluate")
    except ModuleNotFoundError as exc:
        raise ModelNotReady(f"the {modality} model's evaluator is not available: {exc}") from exc
    options = {"detect": detect} if modality == "image" and detect else {}

    def predict(manifest: Manifest) -> np.ndarray:
        return np.asarray(module.predict_manifest(manifest, **options), dtype=np.float64)

    return predict


def _input_key(manifest: Manifest, row: dict[str, str], column: str) -> str:
    value = row[column]
    return value if column == "text" else str((manifest.base_dir / value).resolve())


def predict_unique(manifest: Manifest, column: str, predictor: Predictor) -> np.ndarray:
    """Probabilities for every row, running the predictor once per distinct input."""
    keys = [_input_key(manifest, row, column) for row in manifest.rows]
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    unique_rows = list(first.values())
    unique = Manifest(
        path=manifest.path,
        rows=[manifest.rows[i] for i in unique_rows],
        labels=[manifest.labels[i] for i in unique_rows],
    )
    probs = np.asarray(predictor(unique), dtype=np.float64)
    if probs.shape != (len(unique_rows), len(LABELS)):
        raise ValueError(f"predictor returned shape {probs.shape} for {len(unique_rows)} inputs of {manifest.path}")
    position = {key: j for j, key in enumerate(first)}
    return probs[[position[key] for key in keys]]


def load_fusion_model(model_path: str | Path | None = None) -> FusionModel:
    """The committed forest (or ``model_path``); ModelNotReady with the fix if it is missing."""
    path = Path(model_path) if model_path is not None else get_settings().model_path
    try:
        return load(path)
    except FileNotFoundError as exc:
        raise ModelNotReady(f"{exc}; train it with python -m training.fusion.train") from exc


def evaluate_fusion(  # noqa: PLR0917 (the CLI's call signature)
    speech: str | None,
    text: str | None,
    image: str | None,
    n: int = 1000,
    seed: int = 0,
    detect: str | None = None,
    *,
    predictors: Mapping[str, Predictor] | None = None,
    model: FusionModel | None = None,
) -> dict[str, dict[str, Any]]:
    """Accuracy, macro-F1 and n for the forest on every modality subset and for each single model.

    ``predictors`` and ``model`` replace the real modality evaluators and the committed forest
    (tests inject deterministic fakes); by default the real ones are used.
    """
    paths = {"speech": speech, "text": text, "image": image}
    missing = [m for m, p in paths.items() if not p]
    if missing:
        raise ManifestError(f"emotion evaluate fusion needs --{' --'.join(missing)} (a manifest per modality)")
    if n < 1:
        raise ManifestError("--n must be at least 1")
    manifests = {m: read_manifest(str(paths[m]), INPUT_COLUMNS[m]) for m in MODALITIES}
    fusion = model if model is not None else load_fusion_model()

    parts: dict[str, ModalityItems] = {}
    for m in MODALITIES:
        manifest = manifests[m]
        if INPUT_COLUMNS[m] == "path":
            manifest.resolve("path")  # fail early, before any model runs, on a missing file
        predictor = (predictors or {}).get(m) or modality_predictor(m, detect)
        probs = predict_unique(manifest, INPUT_COLUMNS[m], predictor)
        ids = np.asarray([str(i) for i in range(len(manifest.rows))])
        items = ModalityItems(m, probs, np.asarray(manifest.labels, dtype=np.int64), ids, ids).usable()
        if len(items) == 0:
            raise ManifestError(f"the {m} model gave no usable prediction for any row of {manifest.path}")
        parts[m] = items

    labels = common_labels(parts)
    if not labels:
        raise ManifestError("the speech, text and image manifests share no emotion label; no triple can be built")
    y, index = build_triples(parts, n, np.random.default_rng(seed), labels)
    probabilities = triple_probabilities(parts, index)
    scaled = fusion.scale_inputs(probabilities)

    results: dict[str, dict[str, Any]] = {}
    for subset in SUBSETS:
        entry = summary(y, fuse_subset(fusion, scaled, subset))
        results["+".join(subset)] = {**entry, "kind": "fusion", "modalities": list(subset)}
    for m in MODALITIES:
        results[f"{m}{SINGLE_SUFFIX}"] = {**summary(y, probabilities[m]), "kind": "single", "modalities": [m]}
    return results
