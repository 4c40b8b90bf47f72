"""Render an ``emotion evaluate --json`` report's confusion matrix as the model card's PNG.

    python -m training.speech.confusion_png /tmp/speech_eval_17_20.json \
        services/speech/confusion_actors_17_20.png --title "speech: RAVDESS actors 17-20"
"""

import argparse
import json
from pathlib import Path

from training.report import save_confusion_png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", help="JSON written by `emotion evaluate speech ... --json`")
    parser.add_argument("png", help="output PNG path")
    parser.add_argument("--title", default="speech model")
    args = parser.parse_args(argv)
    save_confusion_png(json.loads(Path(args.report).read_text(encoding="utf-8")), args.png, args.title)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
