"""Train the fusion Random Forest on label-aligned triples of cached modality probabilities.

Stage 2 of 2 (stage 1: ``python -m training.fusion.predict_modalities``)::

    python -m training.fusion.train --probs /tmp/fusion_probs --out services/fusion/artifacts/

Construction (see services/fusion/MODEL_CARD.md):
1. each modality's validation items are split into fusion-train and fusion-test parts *by item
   group* before any triple is drawn (speech: actors 01-16, predicted out of fold, vs 17-20; text: 60/40 by distinct
   normalised text; image: 60/40 by distinct pixel content), so no clip, text or face is shared;
2. ``--n-fit`` triples are drawn from the fusion-train parts (labels balanced, items with that
   label drawn with replacement), each given one of the seven modality subsets in equal numbers
   (the others zeroed, presence flags set), and the forest is fitted on them;
3. per subset, the weight of the product-rule posterior blended into the forest's output is fitted
   out-of-fold on fusion-train (``--blend-folds`` folds by group; speech by actor);
4. ``--n-test`` triples are drawn from the fusion-test parts and scored under every subset against
   each single modality and the mean / product of the present probabilities.
"""

import argparse
import datetime as dt
import functools
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.ensemble import RandomForestClassifier

from services.fusion.model import (
    EPSILON,
    MODEL_FILE,
    SUBSET_NAMES,
    SUBSETS,
    FusionModel,
    apply_temperature,
    blend,
    product_posterior,
    stack_features,
)
from shared.labels import LABELS, MODALITIES
from training.calibration import ece_from_bins, plot_reliability
from training.fusion.calibration import disagreement_report, fit_output_calibration, stress_test
from training.fusion.data import (
    Fold,
    ModalityItems,
    build_triples,
    common_labels,
    jitter,
    split_items,
    subset_mask,
    training_matrix,
    triple_probabilities,
)
from training.fusion.predict_modalities import SPEECH_VALIDATION_ACTORS
from training.fusion.scoring import format_singles, format_table, fuse_subset, score_subsets
from training.report import classification_report, save_confusion_png

MODEL_NAME = "rf-late-fusion"
DEFAULT_FOREST: dict[str, Any] = {
    "n_estimators": 150,
    "max_leaf_nodes": 256,
    "min_samples_leaf": 10,
    "max_features": "sqrt",
}
#: Defaults = what ``--select`` chose on the inner fusion-train split for the shipped model.
DEFAULT_JITTER = 0.7
#: Whether the shipped forest takes temperature-scaled inputs (``--temperature`` / ``--no-temperature``).
DEFAULT_TEMPERATURE = False  # the services now return calibrated probabilities: no second input scaling
#: The final speech heads trained on RAVDESS actors 01-16: 17-20 are the speech fusion-test part; actors
#: 01-16 are usable for fusion-train only as out-of-fold predictions (stage 1's ``--speech-oof``).
SPEECH_FIRST_HELD_OUT_ACTOR = SPEECH_VALIDATION_ACTORS[0]
#: Candidates tried by ``--select`` (on an inner split of fusion-train only): (forest overrides, jitter).
CANDIDATES: tuple[tuple[dict[str, Any], float], ...] = (
    ({"max_features": 2}, 1.0),
    ({"max_features": 2}, 1.5),
    ({"max_features": "sqrt"}, 0.7),
    ({"max_features": "sqrt"}, 1.0),
    ({"max_features": "sqrt"}, 1.5),
    ({"max_features": "sqrt", "min_samples_leaf": 60}, 1.0),
    ({"max_features": 1}, 1.0),
)
#: Speech is split by actor in sorted order (the last actors held out); the others by shuffled group.
ORDERED_GROUPS = {"speech": True, "text": False, "image": False}
#: How many of the highest-numbered speech actors are held out: fusion-test (actors 17-20, the ones the
#: speech model never saw) and, inside fusion-train, the inner selection split (actors 13-16).
SPEECH_TEST_ACTORS = 4
SPEECH_INNER_VAL_ACTORS = 4
#: Weights of the product-rule posterior tried per subset, and the out-of-fold folds used to fit them.
PRODUCT_WEIGHT_GRID: tuple[float, ...] = tuple(round(w / 10, 1) for w in range(11))
BLEND_FOLDS = 3
#: Validation triples drawn per out-of-fold fold.
BLEND_VAL_TRIPLES = 3000


