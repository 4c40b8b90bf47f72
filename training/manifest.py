"""Reading the CSV manifests users bring: ``text,emotion`` or ``path,emotion``."""

import csv
from dataclasses import dataclass
from pathlib import Path

from shared.labels import LABEL_TO_INDEX, LABELS


class ManifestError(Exception):
    """A manifest that cannot be evaluated; the message says why."""


@dataclass(frozen=True)
class Manifest:
    """The rows of a manifest, its folder (paths are relative to it) and the label indices."""

    path: Path
    rows: list[dict[str, str]]
    labels: list[int]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def column(self, name: str) -> list[str]:
        return [row[name] for row in self.rows]

    def resolve(self, column: str = "path") -> list[Path]:
        """Absolute file paths of ``column``; every one must exist."""
        paths = [(self.base_dir / value).resolve() for value in self.column(column)]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise ManifestError(f"{len(missing)} file(s) listed in {self.path} do not exist: {shown}")
        return paths


def read_manifest(path: str | Path, input_column: str) -> Manifest:
    """Load and validate a manifest: the file exists, has the columns, and every label is known."""
    manifest_path = Path(path)
    if not manifest_path.is_file():
        raise ManifestError(f"manifest not found: {manifest_path}")
    with manifest_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in (input_column, "emotion") if c not in columns]
        if missing:
            raise ManifestError(
                f"manifest {manifest_path} lacks column(s) {', '.join(missing)}; it has: {', '.join(columns) or 'none'}"
            )
        rows = list(reader)
    if not rows:
        raise ManifestError(f"manifest {manifest_path} has no rows")
    labels: list[int] = []
    for line, row in enumerate(rows, start=2):
        emotion = (row.get("emotion") or "").strip().lower()
        if emotion not in LABEL_TO_INDEX:
            raise ManifestError(
                f"{manifest_path}:{line}: unknown emotion {row.get('emotion')!r}; expected one of {', '.join(LABELS)}"
            )
        labels.append(LABEL_TO_INDEX[emotion])
    return Manifest(path=manifest_path, rows=rows, labels=labels)
