"""The fusion card's worked examples table: pass-through for one input, guard softens agreement."""

from pathlib import Path

import numpy as np
import pytest

from services.fusion.model import load
from training.fusion.examples import EXAMPLES, example_rows, main, markdown, peaked


def test_peaked_vector_sums_to_one() -> None:
    vector = peaked("sad", 0.45)
    assert vector.sum() == pytest.approx(1.0) and vector.argmax() == 4 and vector[4] == 0.45


def test_examples_by_guard(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    guards = [0.0, 0.5, 1.0]
    rows = dict(example_rows(load(model_dir), guards, EXAMPLES))
    assert rows["text alone, happy 0.60"] == pytest.approx([0.6] * 3, abs=1e-9)  # identity, whatever the guard
    agreeing = rows["three agreeing, uncertain (happy 0.45 / 0.41 / 0.45)"]
    assert np.all(np.diff(agreeing) < 0)  # a stronger guard trusts agreement less
    assert main(["--model", str(model_dir), "--guards", *map(str, guards)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| inputs | c = 0") and printed.count("\n") == len(EXAMPLES) + 2
    assert "(shipped)" in markdown(list(rows.items()), guards, shipped=0.5)