def fit_temperature(items: ModalityItems) -> float:
    """The temperature minimising the negative log-likelihood of ``items``' labels."""

    def nll(log_t: float) -> float:
        p = apply_temperature(items.probs, float(np.exp(log_t)))
        return float(-np.mean(np.log(np.clip(p[np.arange(len(items)), items.labels], EPSILON, 1.0))))

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def fit_forest(x: np.ndarray, y: np.ndarray, *, seed: int, params: dict[str, Any] | None = None) -> Any:
    forest = RandomForestClassifier(**{**DEFAULT_FOREST, **(params or {})}, n_jobs=1, random_state=seed)
    forest.fit(x, y)
    return forest


def load_parts(probs_dir: Path) -> dict[str, ModalityItems]:
    """The three cached modalities (``<modality>.npz``), items with non-finite probabilities dropped."""
    missing = [m for m in MODALITIES if not (probs_dir / f"{m}.npz").is_file()]
    if missing:
        raise FileNotFoundError(
            f"no cached probabilities for {', '.join(missing)} in {probs_dir}; run "
            f"python -m training.fusion.predict_modalities --only {' '.join(missing)} --out {probs_dir}"
        )
    return {m: ModalityItems.load(probs_dir / f"{m}.npz").usable() for m in MODALITIES}


def split_parts(
    parts: Mapping[str, ModalityItems], *, seed: int, test_fraction: float, speech_test_groups: int | None = None
) -> tuple[dict[str, ModalityItems], dict[str, ModalityItems]]:
    """Each modality's items split by group into (fusion-train, fusion-test).

    ``speech_test_groups``: hold out exactly that many of the last (sorted) speech actors instead of
    ``test_fraction`` of them.
    """
    fit_parts: dict[str, ModalityItems] = {}
    test_parts: dict[str, ModalityItems] = {}
    for m, items in parts.items():
        fraction = test_fraction
        if m == "speech" and speech_test_groups is not None:
            fraction = speech_test_groups / len(np.unique(items.groups))
        fit_parts[m], test_parts[m] = split_items(
            items, seed=seed, test_fraction=fraction, ordered_groups=ORDERED_GROUPS.get(m, False)
        )
    return fit_parts, test_parts


def fit_model(
    fit_parts: Mapping[str, ModalityItems],
    *,
    labels: list[int],
    seed: int,
    n_fit: int,
    temperatures: Mapping[str, float] | None = None,
    forest_params: dict[str, Any] | None = None,
    jitter_sigma: float = DEFAULT_JITTER,
    version: str | None = None,
) -> FusionModel:
    """Draw ``n_fit`` triples, drop modalities (each subset equally often), jitter, fit the forest."""
    rng = np.random.default_rng(seed)
    temps = {m: float((temperatures or {}).get(m, 1.0)) for m in MODALITIES}
    y, index = build_triples(fit_parts, n_fit, rng, labels)
    probs = triple_probabilities(fit_parts, index)
    scaled = {m: jitter(apply_temperature(p, temps[m]), rng, jitter_sigma) for m, p in probs.items()}
    x, _ = training_matrix(scaled, rng)
    return FusionModel(
        forest=fit_forest(x, y, seed=seed, params=forest_params),
        name=MODEL_NAME,
        version=version or dt.date.today().strftime("%Y.%m.%d"),
        temperatures=temps,
    )


