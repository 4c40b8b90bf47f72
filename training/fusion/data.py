"""Per-item modality probabilities, their fusion-train/test split, and label-aligned triples.

No dataset has the same person's speech, text and face, so fusion examples are *synthetic
triples*: for a label drawn uniformly, one speech clip, one text and one face image with that
label are drawn independently. Real multimodal signals are correlated (the same person's voice
and face agree or disagree in structured ways); these triples only model independent evidence.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.fusion.model import EPSILON, NUM_LABELS, SUBSETS, stack_features
from shared.labels import LABELS, MODALITIES


@dataclass(frozen=True)
class ModalityItems:
    """One modality's validation items: model probabilities (n, 7), label indices, ids and split groups."""

    modality: str
    probs: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    groups: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.probs.shape != (n, NUM_LABELS):
            raise ValueError(f"{self.modality}: probs must be ({n}, {NUM_LABELS}), got {self.probs.shape}")
        if len(self.ids) != n or len(self.groups) != n:
            raise ValueError(f"{self.modality}: ids/groups must have {n} entries")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> "ModalityItems":
        return ModalityItems(self.modality, self.probs[index], self.labels[index], self.ids[index], self.groups[index])

    def usable(self) -> "ModalityItems":
        """Only the items whose probabilities are finite (e.g. an image with no detected face is not)."""
        return self.take(np.isfinite(self.probs).all(axis=1))

    def save(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            target,
            modality=np.array(self.modality),
            probs=self.probs.astype(np.float32),
            labels=self.labels.astype(np.int64),
            ids=self.ids.astype(str),
            groups=self.groups.astype(str),
        )
        return target

    @classmethod
    def load(cls, path: str | Path) -> "ModalityItems":
        with np.load(path, allow_pickle=False) as data:
            return cls(
                modality=str(data["modality"]),
                probs=data["probs"].astype(np.float64),
                labels=data["labels"].astype(np.int64),
                ids=data["ids"],
                groups=data["groups"],
            )


@dataclass
class Fold:
    """One out-of-fold fold on fusion-train: a model fitted without ``held``, and triples drawn from ``held``."""

    model: Any
    held: dict[str, ModalityItems]
    labels: list[int]
    y: np.ndarray
    #: Per modality, the raw (n, 7) probabilities of the items drawn for each triple.
    probabilities: dict[str, np.ndarray]


def split_items(
    items: ModalityItems, *, seed: int, test_fraction: float = 0.4, ordered_groups: bool = False
) -> tuple[ModalityItems, ModalityItems]:
    """Split items into (fusion-train, fusion-test) by group, so no group (actor, duplicate) is in both.

    ``ordered_groups`` keeps the sorted group order (speech: the lower-numbered actors train),
    otherwise groups are shuffled with ``seed``.
    """
    groups = np.unique(items.groups)
    if len(groups) < 2:
        raise ValueError(f"{items.modality}: need at least two groups to split, got {len(groups)}")
    if not ordered_groups:
        groups = np.random.default_rng(seed).permutation(groups)
    n_fit = min(max(round(len(groups) * (1 - test_fraction)), 1), len(groups) - 1)
    fit_groups = set(groups[:n_fit].tolist())
    is_fit = np.array([g in fit_groups for g in items.groups])
    return items.take(is_fit), items.take(~is_fit)


def common_labels(parts: Mapping[str, ModalityItems]) -> list[int]:
    """Label indices present in every modality's items."""
    shared = set(range(NUM_LABELS))
    for items in parts.values():
        shared &= set(np.unique(items.labels).tolist())
    return sorted(shared)


