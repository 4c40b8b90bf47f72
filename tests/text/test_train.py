"""The training scripts, a few steps on a tiny synthetic dataset with a tiny random encoder."""

import argparse
import csv
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from services.text.model import PACKAGED_ENCODER, MiniLMEmotionModel, build_network, load, load_tokenizer
from shared.labels import LABELS
from training.text import train, train_bilstm
from training.text.data import class_weights, load_split

WORDS = {
    "happy": "joy delighted wonderful great love",
    "sad": "crying lonely miss grief tears",
    "angry": "furious rage hate annoyed mad",
    "fear": "scared terrified afraid panic dark",
    "neutral": "table meeting schedule report chair",
}


def write_split(folder: Path, split: str, n: int, seed: int) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{split}.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "emotion", "original_label"])
        for i in range(n):
            label = list(WORDS)[i % len(WORDS)]
            words = rng.choices(WORDS[label].split(), k=rng.randint(2, 12))
            writer.writerow([" ".join(["i", "feel", *words]), label, label])


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("text-data")
    for seed, name in enumerate(["alpha", "beta"]):
        write_split(root / name, "train", 40, seed)
        write_split(root / name, "val", 10, seed + 10)
    return root


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised 2-layer BERT with the packaged MiniLM tokenizer, saved locally."""
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-encoder")
    tokenizer = load_tokenizer(PACKAGED_ENCODER)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_load_split_and_class_weights(data_root: Path) -> None:
    examples = load_split(data_root, "train")
    assert len(examples) == 80
    assert {e.dataset for e in examples} == {"alpha", "beta"}
    weights = class_weights([0, 0, 0, 3])
    assert weights[1] == 0  # unseen classes get no weight
    assert weights[0] < weights[3]
    assert weights[weights > 0].mean() == pytest.approx(1.0)


@pytest.mark.parametrize("freeze", [0, 1])
def test_train_exports_a_loadable_model_and_resumes(
    data_root: Path, tiny_encoder: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], freeze: int
) -> None:
    import torch

    out, work = tmp_path / "out", tmp_path / "work"
    args = [
        *("--data", str(data_root), "--encoder", tiny_encoder, "--out", str(out), "--work", str(work)),
        *("--epochs", "1", "--batch-size", "8", "--max-tokens", "32", "--freeze-layers", str(freeze)),
        *("--lr", "1e-3", "--checkpoint-every", "2", "--log-every", "1", "--metrics", str(tmp_path / "m.json")),
        *("--figure", str(tmp_path / "confusion.png")),
    ]
    assert train.main(args) == 0
    printed = capsys.readouterr().out
    assert "step 10/10" in printed
    for name in ("alpha", "beta", "overall"):
        assert "=== minilm-l6-emotion" in printed and f": {name} (val) ===" in printed
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics) == {"alpha", "beta", "overall"}
    assert metrics["overall"]["n"] == 20
    assert (tmp_path / "confusion.png").stat().st_size > 1000

    shipped = load(out)
    assert isinstance(shipped, MiniLMEmotionModel)
    config = json.loads((out / "config.json").read_text())
    assert config["encoder"] == tiny_encoder
    assert all(name.startswith(f"encoder.layer.{freeze}") or freeze == 0 for name in config["trained"][:1])
    texts = ["i feel joy", "i feel scared of the dark", "meeting report"]
    probs = shipped.predict(texts)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)

    # The exported fp16 deltas + head reproduce the trained network.
    state = torch.load(work / train.CHECKPOINT, weights_only=False)
    network = build_network(tiny_encoder, dropout=0.0)
    network.load_state_dict(state["network"])
    network.eval()
    reference = MiniLMEmotionModel(network, load_tokenizer(tiny_encoder), "ref", "0", 32)
    np.testing.assert_allclose(shipped.logits(texts), reference.logits(texts), atol=2e-3)

    # Rerunning the same command resumes from the final checkpoint instead of training again.
    assert train.main(args) == 0
    assert "resumed from" in capsys.readouterr().out


@pytest.mark.parametrize("freeze", [0, 1, 2])
def test_split_forward_through_cached_lower_layers_matches_the_network(tiny_encoder: str, freeze: int) -> None:
    """Frozen layers cached, the rest run from the cache: same logits as the whole network on a padded batch."""
    import torch

    torch.manual_seed(0)
    network = build_network(tiny_encoder).eval()
    input_ids, mask = train.collate([[101, 2000, 2001, 102], [101, 2003, 102], [101, 102]], pad_id=0)
    with torch.no_grad():
        expected = network(input_ids, mask)
        hidden = train.lower_states(network.encoder, input_ids, mask, freeze)
        split = train.upper_logits(network, hidden, mask, freeze)
    assert mask[2].tolist() == [1, 1, 0, 0]  # padding is really present, so the mask matters
    torch.testing.assert_close(split, expected, rtol=1e-4, atol=1e-5)


def test_make_batches_groups_similar_lengths() -> None:
    lengths = [random.Random(i).randint(3, 60) for i in range(400)]
    batches = train.make_batches(lengths, 16, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(400))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 10  # random batches would spread over ~50 tokens


def test_train_bilstm_tiny(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    out = tmp_path / "bilstm"
    args = [
        *("--data", str(data_root), "--out", str(out), "--epochs", "1", "--batch-size", "16"),
        *("--vocab-size", "100", "--min-count", "1", "--max-tokens", "12", "--embedding-dim", "8", "--units", "8"),
    ]
    assert train_bilstm.main(args) == 0
    assert "overall" in capsys.readouterr().out
    model = load(out)
    probs = model.predict(["i feel joy", "unknownword " * 30])
    assert probs.shape == (2, len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert model.truncated(["a " * 13, "a " * 12]) == [True, False]


def tiny_args(data_root: Path, encoder: str, tmp_path: Path, *extra: str) -> argparse.Namespace:
    return train.parse_args(
        [
            *("--data", str(data_root), "--encoder", encoder, "--out", str(tmp_path / "out")),
            *("--work", str(tmp_path / "work"), "--epochs", "2", "--batch-size", "8", "--max-tokens", "32"),
            *("--freeze-layers", "0", "--lr", "1e-3", "--head-lr", "1e-2", "--log-every", "100", *extra),
        ]
    )


def test_prepare_data_tokenises_once_with_the_window(data_root: Path, tiny_encoder: str, tmp_path: Path) -> None:
    data = train.prepare_data(tiny_args(data_root, tiny_encoder, tmp_path, "--max-tokens", "6"))
    assert (len(data.train), len(data.val)) == (80, 20)
    assert max(data.lengths) == 6  # head-truncated to the window, [CLS]/[SEP] included
    assert data.labels.tolist() == [e.label for e in data.train]
    assert data.class_weights.shape == (len(LABELS),)


def test_lr_schedule_warms_up_then_decays_to_zero() -> None:
    factor = train.lr_schedule(100, 0.1)
    assert factor(0) == pytest.approx(0.1)
    assert factor(9) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.5)
    assert factor(100) == 0.0


def test_train_loop_learns_and_checkpoints_resume_where_they_stopped(
    data_root: Path, tiny_encoder: str, tmp_path: Path
) -> None:
    import torch

    torch.manual_seed(0)
    args = tiny_args(data_root, tiny_encoder, tmp_path)
    data = train.prepare_data(args)
    trainer = train.build_trainer(args, data)
    assert (trainer.steps_per_epoch, trainer.total_steps) == (10, 20)

    def loss() -> float:
        trainer.network.eval()
        with torch.no_grad():
            input_ids, mask = train.collate(data.token_ids, data.pad_id)
            value = float(trainer.loss_fn(trainer.network(input_ids, mask), data.labels))
        trainer.network.train()
        return value

    before, epochs = loss(), []
    train.train_loop(args, data, trainer, on_epoch=epochs.append)
    assert trainer.step == 20
    assert epochs == [1]  # called between epochs, not after the last
    assert loss() < before * 0.8
    path, signature = tmp_path / "ckpt.pt", train.signature_of(args)
    train.save_checkpoint(trainer, path, signature)

    fresh = train.build_trainer(args, data)
    assert train.resume(fresh, path, signature)
    assert fresh.step == 20
    train.train_loop(args, data, fresh)  # nothing left to do
    assert fresh.step == 20
    other = train.signature_of(tiny_args(data_root, tiny_encoder, tmp_path, "--seed", "99"))
    assert not train.resume(train.build_trainer(args, data), path, other)


def test_export_writes_a_fingerprinted_artefact_the_service_loads(
    data_root: Path, tiny_encoder: str, tmp_path: Path
) -> None:
    args = tiny_args(data_root, tiny_encoder, tmp_path)
    trainer = train.build_trainer(args, train.prepare_data(args))
    out = train.export(args, trainer.network, steps=0)
    config = json.loads((out / "config.json").read_text())
    assert config["steps"] == 0
    assert "model.safetensors" in config["encoder_files"]
    assert "data" not in config["training"]
    model = load(out)
    assert model.predict(["i feel joy"]).shape == (1, len(LABELS))


def test_evaluate_reports_each_dataset_and_overall(data_root: Path, tiny_encoder: str, tmp_path: Path) -> None:
    args = tiny_args(data_root, tiny_encoder, tmp_path)
    data = train.prepare_data(args)
    trainer = train.build_trainer(args, data)
    model = MiniLMEmotionModel(trainer.network, data.tokenizer, "t", "0", 32)
    reports = train.evaluate(model, data.val)
    assert set(reports) == {"alpha", "beta", "overall"}
    assert 0.0 <= reports["overall"]["accuracy"] <= 1.0
    assert trainer.network.training  # evaluation leaves the training mode as it was
