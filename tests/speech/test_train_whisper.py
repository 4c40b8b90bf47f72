"""The Whisper-head training code on a tiny synthetic set: encode -> cache -> a few epochs -> export -> serve."""

import json
from pathlib import Path

import numpy as np
import pytest

from services.speech.model import EncoderConfig, load
from shared.labels import LABELS
from tests.speech.conftest import voice, wav_bytes
from training.speech import encode, train_whisper
from training.speech.data import Clip
from training.speech.train_whisper import HeadParams, class_weights, clip_probabilities


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 'synthetic' dataset of 8 clips (sad = low voice, happy = high) and its encoder cache."""
    root = tmp_path_factory.mktemp("tiny")
    data = root / "data"
    (data / "synthetic").mkdir(parents=True)
    rows = ["path,emotion,speaker"]
    for i in range(8):
        label = "sad" if i % 2 == 0 else "happy"
        name = f"{i}.wav"
        # The last clip lasts 5 s: three overlapping windows (0-3, 1.5-4.5, 3-5 s).
        seconds = 5.0 if i == 7 else 1.2 + 0.1 * i
        (data / "synthetic" / name).write_bytes(wav_bytes(voice(seconds, f0=110 if label == "sad" else 260, seed=i)))
        rows.append(f"{name},{label},s{i % 2}")
    (data / "synthetic" / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    feats = root / "feats"
    encode.run(
        data=data, out=feats, augment="orig", copies=1, seed=0, threads=1, datasets=["synthetic"], frame_stride=4
    )
    return data, feats


def test_encode_caches_every_window(tiny: tuple[Path, Path]) -> None:
    data, feats = tiny
    files = sorted((feats / "orig" / "synthetic").glob("*.npz"))
    assert len(files) == 8
    npz = feats / "orig" / "synthetic" / "7.npz"
    with np.load(npz) as cached:
        # Embeddings, six blocks and the final output, each mean+std pooled.
        assert cached["pooled"].shape == (3, 8, 1024)
    x, durations = train_whisper.pooled_windows(npz, EncoderConfig(layers=(2, 3, 4), combine="mean"))
    assert x.shape == (3, 1024) and np.isfinite(x).all()
    both, _ = train_whisper.pooled_windows(npz, EncoderConfig(layers=(3, -1), combine="concat"))
    assert both.shape == (3, 2048)
    assert durations.tolist() == pytest.approx([3.0, 3.0, 2.0], abs=0.1)
    # The six blocks over time, 80 ms frames: 3 s -> 38 frames, 2 s -> 25.
    frames, _ = train_whisper.frame_windows(npz, EncoderConfig(layers=(2, 5), pooling="attention", frame_stride=4))
    with pytest.raises(ValueError, match="stride 4"):
        train_whisper.frame_windows(npz, EncoderConfig(layers=(2,), pooling="attention", frame_stride=2))
    assert [f.shape for f in frames] == [(38, 1024), (38, 1024), (25, 1024)]
    with np.load(npz) as cached:
        assert cached["frames"].shape == (101, 6, 512) and cached["frame_counts"].tolist() == [38, 38, 25]
        # Their plain mean is the pooled mean of the same block (up to float16 storage).
        np.testing.assert_allclose(
            cached["frames"][:38, 2].astype(np.float32).mean(0),
            cached["pooled"][0, 3, :512].astype(np.float32),
            atol=0.02,
        )
    # A second run resumes: nothing is recomputed.
    mtimes = [f.stat().st_mtime_ns for f in files]
    encode.run(data=data, out=feats, augment="orig", copies=1, seed=0, threads=1, datasets=["synthetic"])
    assert [f.stat().st_mtime_ns for f in files] == mtimes


def test_train_a_few_epochs_export_and_serve(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    data, feats = tiny
    # A middle-layer recipe: the service then runs only the first three blocks.
    recipe = EncoderConfig(layers=(2, 3), combine="mean")
    windows = train_whisper.load_windows(data, feats, datasets=["synthetic"], encoder=recipe)
    assert windows.x.shape == (10, 1024)
    rows = np.arange(len(windows.x))
    model = train_whisper.train_loop(windows, rows, HeadParams(epochs=3, batch_size=4, hidden=16))
    report = train_whisper.evaluate(model, windows, rows)
    assert report["n"] == 8
    assert sum(map(sum, report["confusion"])) == 8

    train_whisper.export(model, tmp_path, metrics={"note": "test"}, encoder=recipe, version="test")
    served = load(tmp_path)
    assert served.encoder is not None and served.encoder.num_layers == 3
    assert (served.name, served.version) == (train_whisper.MODEL_NAME, "test")
    probabilities = served.predict([voice(1.5, f0=120, seed=99), voice(2.0, f0=250, seed=98)])
    assert probabilities.shape == (2, len(LABELS))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # The service's features are the cached ones: the same audio gives the same head output.
    cached = np.asarray(model.predict(windows.x[:1], verbose=0))
    clip = windows.clips[int(windows.clip[0])]
    from services.speech.audio import SegmentationParams, decode, segment

    y = decode(Path(clip.path).read_bytes(), sample_rate=16000, max_duration_s=60)
    (seg,) = segment(y, sample_rate=16000, params=SegmentationParams())
    np.testing.assert_allclose(served.predict([seg.samples]), cached, atol=2e-3)


def test_attention_pooling_head_trains_exports_and_serves(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    data, feats = tiny
    recipe = EncoderConfig(layers=(1, 2), combine="concat", pooling="attention", frame_stride=4)
    windows = train_whisper.load_windows(data, feats, datasets=["synthetic"], encoder=recipe)
    assert windows.x.shape == (10, 38, 1024) and windows.x.dtype == np.float16
    rows = np.arange(len(windows.x))
    heads = [
        train_whisper.train_loop(windows, rows, HeadParams(epochs=2, batch_size=4, hidden=16, seed=s)) for s in (0, 1)
    ]
    model = train_whisper.average_heads([train_whisper.inference_head(h) for h in heads])
    assert train_whisper.evaluate(model, windows, rows)["n"] == 8

    train_whisper.export(model, tmp_path, metrics={"note": "test"}, encoder=recipe, version="test")
    served = load(tmp_path)
    assert served.config.encoder == recipe and served.encoder is not None and served.encoder.num_layers == 2
    # Same audio, same answer as the cached frames give the head.
    from services.speech.audio import SegmentationParams, decode, segment

    clip = windows.clips[int(windows.clip[0])]
    y = decode(Path(clip.path).read_bytes(), sample_rate=16000, max_duration_s=60)
    (seg,) = segment(y, sample_rate=16000, params=SegmentationParams())
    cached = np.asarray(model.predict(windows.x[:1].astype(np.float32), verbose=0))
    alone = served.predict([seg.samples])
    np.testing.assert_allclose(alone, cached, atol=2e-3)
    # Batched with a longer window, this one is zero-padded and masked: the same answer.
    batched = served.predict([seg.samples, voice(3.0, f0=200, seed=5)])
    np.testing.assert_allclose(batched[0], alone[0], atol=1e-5)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)


def test_training_resumes_from_its_checkpoint(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    data, feats = tiny
    windows = train_whisper.load_windows(data, feats, datasets=["synthetic"])
    rows = np.arange(len(windows.x))
    hp = HeadParams(epochs=2, batch_size=4, hidden=8)
    train_whisper.train_loop(windows, rows, hp, checkpoint_dir=tmp_path / "ckpt")
    assert any((tmp_path / "ckpt").iterdir())


def test_weight_averaging_returns_the_mean_of_the_epochs_weights_and_survives_a_resume(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    data, feats = tiny
    windows = train_whisper.load_windows(data, feats, datasets=["synthetic"])
    rows = np.arange(len(windows.x))
    seen: dict[int, list[np.ndarray]] = {}

    def record(epoch: int, model: object) -> None:
        seen[epoch] = [np.array(v) for v in model.get_weights()]  # type: ignore[attr-defined]

    plain = train_whisper.train_loop(windows, rows, HeadParams(epochs=4, batch_size=4, hidden=8), on_epoch=record)
    # Epoch-end weights of the plain run, then the same run averaging epochs 2-4: one is the other's mean.
    averaged_hp = HeadParams(epochs=4, batch_size=4, hidden=8, average_from=2)
    average = train_whisper.WeightAverage(2)
    for epoch in (1, 2, 3, 4):
        average.update(epoch, _Weights(seen[epoch]))
    assert average.epochs == [2, 3, 4]
    for mean, *snapshots in zip(average.mean or [], seen[2], seen[3], seen[4], strict=True):
        np.testing.assert_allclose(mean, np.mean(snapshots, axis=0), rtol=1e-5, atol=1e-6)
    head = train_whisper.train_loop(windows, rows, averaged_hp, checkpoint_dir=tmp_path / "ckpt")
    saved = train_whisper.WeightAverage(2, tmp_path / "ckpt")  # what a resumed run reads back
    assert saved.epochs == [2, 3, 4]
    for got, want in zip(head.get_weights(), saved.mean or [], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert len(plain.get_weights()) == len(head.get_weights())


def test_mixup_mixes_each_window_with_a_partner_of_its_batch() -> None:
    rng = np.random.default_rng(0)
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.eye(7, dtype=np.float32)[[0, 1, 2, 3, 4, 5]]
    weights = np.array([1, 2, 3, 4, 5, 6], dtype=np.float32)
    mixed_x, mixed_y, mixed_w = train_whisper.mixup_batch(x, y, weights, 0.4, rng)
    np.testing.assert_allclose(mixed_y.sum(axis=1), 1.0, rtol=1e-6)  # still a distribution over the labels
    for row in range(6):
        # Labels are one-hot and distinct, so a mixed target names its two windows and lam.
        lam = mixed_y[row, row]
        others = [k for k in np.flatnonzero(mixed_y[row] > 1e-6) if k != row]
        partner = others[0] if others else row
        assert len(others) <= 1 and 0 < lam <= 1
        np.testing.assert_allclose(mixed_x[row], lam * x[row] + (1 - lam) * x[partner], rtol=1e-5)
        np.testing.assert_allclose(mixed_w[row], lam * weights[row] + (1 - lam) * weights[partner], rtol=1e-5)
    assert not np.allclose(mixed_x, x)


def test_training_with_mixup_learns_the_tiny_set(tiny: tuple[Path, Path]) -> None:
    data, feats = tiny
    windows = train_whisper.load_windows(data, feats, datasets=["synthetic"])
    rows = np.arange(len(windows.x))
    hp = HeadParams(epochs=30, batch_size=4, hidden=16, mixup=0.4, input_noise=0.0, input_dropout=0.0, dropout=0.0)
    head = train_whisper.train_loop(windows, rows, hp)
    report = train_whisper.evaluate(head, windows, rows)
    assert report["accuracy"] == 1.0  # low voice = sad, high = happy: separable even when trained on mixtures


class _Weights:
    def __init__(self, weights: list[np.ndarray]) -> None:
        self.weights = weights

    def get_weights(self) -> list[np.ndarray]:
        return self.weights


def test_clip_probabilities_weight_windows_by_duration() -> None:
    probs = np.zeros((3, 7))
    probs[0, 0] = probs[1, 3] = probs[2, 3] = 1.0
    ids, out = clip_probabilities(probs, np.array([4, 4, 9]), np.array([3.0, 1.0, 2.0]))
    assert ids.tolist() == [4, 9]
    np.testing.assert_allclose(out[0, [0, 3]], [0.75, 0.25])
    np.testing.assert_allclose(out[1, 3], 1.0)


def test_out_of_fold_clips_are_saved_for_fusion(tmp_path: Path) -> None:
    clips = [
        Clip(path=f"/data/ravdess/Actor_{a:02d}/x{a}.wav", label=k, speaker=f"ravdess_{a:02d}", dataset="ravdess")
        for k, a in enumerate((1, 4, 16))
    ]
    probs = np.random.default_rng(0).dirichlet(np.ones(7), size=3)
    path = train_whisper.save_out_of_fold(tmp_path / train_whisper.OUT_OF_FOLD_FILE, clips, probs)
    with np.load(path) as saved:
        assert saved["paths"].tolist() == [c.path for c in clips]
        assert saved["labels"].tolist() == [0, 1, 2] and saved["actors"].tolist() == [1, 4, 16]
        np.testing.assert_array_equal(saved["probs"], probs)


def test_class_weights_balance_the_classes() -> None:
    weights = class_weights(np.array([6, 6, 6, 0]))
    assert weights[6] * 3 == pytest.approx(weights[0])
    assert weights[1] == 0.0


def test_augmentation_changes_audio_but_keeps_its_length_close() -> None:
    y = voice(2.0, seed=1)
    out = encode.augment_mix(y, np.random.default_rng(3))
    assert abs(out.shape[0] - y.shape[0]) <= 0.12 * y.shape[0]
    assert np.abs(out).max() <= 1.0
    assert not np.allclose(out[: min(len(out), len(y))], y[: min(len(out), len(y))])


def test_cross_validation_scores_every_training_actor_out_of_fold(tmp_path: Path) -> None:
    """``cv``: four speaker folds of actors 01-16, each scored by heads that never saw its actors."""
    rng = np.random.default_rng(0)
    clips = [
        Clip(path=f"a{actor}_{k}.flac", label=k % 2 * 3, speaker=f"Actor_{actor:02d}", dataset="ravdess")
        for actor in range(1, 21)
        for k in range(4)
    ]
    labels = np.array([c.label for c in clips])
    # Two separable classes (angry / happy): any head learns them from the other folds.
    x = rng.normal(0, 1, (len(clips), 32)).astype(np.float32) + (labels[:, None] == 3) * 2.0
    windows = train_whisper.Windows(
        x=x,
        clip=np.arange(len(clips)),
        duration=np.ones(len(clips), np.float32),
        copy=np.zeros(len(clips), np.int64),
        clips=clips,
    )
    hp = HeadParams(epochs=10, batch_size=16, hidden=8, learning_rate=0.01)
    result = train_whisper.run_cv(windows, hp, tmp_path, False, seeds=1)
    assert sorted(p.name for p in tmp_path.glob("cv_fold_*.npz")) == [f"cv_fold_{k}.npz" for k in range(4)]
    assert [h["epoch"] for h in result["history"]] == [5, 10]
    assert result["history"][-1]["accuracy"] > 0.9
    assert json.loads((tmp_path / "cv.json").read_text())["best"] == result["best"]
    # 64 clips of actors 01-16 were scored; actors 17-20 never were.
    with np.load(tmp_path / "cv_fold_0.npz") as fold:
        assert fold["probs"].shape == (2, 16, len(LABELS))
    # calibrate at a cv epoch with as many seeds reuses the folds' probabilities instead of training again
    # (marked ones here, which no training would reproduce).
    marked = rng.dirichlet(np.ones(len(LABELS)), size=(2, 16))
    np.savez(tmp_path / "cv_fold_2.npz", epochs=np.array([5, 10]), probs=marked, seeds=np.array(1))
    train_whisper.run_final(windows, hp, tmp_path, False, None, seeds=1)
    train_whisper.run_calibrate(windows, hp, tmp_path, False, None, seeds=1)
    with np.load(tmp_path / "calibration_fold_2.npz") as calibration:
        np.testing.assert_allclose(calibration["probs"], marked[1])
        rows = np.flatnonzero([9 <= int(c.speaker[-2:]) <= 12 for c in clips])
        assert calibration["clip_ids"].tolist() == rows.tolist()
    assert train_whisper.cv_fold_probabilities(tmp_path / "cv_fold_2.npz", 10, seeds=3) is None