def group_folds(items: ModalityItems, n_folds: int, *, rng: np.random.Generator, ordered: bool) -> np.ndarray:
    """A fold number per item, whole groups per fold (``ordered``: contiguous runs of sorted groups)."""
    groups = np.unique(items.groups)
    if ordered:
        fold_of = {g: i * n_folds // len(groups) for i, g in enumerate(groups)}
    else:
        fold_of = {g: i % n_folds for i, g in enumerate(rng.permutation(groups))}
    return np.array([fold_of[g] for g in items.groups], dtype=np.int64)


def out_of_fold(
    fit_parts: Mapping[str, ModalityItems],
    fit: Callable[..., FusionModel],
    *,
    labels: list[int],
    seed: int,
    folds: int = BLEND_FOLDS,
    n_val: int = BLEND_VAL_TRIPLES,
) -> list[Fold]:
    """Stacking folds on fusion-train only: per fold, ``fit(parts, labels=..., seed=...)`` (the final
    model's recipe, a partial of :func:`fit_model`) fits a forest on the other folds' items, and
    ``n_val`` triples are drawn from this fold's items; folds split every modality by group (speech:
    by actor, in order). The product weights and the output calibration are both fitted on these.
    """
    rng = np.random.default_rng(seed + 3)
    n_folds = min(folds, *(len(np.unique(items.groups)) for items in fit_parts.values()))
    if n_folds < 2:
        raise ValueError("need at least two groups per modality to fit the product weights out of fold")
    fold = {
        m: group_folds(items, n_folds, rng=rng, ordered=ORDERED_GROUPS.get(m, False)) for m, items in fit_parts.items()
    }
    result = []
    for k in range(n_folds):
        train = {m: items.take(fold[m] != k) for m, items in fit_parts.items()}
        held = {m: items.take(fold[m] == k) for m, items in fit_parts.items()}
        fold_labels = sorted(set(labels) & set(common_labels(train)) & set(common_labels(held)))
        model = fit(train, labels=fold_labels, seed=seed + k)
        y, index = build_triples(held, n_val, np.random.default_rng(seed + 200 + k), fold_labels)
        result.append(Fold(model, held, fold_labels, y, triple_probabilities(held, index)))
    return result


def fit_product_weights(oof: Sequence[Fold]) -> tuple[dict[str, float], dict[str, Any]]:
    """Per subset, the weight ``w`` of ``(1 - w) * forest + w * product``, chosen on out-of-fold accuracy
    (see :func:`out_of_fold`) by :func:`one_standard_error_choice`. Returns (weights, the out-of-fold table)."""
    grid = np.asarray(PRODUCT_WEIGHT_GRID)
    correct = {name: np.zeros(len(grid)) for name in SUBSET_NAMES}
    total = 0
    for fold in oof:
        scaled = fold.model.scale_inputs(fold.probabilities)
        for subset, name in zip(SUBSETS, SUBSET_NAMES, strict=True):
            x = stack_features(scaled, subset_mask(subset, len(fold.y)))
            forest, product = fold.model.forest_probabilities(x), product_posterior(x)
            for i, w in enumerate(grid):
                correct[name][i] += np.sum(blend(forest, product, w).argmax(axis=1) == fold.y)
        total += len(fold.y)
    accuracy = {name: c / total for name, c in correct.items()}
    # One modality: the forest's remapping of its vector or the vector itself, nothing in between.
    allowed = {
        name: (np.isin(grid, (0.0, 1.0)) if len(subset) == 1 else np.ones(len(grid), bool))
        for subset, name in zip(SUBSETS, SUBSET_NAMES, strict=True)
    }
    weights = {
        name: one_standard_error_choice(grid[allowed[name]], acc[allowed[name]], total)
        for name, acc in accuracy.items()
    }
    table = {name: acc.round(6).tolist() for name, acc in accuracy.items()}
    return weights, {"folds": len(oof), "n_triples": total, "grid": list(PRODUCT_WEIGHT_GRID), "oof_accuracy": table}


def one_standard_error_choice(grid: np.ndarray, accuracy: np.ndarray, n: int) -> float:
    """The largest weight whose accuracy is within one binomial standard error of the best one.

    The one-standard-error rule (Breiman et al., CART): among settings the data cannot tell apart,
    take the simplest, here the parameter-free product rule (``w = 1``) rather than the forest.
    """
    best = float(np.max(accuracy))
    tolerance = float(np.sqrt(best * (1.0 - best) / n))
    return float(grid[np.flatnonzero(accuracy >= best - tolerance).max()])


def select_candidate(
    fit_parts: Mapping[str, ModalityItems],
    *,
    seed: int,
    n_fit: int,
    candidates: tuple[tuple[dict[str, Any], float], ...] = CANDIDATES,
) -> tuple[dict[str, Any], float, bool, list[dict[str, Any]]]:
    """Pick forest settings, jitter and raw-vs-temperature on an inner split of fusion-train.

    fusion-test is never looked at. Inner split: speech actors 01-12 vs 13-16 (the last fusion-train actors);
    text/image 70/30 by group. Criterion: accuracy averaged over the seven subsets.
    Returns (params, jitter, use_temperature, table).
    """
    inner_fit, inner_val = split_parts(
        fit_parts, seed=seed + 1, test_fraction=0.3, speech_test_groups=SPEECH_INNER_VAL_ACTORS
    )
    labels = sorted(set(common_labels(inner_fit)) & set(common_labels(inner_val)))
    y_val, index = build_triples(inner_val, max(n_fit // 3, 700), np.random.default_rng(seed + 2), labels)
    val_probs = triple_probabilities(inner_val, index)
    inner_temperatures = {m: fit_temperature(inner_fit[m]) for m in MODALITIES}
    table = []
    for params, sigma in candidates:
        for use_temperature in (False, True):
            model = fit_model(
                inner_fit,
                labels=labels,
                seed=seed,
                n_fit=n_fit,
                temperatures=inner_temperatures if use_temperature else None,
                forest_params=params,
                jitter_sigma=sigma,
            )
            scores = score_subsets(model, val_probs, y_val, baselines=False)
            mean_accuracy = float(np.mean([e["fusion"]["accuracy"] for e in scores.values()]))
            row = {
                "forest": params,
                "jitter_sigma": sigma,
                "temperature": use_temperature,
                "mean_subset_accuracy": mean_accuracy,
            }
            table.append(row)
            print(f"  candidate {row}", flush=True)
    best = max(table, key=lambda row: row["mean_subset_accuracy"])
    return dict(best["forest"]), float(best["jitter_sigma"]), bool(best["temperature"]), table


# --------------------------------------------------------------------------- data


def checked_speech(items: ModalityItems, first_held_out: int = SPEECH_FIRST_HELD_OUT_ACTOR) -> ModalityItems:
    """The speech items, refused unless both fusion-train (actors below ``first_held_out``, out of fold)
    and fusion-test (actors ``first_held_out`` on) are present (groups ``ravdess_NN``)."""
    actors = np.array([int(str(g).rsplit("_", 1)[-1]) for g in items.groups])
    if not np.any(actors < first_held_out) or not np.any(actors >= first_held_out):
        raise ValueError(
            f"speech.npz must hold actors below {first_held_out} (out of fold) and from {first_held_out} on; rerun "
            "python -m training.fusion.predict_modalities --only speech --speech-oof <out_of_fold_clips.npz>"
        )
    return items


def prepare_data(probs_dir: Path, data_root: Path | None = None) -> dict[str, ModalityItems]:
    """Stage-1 probabilities of every modality (computing missing caches first when ``data_root`` is given);
    speech must hold out-of-fold actors for fusion-train and unseen ones for fusion-test."""
    if data_root is not None:
        from training.fusion.predict_modalities import predict_modality

        for m in MODALITIES:
            if not (probs_dir / f"{m}.npz").is_file():
                predict_modality(m, data_root=data_root, out_dir=probs_dir)
    parts = load_parts(probs_dir)
    parts["speech"] = checked_speech(parts["speech"])
    for m, items in parts.items():
        print(f"{m}: {len(items)} items, single-model accuracy {np.mean(items.probs.argmax(1) == items.labels):.4f}")
    return parts


# --------------------------------------------------------------------------- fitting


def fit_variants(
    fit_parts: dict[str, ModalityItems],
    *,
    labels: list[int],
    seed: int,
    n_fit: int,
    temperatures: dict[str, float],
    forest_params: dict[str, Any] | None,
    jitter_sigma: float,
    blend_folds: int,
    version: str | None = None,
) -> tuple[dict[str, FusionModel], dict[str, dict[str, Any]]]:
    """The raw and the temperature-scaled model, each with out-of-fold product-rule weights and output calibration.

    Same seed for both variants (same triples, drop pattern and jitter), so they differ only by the
    scaling. One recipe per variant fits both its forest and, out of fold, its product-rule weights.
    """
    variants: dict[str, FusionModel] = {}
    blend_tables: dict[str, dict[str, Any]] = {}
    for variant, temps in (("raw", None), ("temperature", temperatures)):
        recipe = functools.partial(
            fit_model, n_fit=n_fit, temperatures=temps, forest_params=forest_params, jitter_sigma=jitter_sigma
        )
        variants[variant] = model = recipe(fit_parts, labels=labels, seed=seed, version=version)
        oof = out_of_fold(fit_parts, recipe, labels=labels, seed=seed, folds=blend_folds)
        model.product_weights, blend_tables[variant] = fit_product_weights(oof)
        model.output_temperatures, model.correlation, blend_tables[variant]["calibration"] = fit_output_calibration(
            oof, model.product_weights, seed=seed
        )
    return variants, blend_tables


# --------------------------------------------------------------------------- evaluation


def evaluate(
    model: FusionModel,
    other: FusionModel,
    test_probs: dict[str, np.ndarray],
    y_test: np.ndarray,
    *,
    other_key: str,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Per-subset scores (with ``other`` variant's alongside), the all-three report and the targets."""
    results = score_subsets(model, test_probs, y_test)
    other_results = score_subsets(other, test_probs, y_test)
    for name, entry in results.items():
        entry[other_key] = {k: other_results[name][k] for k in ("fusion", "forest_only", "mean", "product")}
    all_three = tuple(MODALITIES)
    full_report = classification_report(
        y_test.tolist(), fuse_subset(model, model.scale_inputs(test_probs), all_three).argmax(axis=1).tolist()
    )
    all_name = "+".join(all_three)
    targets = {
        "all_three_beats_best_single_by_3_points": results[all_name]["fusion_minus_best_single"] >= 0.03,
        "every_subset_at_least_best_single": all(e["fusion_minus_best_single"] >= 0 for e in results.values()),
        "every_subset_ece_at_most_0.05": all(e["fusion"]["ece"] <= 0.05 for e in results.values()),
        "fusion_beats_mean_and_product": {
            name: {
                "mean": e["fusion"]["accuracy"] > e["mean"]["accuracy"],
                "product": e["fusion"]["accuracy"] > e["product"]["accuracy"],
            }
            for name, e in results.items()
        },
        "forest_alone_beats_mean_and_product": {
            name: {
                "mean": e["forest_only"]["accuracy"] > e["mean"]["accuracy"],
                "product": e["forest_only"]["accuracy"] > e["product"]["accuracy"],
            }
            for name, e in results.items()
        },
    }
    return results, full_report, targets


def split_summary(fit_parts: dict[str, ModalityItems], test_parts: dict[str, ModalityItems]) -> dict[str, Any]:
    """Items and groups on each side of the fusion split (speech: which actors)."""
    summary: dict[str, Any] = {}
    for m in MODALITIES:
        entry: dict[str, Any] = {
            "fit_items": len(fit_parts[m]),
            "test_items": len(test_parts[m]),
            "fit_groups": int(len(np.unique(fit_parts[m].groups))),
            "test_groups": int(len(np.unique(test_parts[m].groups))),
        }
        if m == "speech":
            entry["fit_actors"] = sorted(np.unique(fit_parts[m].groups).tolist())
            entry["test_actors"] = sorted(np.unique(test_parts[m].groups).tolist())
        summary[m] = entry
    return summary


def train_and_evaluate(
    parts: dict[str, ModalityItems],
    *,
    seed: int,
    n_fit: int,
    n_test: int,
    test_fraction: float = 0.4,
    forest_params: dict[str, Any] | None = None,
    jitter_sigma: float = DEFAULT_JITTER,
    select: bool = False,
    use_temperature: bool = False,
    blend_folds: int = BLEND_FOLDS,
    version: str | None = None,
) -> tuple[FusionModel, dict[str, Any]]:
    """Split, (optionally select settings), fit the raw and temperature-scaled forests, score every subset."""
    fit_parts, test_parts = split_parts(
        parts, seed=seed, test_fraction=test_fraction, speech_test_groups=SPEECH_TEST_ACTORS
    )
    labels = sorted(set(common_labels(fit_parts)) & set(common_labels(test_parts)))
    selection: list[dict[str, Any]] | None = None
    if select:
        forest_params, jitter_sigma, use_temperature, selection = select_candidate(fit_parts, seed=seed, n_fit=n_fit)

    temperatures = {m: fit_temperature(fit_parts[m]) for m in MODALITIES}
    variants, blend_tables = fit_variants(
        fit_parts,
        labels=labels,
        seed=seed,
        n_fit=n_fit,
        temperatures=temperatures,
        forest_params=forest_params,
        jitter_sigma=jitter_sigma,
        blend_folds=blend_folds,
        version=version,
    )
    chosen = "temperature" if use_temperature else "raw"
    model, other = variants[chosen], variants["raw" if use_temperature else "temperature"]

    y_test, test_index = build_triples(test_parts, n_test, np.random.default_rng(seed + 100), labels)
    test_probs = triple_probabilities(test_parts, test_index)
    other_key = "raw_variant" if use_temperature else "temperature_scaled_variant"
    results, full_report, targets = evaluate(model, other, test_probs, y_test, other_key=other_key)
    # Fused confidence where modalities agree more than chance (correlated triples) and where they disagree.
    stress = stress_test(model, test_parts, labels=labels, n=min(n_test, 3000), seed=seed + 400)
    disagreement = disagreement_report(model, test_probs, y_test)
    metrics: dict[str, Any] = {
        "model": {"name": model.name, "version": model.version, "variant": chosen},
        "construction": {
            "seed": seed,
            "n_fit_triples": n_fit,
            "n_test_triples": n_test,
            "labels": [LABELS[i] for i in labels],
            "label_distribution": "balanced over the labels listed",
            "test_fraction_of_items": test_fraction,
            "split": split_summary(fit_parts, test_parts),
            "subsets_in_training": ["+".join(s) for s in SUBSETS],
        },
        "forest": {**DEFAULT_FOREST, **(forest_params or {}), "random_state": seed},
        "jitter_sigma": jitter_sigma,
        "product_weights": model.product_weights,
        "product_weights_out_of_fold": blend_tables[chosen],
        "selection_on_inner_fusion_train_split": selection,
        "temperatures_fitted_on_fusion_train": temperatures,
        "output_temperatures": model.output_temperatures,
        "correlation_guard": model.correlation,
        "output_calibration_out_of_fold": blend_tables[chosen].pop("calibration"),
        "subsets": results,
        "correlation_stress_test_fusion_test": stress,
        "confidence_by_agreement_fusion_test": disagreement,
        "targets": targets,
        "all_three_report": full_report,
    }
    model.metadata = {
        "seed": seed,
        "n_fit_triples": n_fit,
        "trained": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "variant": chosen,
    }
    return model, metrics


# --------------------------------------------------------------------------- export


def export(model: FusionModel, metrics: dict[str, Any], out: Path) -> tuple[Path, float]:
    """Write the forest, ``metrics.json`` (with the artefact size) and the all-three confusion matrix."""
    path = model.save(out / MODEL_FILE)
    size_mb = path.stat().st_size / 1e6
    metrics["artifact_mb"] = round(size_mb, 3)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    save_confusion_png(metrics["all_three_report"], str(out / "confusion.png"), "fusion (speech+text+image)")
    save_reliability(metrics["subsets"], out / "reliability.png")
    return path, size_mb


def save_reliability(subsets: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """Reliability diagram on fusion-test: every multimodal subset as served, and all three before calibration."""
    before = subsets["speech+text+image"]["reliability"]["before"]
    curves = {f"all three, before (ECE {ece_from_bins(before):.3f})": before}
    for name, entry in subsets.items():
        if len(entry["modalities"]) > 1:
            curves[f"{name} (ECE {entry['fusion']['ece']:.3f})"] = entry["reliability"]["after"]
    plot_reliability(curves, str(path), "fusion-test triples: reliability as served")
    return path


def print_summary(metrics: dict[str, Any], *, seed: int) -> None:
    """The per-subset table, the singles, the other variant, temperatures, weights and targets."""
    variant = metrics["model"]["variant"]
    print(format_table(metrics["subsets"], title=f"fusion-test triples (seed {seed}), variant {variant}"))
    print("\n" + format_singles(metrics["subsets"]))
    other = "raw_variant" if variant == "temperature" else "temperature_scaled_variant"
    print(
        f"\n{other}: "
        + ", ".join(
            f"{n}: RF {e[other]['fusion']['accuracy']:.4f} mean {e[other]['mean']['accuracy']:.4f} "
            f"product {e[other]['product']['accuracy']:.4f}"
            for n, e in metrics["subsets"].items()
        )
    )
    print(f"\ntemperatures: {metrics['temperatures_fitted_on_fusion_train']}")
    print(f"product-rule weights (out-of-fold on fusion-train): {metrics['product_weights']}")
    print(f"output temperatures: {metrics['output_temperatures']}, guard c = {metrics['correlation_guard']}")
    print(f"confidence by agreement (all three): {json.dumps(metrics['confidence_by_agreement_fusion_test'])}")
    headline = {k: v for k, v in metrics["targets"].items() if isinstance(v, bool)}
    print(f"targets: {json.dumps(headline)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probs", type=Path, default=Path("/tmp/fusion_probs"), help="stage-1 cache folder")
    parser.add_argument("--data", type=Path, help="data root; when given, missing caches are computed first")
    parser.add_argument("--out", type=Path, default=Path("services/fusion/artifacts"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-fit", type=int, default=21000, help="training triples")
    parser.add_argument("--n-test", type=int, default=7000, help="test triples (each scored under all 7 subsets)")
    parser.add_argument("--test-fraction", type=float, default=0.4)
    parser.add_argument(
        "--temperature",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_TEMPERATURE,
        help="ship the temperature-scaled variant",
    )
    parser.add_argument(
        "--select", action="store_true", help="pick forest settings, jitter and --temperature on an inner split"
    )
    parser.add_argument("--jitter", type=float, default=DEFAULT_JITTER, help="log-space noise on training triples")
    parser.add_argument(
        "--blend-folds", type=int, default=BLEND_FOLDS, help="out-of-fold folds for the product-rule weights"
    )
    parser.add_argument("--max-mb", type=float, default=10.0, help="fail if the artefact is larger")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Data, then fitting and evaluation, then export; 1 if the artefact is over ``--max-mb``."""
    args = parse_args(argv)
    parts = prepare_data(args.probs, args.data)
    model, metrics = train_and_evaluate(
        parts,
        seed=args.seed,
        n_fit=args.n_fit,
        n_test=args.n_test,
        test_fraction=args.test_fraction,
        use_temperature=args.temperature,
        jitter_sigma=args.jitter,
        select=args.select,
        blend_folds=args.blend_folds,
    )
    path, size_mb = export(model, metrics, args.out)
    print_summary(metrics, seed=args.seed)
    print(f"wrote {path} ({size_mb:.2f} MB), {args.out / 'metrics.json'}, {args.out / 'confusion.png'}")
    if size_mb > args.max_mb:
        print(f"error: artefact is {size_mb:.2f} MB > {args.max_mb} MB; reduce trees/leaves", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
