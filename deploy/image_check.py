"""Check a service's virtualenv before it becomes an image (run by the Dockerfile and the tests).

Fails when the environment carries another modality's framework or any CUDA library, when
the project is not installed as a regular (non-editable) package, when other services'
code came along, or when a model file of ``services/<name>/artifacts`` did not get installed.

    python -I image_check.py text --source /src
"""

import argparse
import importlib
import importlib.metadata
import json
import re
import sys
import sysconfig
from pathlib import Path

SERVICES = ("gateway", "speech", "text", "image", "fusion", "asr")
#: Services that serve a model and so must ship its files.
MODEL_SERVICES = ("speech", "text", "image", "fusion")
#: Heavy frameworks and the only services allowed to carry them.
FRAMEWORKS: dict[str, tuple[str, ...]] = {
    "torch": ("text", "image"),
    "tensorflow": ("speech",),
    "tensorflow-cpu": ("speech",),
    "tf-keras": ("speech",),
    "jax": (),
    "torchvision": (),
}
#: Never in any image: GPU runtimes (the images are CPU-only).
FORBIDDEN_PREFIXES = ("nvidia-", "triton")
PROJECT = "emotion-platform"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    """Installed distributions, normalised name -> version."""
    return {normalise(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}


def dependency_problems(service: str, dists: dict[str, str]) -> list[str]:
    problems = []
    for name, allowed in FRAMEWORKS.items():
        if name in dists and service not in allowed:
            problems.append(f"{name} {dists[name]} is installed but the {service} image must not carry it")
    problems += [
        f"{name} is installed: images are CPU-only" for name in sorted(dists) if name.startswith(FORBIDDEN_PREFIXES)
    ]
    if "torch" in dists and not dists["torch"].endswith("+cpu"):
        problems.append(f"torch {dists['torch']} is not a CPU build (install it from the CPU wheel index)")
    return problems


def project_problems(service: str, source: Path | None) -> list[str]:
    """The project is a regular install holding this service only, with all its model files."""
    try:
        dist = importlib.metadata.distribution(PROJECT)
    except importlib.metadata.PackageNotFoundError:
        return [f"{PROJECT} is not installed"]
    direct_url = dist.read_text("direct_url.json")
    if direct_url and json.loads(direct_url).get("dir_info", {}).get("editable"):
        return [f"{PROJECT} is installed editable: the image would not contain the code"]
    purelib = Path(sysconfig.get_paths()["purelib"]).resolve()
    try:
        module = importlib.import_module(f"services.{service}.app")
    except Exception as exc:  # any import error means a dependency or file is missing
        return [f"services.{service}.app does not import: {exc!r}"]
    module_file = Path(module.__file__ or "").resolve()
    if purelib not in module_file.parents:
        return [f"services.{service}.app was imported from {module_file}, not from the installed package"]
    problems = []
    if not callable(getattr(module, "create_app", None)):
        problems.append(f"services.{service}.app has no create_app() factory")
    others = sorted(p.name for p in (purelib / "services").iterdir() if p.is_dir() and p.name in SERVICES)
    if others != [service]:
        problems.append(f"the installed services/ holds {others}, expected only {[service]}")
    if source is not None and service in MODEL_SERVICES:
        problems += artefact_problems(source / "services" / service / "artifacts", purelib / "services" / service)
    return problems


def artefact_problems(source_dir: Path, package_dir: Path) -> list[str]:
    """Every file of the service's artifacts folder is installed, byte for byte the same size."""
    files = sorted(p for p in source_dir.rglob("*") if p.is_file()) if source_dir.is_dir() else []
    if not files:
        return [f"no model files in {source_dir}: the service would never become ready"]
    problems = []
    for path in files:
        relative = path.relative_to(source_dir.parent)
        target = package_dir / relative
        if not target.is_file():
            problems.append(f"model file {relative} is not installed (add its suffix to package-data)")
        elif target.stat().st_size != path.stat().st_size:
            problems.append(f"model file {relative} differs from the installed copy")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--source", type=Path, help="the build folder holding services/<name>/artifacts")
    args = parser.parse_args(argv)
    problems = dependency_problems(args.service, installed()) + project_problems(args.service, args.source)
    for problem in problems:
        print(f"image check ({args.service}): {problem}", file=sys.stderr)
    if not problems:
        print(f"image check ({args.service}): ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
