"""The ONNX export cache: written once, readable by the service's user, never fatal when unwritable."""

import stat
from pathlib import Path

from shared.onnx_runtime import cached_onnx


def test_the_cached_export_is_written_once_and_readable_by_everyone(tmp_path: Path) -> None:
    builds: list[int] = []

    def build() -> bytes:
        builds.append(1)
        return b"onnx-bytes"

    path = tmp_path / "cache" / "text-onnx-0123.onnx"
    assert cached_onnx(path, build) == b"onnx-bytes"
    # An image build writes it as root; the service runs as an unprivileged user and must read it.
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert cached_onnx(path, build) == b"onnx-bytes"
    assert builds == [1]
    assert not list(path.parent.glob("*.part"))


def test_an_unwritable_cache_costs_the_export_not_the_service(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cached_onnx(blocker / "text.onnx", lambda: b"exported") == b"exported"
