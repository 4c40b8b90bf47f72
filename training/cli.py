"""The ``emotion`` command: evaluate models on a manifest, or predict one input.

Each modality's ``training.<modality>.evaluate`` module supplies two functions that go
through the same code path as its service:

* ``predict_manifest(manifest: Manifest, **options) -> np.ndarray`` — an (n, 7) probability matrix;
* ``predict_one(value: str, **options) -> dict`` — the JSON the service would return.
"""

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from shared.errors import ServiceError
from training.manifest import ManifestError, read_manifest
from training.report import format_report, report_from_probabilities

INPUT_COLUMNS = {"text": "text", "speech": "path", "image": "path", "video": "path"}


def _modality_module(modality: str) -> Any:
    return importlib.import_module(f"training.{modality}.evaluate")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"detect": args.detect} if getattr(args, "detect", None) else {}


def _write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.modality == "fusion":
        from training.fusion.evaluate import evaluate_fusion

        results = evaluate_fusion(
            speech=args.speech, text=args.text, image=args.image, n=args.n, seed=args.seed, detect=args.detect
        )
        for subset, metrics in results.items():
            print(
                f"{subset:<22} accuracy={metrics['accuracy']:.4f}  macro_f1={metrics['macro_f1']:.4f}  "
                f"ece={metrics['ece']:.4f}  nll={metrics['nll']:.4f}  brier={metrics['brier']:.4f}  n={metrics['n']}"
            )
        _write_json(args.json, results)
        return 0
    if not args.manifest:
        raise ManifestError(f"emotion evaluate {args.modality} needs a MANIFEST.csv")
    manifest = read_manifest(args.manifest, INPUT_COLUMNS[args.modality])
    probabilities = _modality_module(args.modality).predict_manifest(manifest, **_options(args))
    report = report_from_probabilities(manifest.labels, probabilities)
    print(format_report(report, title=f"{args.modality} model on {manifest.path}"))
    _write_json(args.json, report)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    given = {"text": args.text, "speech": args.audio, "image": args.image, "video": args.video}
    chosen = {k: v for k, v in given.items() if v is not None}
    if len(chosen) != 1:
        raise ManifestError("give exactly one of --text, --audio, --image, --video")
    ((modality, value),) = chosen.items()
    if modality != "text" and not Path(value).is_file():
        raise ManifestError(f"file not found: {value}")
    module = _modality_module(modality)
    result = module.predict_one(value, **_options(args))
    # A video's answer is a timeline: a table reads better than the JSON (which --json keeps).
    print(module.format_timeline(result) if modality == "video" else json.dumps(result, indent=2))
    _write_json(args.json, result)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emotion", description="Evaluate and run the emotion models.")
    sub = parser.add_subparsers(dest="command", required=True)

    evaluate = sub.add_parser("evaluate", help="report accuracy/F1/confusion on a labelled manifest")
    evaluate.add_argument("modality", choices=["text", "speech", "image", "fusion", "video"])
    evaluate.add_argument("manifest", nargs="?", help="CSV with text,emotion or path,emotion columns")
    evaluate.add_argument("--json", metavar="OUT.json", help="also write the report as JSON")
    evaluate.add_argument("--detect", choices=["auto", "always", "never"], help="face detection mode (image)")
    evaluate.add_argument("--speech", metavar="M.csv", help="speech manifest (fusion)")
    evaluate.add_argument("--text", metavar="M.csv", help="text manifest (fusion)")
    evaluate.add_argument("--image", metavar="M.csv", help="image manifest (fusion)")
    evaluate.add_argument("--n", type=int, default=1000, help="triples to build (fusion)")
    evaluate.add_argument("--seed", type=int, default=0, help="random seed (fusion)")
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = sub.add_parser("predict", help="predict the emotion of one input")
    predict.add_argument("--text")
    predict.add_argument("--audio", metavar="FILE")
    predict.add_argument("--image", metavar="FILE")
    predict.add_argument("--video", metavar="FILE", help="MP4, WebM, MOV, MKV or FLV: prints the emotion timeline")
    predict.add_argument("--json", metavar="OUT.json", help="also write the result as JSON")
    predict.add_argument("--detect", choices=["auto", "always", "never"], help="face detection mode (image)")
    predict.set_defaults(handler=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (ManifestError, ServiceError) as exc:
        print(f"emotion: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