def build_triples(
    parts: Mapping[str, ModalityItems], n: int, rng: np.random.Generator, labels: Sequence[int] | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Draw ``n`` label-aligned triples: labels balanced over ``labels`` (default: those all parts share).

    Returns the label of each triple and, per modality, the index of the item drawn for it
    (items are drawn uniformly with replacement among that modality's items with the label).
    """
    chosen = list(labels) if labels is not None else common_labels(parts)
    if not chosen:
        names = ", ".join(parts)
        raise ValueError(f"the modalities {names} share no label, so no triple can be built")
    y = rng.permutation(np.resize(np.asarray(chosen, dtype=np.int64), n))
    index: dict[str, np.ndarray] = {}
    for modality, items in parts.items():
        picks = np.empty(n, dtype=np.int64)
        for label in chosen:
            rows = np.flatnonzero(y == label)
            pool = np.flatnonzero(items.labels == label)
            if len(pool) == 0:
                raise ValueError(f"{modality} has no item labelled {LABELS[label]}")
            picks[rows] = rng.choice(pool, size=len(rows), replace=True)
        index[modality] = picks
    return y, index


def triple_probabilities(parts: Mapping[str, ModalityItems], index: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per modality, the (n, 7) probabilities of the items drawn for each triple."""
    return {m: parts[m].probs[index[m]] for m in parts}


def subset_mask(subset: Sequence[str], n: int) -> np.ndarray:
    """An (n, 3) presence mask with the same subset on every row."""
    row = np.array([m in subset for m in MODALITIES], dtype=bool)
    return np.tile(row, (n, 1))


def random_subset_masks(n: int, rng: np.random.Generator) -> np.ndarray:
    """An (n, 3) mask assigning the seven subsets to rows in (near) equal numbers, shuffled."""
    ids = rng.permutation(np.resize(np.arange(len(SUBSETS)), n))
    return np.stack([subset_mask(SUBSETS[i], 1)[0] for i in ids]) if n else np.zeros((0, len(MODALITIES)), bool)


def training_matrix(probabilities: Mapping[str, np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features with modalities randomly dropped (each subset equally often) and that mask."""
    n = len(next(iter(probabilities.values())))
    mask = random_subset_masks(n, rng)
    return stack_features(probabilities, mask), mask


def mean_baseline(probabilities: Mapping[str, np.ndarray], subset: Sequence[str]) -> np.ndarray:
    """Average of the present modalities' probabilities."""
    result: np.ndarray = np.mean([probabilities[m] for m in subset], axis=0)
    return result


def product_baseline(probabilities: Mapping[str, np.ndarray], subset: Sequence[str]) -> np.ndarray:
    """Normalised product of the present modalities' probabilities (naive-Bayes style, floored at EPSILON)."""
    logs = np.sum([np.log(np.clip(probabilities[m], EPSILON, 1.0)) for m in subset], axis=0)
    logs -= logs.max(axis=1, keepdims=True)
    p = np.exp(logs)
    result: np.ndarray = p / p.sum(axis=1, keepdims=True)
    return result


def synthetic_items(
    modality: str, n: int, strength: float, rng: np.random.Generator, n_groups: int = 10
) -> ModalityItems:
    """Fake modality probabilities for tests/development: ``strength`` sets how often the top class is right."""
    labels = np.resize(np.arange(NUM_LABELS), n)
    rng.shuffle(labels)
    logits = rng.normal(0.0, 1.0, size=(n, NUM_LABELS))
    logits[np.arange(n), labels] += strength
    # A systematic confusion (fear looks like surprise) so there is structure for a forest to learn.
    logits[labels == LABELS.index("fear"), LABELS.index("surprise")] += strength * 0.8
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    ids = np.array([f"{modality}-{i}" for i in range(n)])
    groups = np.array([f"g{i % n_groups:02d}" for i in range(n)])
    return ModalityItems(modality, p, labels.astype(np.int64), ids, groups)


def jitter(probabilities: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Perturb probability rows in log space (``softmax(log p + N(0, sigma^2))``); 0 returns them as is.

    Training triples reuse each validation item many times; jittering the copies keeps the forest
    from memorising individual items' exact vectors (speech has only ~120 fusion-train clips).
    """
    if sigma <= 0:
        return probabilities
    logits = np.log(np.clip(probabilities, EPSILON, 1.0)) + rng.normal(0.0, sigma, size=probabilities.shape)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    result: np.ndarray = p / p.sum(axis=1, keepdims=True)
    return result
