"""Dependency floors stay above releases with known advisories, and the installed versions meet them."""

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

#: Package -> first release without the advisories we know of (see the comment in pyproject.toml).
SAFE_FLOORS = {
    "fastapi": "0.120.1",  # the first FastAPI that admits Starlette >= 0.49.1
    "starlette": "0.49.1",  # CVE-2024-47874 (< 0.40), CVE-2025-54121 (< 0.47.2), CVE-2025-62727 (< 0.49.1)
    "python-multipart": "0.0.18",  # CVE-2024-53981
    "h11": "0.16",  # CVE-2025-43859
    "python-json-logger": "3.3",  # CVE-2025-27607
    "pyjwt": "2.10.1",  # CVE-2024-53861
    "transformers": "4.53",  # ReDoS advisories fixed up to 4.53
    "keras": "3.12",  # safe_mode bypasses fixed up to 3.12
    "pillow": "11.3",  # CVE-2025-48379
}


def requirements() -> dict[str, list[Requirement]]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    found: dict[str, list[Requirement]] = {}
    groups = [project["dependencies"], *project["optional-dependencies"].values()]
    for line in (line for group in groups for line in group):
        req = Requirement(line)
        found.setdefault(req.name.lower(), []).append(req)
    return found


def floor(req: Requirement) -> Version | None:
    lows = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
    return max(lows) if lows else None


@pytest.mark.parametrize(("name", "safe"), SAFE_FLOORS.items())
def test_floor_is_above_known_advisories(name: str, safe: str) -> None:
    declared = requirements().get(name)
    assert declared, f"{name} should be declared with a floor"
    for req in declared:
        low = floor(req)
        assert low is not None and low >= Version(safe), f"{req} admits versions before {safe}"


@pytest.mark.parametrize("name", SAFE_FLOORS)
def test_installed_version_meets_the_floor(name: str) -> None:
    installed = Version(metadata.version(name))
    for req in requirements()[name]:
        assert req.specifier.contains(installed, prereleases=True), f"{name} {installed} does not meet {req}"
