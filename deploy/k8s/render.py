"""Render one overlay of the Kubernetes manifests (``kubectl kustomize``) and print the YAML.

python deploy/k8s/render.py                 # production
python deploy/k8s/render.py dev --out /tmp/dev.yaml
python deploy/k8s/render.py production | kubectl apply -f -
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

K8S_DIR = Path(__file__).resolve().parent
OVERLAYS_DIR = K8S_DIR / "overlays"


def overlays() -> list[str]:
    return sorted(p.name for p in OVERLAYS_DIR.iterdir() if (p / "kustomization.yaml").is_file())


def kustomize_command(path: Path) -> list[str]:
    """``kubectl kustomize PATH``, or the standalone ``kustomize build PATH``."""
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize", str(path)]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build", str(path)]
    raise FileNotFoundError("neither kubectl nor kustomize is on PATH")


def render(overlay: str) -> str:
    """The overlay's manifests as one multi-document YAML string."""
    path = K8S_DIR / "base" if overlay == "base" else OVERLAYS_DIR / overlay
    if not (path / "kustomization.yaml").is_file():
        raise ValueError(f"unknown overlay {overlay!r}; choose one of: base, {', '.join(overlays())}")
    result = subprocess.run(kustomize_command(path), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"kustomize failed for {overlay}:\n{result.stderr}")
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overlay", nargs="?", default="production", help="an overlay name (or base)")
    parser.add_argument("--out", type=Path, help="write to this file instead of stdout")
    args = parser.parse_args(argv)
    try:
        manifests = render(args.overlay)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(manifests)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(manifests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
