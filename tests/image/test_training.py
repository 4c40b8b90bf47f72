"""The training code runs end to end on a tiny synthetic set and exports a loadable model."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from services.image import model as face_model
from services.image.network import EmotionNet
from shared.labels import LABELS
from training.image.data import Split
from training.image.train import (
    WeightAverage,
    augment,
    build_parser,
    cyclic_lr,
    lr_at,
    main,
    photo_augment,
    soft_targets,
    teacher_probabilities,
    train,
)


def tiny_split(n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, n)
    # Brightness carries the label so a few steps can learn something.
    images = np.clip(labels[:, None, None] * 30 + rng.integers(0, 20, (n, 48, 48)), 0, 255).astype(np.uint8)
    ferplus = np.where(rng.random(n) < 0.5, labels, -1)
    return Split(images, labels.astype(np.int64), ferplus.astype(np.int64))


def test_augment_keeps_shape_and_changes_pixels() -> None:
    x = torch.randn(8, 1, 48, 48)
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert not torch.allclose(out, x)


def test_soft_targets_are_distributions() -> None:
    target = soft_targets(torch.tensor([3, 0]), torch.tensor([6, -1]), ferplus_weight=0.2, smoothing=0.1)
    torch.testing.assert_close(target.sum(dim=1), torch.ones(2))
    assert target[0, 3] > target[0, 6] > target[0, 0]
    assert target[1, 0] > 0.9


def test_lr_schedule_warms_up_then_decays() -> None:
    assert lr_at(0.0, 0.1) < lr_at(0.1, 0.1)
    assert lr_at(0.1, 0.1) > lr_at(0.5, 0.1) > lr_at(1.0, 0.1)
    assert lr_at(1.0, 0.1) < 1e-3


def test_train_resume_and_export(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    out, artifact = tmp_path / "run", tmp_path / "artifact" / "face_emotion.pt"
    args = [
        "--out", str(out), "--epochs", "2", "--batch-size", "16", "--widths", "8,8,16,16",
        "--lr", "0.05", "--artifact", str(artifact),
    ]  # fmt: skip
    splits = (tiny_split(64, 0), tiny_split(32, 1))
    best = train(build_parser().parse_args(args), splits)
    assert 0.0 <= best <= 1.0
    assert (out / "best.pt").is_file()
    assert (out / "last.pt").is_file()
    train(build_parser().parse_args([*args, "--resume", "--epochs", "3"]), splits)
    history = torch.load(out / "last.pt", weights_only=False)["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    bare = args[: args.index("--artifact")]  # no --artifact: nothing may be written over a shipped model
    with pytest.raises(SystemExit, match="needs --artifact"):
        main([*bare, "--export-only"])
    assert not artifact.exists()
    main([*args, "--export-only"])
    loaded = face_model.load(artifact.parent)
    probs = loaded.predict([np.zeros((48, 48), np.uint8)])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert loaded.meta["widths"] == [8, 8, 16, 16]
    assert loaded.version.endswith(f"-e{loaded.meta['epoch']}")


def test_photo_augment_corrupts_but_keeps_range() -> None:
    x = torch.rand(64, 1, 48, 48) * 4 - 2
    out = photo_augment(x, torch.Generator().manual_seed(0), strength=1.0)
    assert out.shape == x.shape
    assert not torch.allclose(out, x)
    assert torch.equal(photo_augment(x, torch.Generator().manual_seed(0), strength=0.0), x)


def test_cyclic_lr_restarts_every_epoch() -> None:
    assert cyclic_lr(0.0, 0.02) == pytest.approx(0.02)
    assert cyclic_lr(1.0, 0.02) == pytest.approx(0.001)
    assert cyclic_lr(0.25, 0.02) > cyclic_lr(0.75, 0.02)


def test_weight_average_is_the_mean_and_bn_is_recomputed() -> None:
    a, b = EmotionNet((8, 8, 16, 16)), EmotionNet((8, 8, 16, 16))
    average = WeightAverage(a)
    average.add(a)
    average.add(b)
    for pa, pb, pm in zip(a.parameters(), b.parameters(), average.model.parameters(), strict=True):
        torch.testing.assert_close(pm, (pa + pb) / 2)
    images = torch.randint(0, 256, (32, 48, 48), dtype=torch.uint8)
    average.update_bn(images)
    first_bn = next(m for m in average.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert int(first_bn.num_batches_tracked) == 1
    assert not torch.allclose(first_bn.running_mean, torch.zeros_like(first_bn.running_mean))


def test_fine_tune_from_weights_with_swa(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    start = tmp_path / "start.pt"
    torch.save({"state_dict": EmotionNet((8, 8, 16, 16)).state_dict(), "meta": {}}, start)
    args = [
        "--out", str(tmp_path / "run"), "--epochs", "2", "--batch-size", "16", "--widths", "8,8,16,16",
        "--init", str(start), "--cyclic", "--swa-start", "0", "--photo-aug", "0.5", "--bn-images", "32",
    ]  # fmt: skip
    train(build_parser().parse_args(args), (tiny_split(64, 0), tiny_split(32, 1)))
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["val_acc_swa"] is not None for h in history] == [True, True]
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["swa_count"] == 2


def test_precision_follows_the_cpu(tmp_path: Path) -> None:
    from training.image import train as trainer

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t: fpu sse avx avx2 fma\n")
    assert not trainer.bf16_is_native(cpuinfo)
    cpuinfo.write_text("flags\t: fpu avx2 avx512f amx_bf16 amx_tile\n")
    assert trainer.bf16_is_native(cpuinfo)
    assert not trainer.bf16_is_native(tmp_path / "missing")
    # The context computes in bfloat16 only when enabled.
    layer = torch.nn.Linear(4, 2)
    x = torch.ones(1, 4)
    with trainer.autocast(True):
        assert layer(x).dtype == torch.bfloat16
    with trainer.autocast(False):
        assert layer(x).dtype == torch.float32


def _constant_teacher(path: Path, label: int) -> Path:
    """A weights file whose network answers ``label`` for every image (zero head weights, a large bias)."""
    network = EmotionNet((8, 8, 16, 16))
    head = network.head[-1]
    assert isinstance(head, torch.nn.Linear)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[label] = 12.0
    meta = {"widths": [8, 8, 16, 16], "labels": list(LABELS)}
    torch.save({"state_dict": network.state_dict(), "meta": meta}, path)
    return path


def test_teacher_probabilities_are_cached_and_softened(tmp_path: Path) -> None:
    teacher = _constant_teacher(tmp_path / "teacher.pt", 2)
    images = tiny_split(10, 0).images
    sharp = teacher_probabilities(teacher, images, tmp_path)
    assert sharp.shape == (10, 7) and np.allclose(sharp.sum(axis=1), 1.0, atol=1e-5)
    assert (sharp.argmax(axis=1) == 2).all() and sharp[:, 2].min() > 0.99
    soft = teacher_probabilities(teacher, images, tmp_path, temperature=4.0)
    assert soft[:, 2].max() < sharp[:, 2].min() and np.allclose(soft.sum(axis=1), 1.0, atol=1e-5)
    assert len(list(tmp_path.glob("teacher-*.npy"))) == 2
    teacher.write_bytes(b"changed")  # keyed by the file's hash: a changed file is loaded afresh (and fails here)
    with pytest.raises(face_model.ModelLoadError):
        teacher_probabilities(teacher, images, tmp_path)


def test_distillation_follows_the_teacher(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    teacher = _constant_teacher(tmp_path / "teacher.pt", 2)
    out = tmp_path / "run"
    args = [
        "--out", str(out), "--epochs", "3", "--batch-size", "16", "--widths", "8,8,16,16", "--lr", "0.05",
        "--teacher", str(teacher), "--teacher-weight", "1.0", "--smoothing", "0", "--ferplus-weight", "0",
    ]  # fmt: skip
    train(build_parser().parse_args(args), (tiny_split(64, 0), tiny_split(32, 1)))
    student = EmotionNet((8, 8, 16, 16))
    student.load_state_dict(torch.load(out / "last.pt", weights_only=False)["model"])
    student.eval()
    with torch.no_grad():
        predicted = student(torch.randn(16, 1, 48, 48)).argmax(dim=1)
    assert (predicted == 2).all()  # the labels say otherwise; only the teacher says 2
