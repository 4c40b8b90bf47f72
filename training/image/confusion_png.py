"""Render an ``emotion evaluate --json`` report's confusion matrix as a PNG for the model card.

python -m training.image.confusion_png /tmp/image_fer2013.json services/image/confusion_public_test.png "title"
"""

import json
import sys
from pathlib import Path

from training.report import save_confusion_png


def main(argv: list[str] | None = None) -> None:
    report_path, png_path, title = (argv if argv is not None else sys.argv[1:])[:3]
    save_confusion_png(json.loads(Path(report_path).read_text()), png_path, title)
    print(f"wrote {png_path}")


if __name__ == "__main__":
    main()
