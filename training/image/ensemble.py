"""Pack several exported face-emotion weight files into one ensemble artefact (probabilities averaged).

    python -m training.image.ensemble /tmp/fer_s11/face_emotion.pt /tmp/fer_s12/face_emotion.pt \\
        services/image/artifacts/face_emotion.pt --out services/image/artifacts/face_emotion.pt

The service loads the result like a single network (``services.image.model.build_network``): one
forward pass runs every member and returns the log of their mean softmax (``EmotionEnsemble``).
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from shared.labels import LABELS


def pack(
    paths: list[Path], out: Path, *, tta: bool = True, name: str = "face-emotion-resnet-ensemble"
) -> dict[str, Any]:
    """Write the members' fp16 weights as ``members.<i>.*`` with their metadata; return the new metadata.

    ``tta`` is recorded as the file's own choice of flip TTA (the service follows it unless ``TTA`` is set).
    """
    if len(paths) < 2:
        raise ValueError("an ensemble needs at least two weight files")
    weights: dict[str, torch.Tensor] = {}
    members: list[dict[str, Any]] = []
    for i, path in enumerate(paths):  # everything is read before ``out`` is written: it may be one of them
        state = torch.load(path, map_location="cpu", weights_only=True)
        meta = dict(state["meta"])
        if meta.get("members"):
            raise ValueError(f"{path} is already an ensemble; pack its members instead")
        if list(meta.get("labels", LABELS)) != list(LABELS):
            raise ValueError(f"{path} was trained with labels {meta.get('labels')}, expected {list(LABELS)}")
        for key, value in state["state_dict"].items():
            weights[f"members.{i}.{key}"] = value.half() if value.is_floating_point() else value
        members.append({**meta, "file": path.name})
    meta = {
        "name": name,
        "version": f"{time.strftime('%Y.%m.%d')}-x{len(members)}",
        "labels": list(LABELS),
        "input_size": members[0].get("input_size", 48),
        "tta": tta,
        "members": members,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": weights, "meta": meta}, out)
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, nargs="+", help="exported face_emotion.pt files (single networks)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--tta", action=argparse.BooleanOptionalAction, default=True, help="serve with flip TTA unless TTA is set"
    )
    args = parser.parse_args(argv)
    meta = pack(args.weights, args.out, tta=args.tta)
    print(f"wrote {args.out}: {len(meta['members'])} members, version {meta['version']}, flip TTA {meta['tta']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
