"""Prove the pinned Whisper weights are genuine: transcribe RAVDESS statements and compare the words.

RAVDESS file names give the sentence (statement 01 = "Kids are talking by the door", 02 = "Dogs are
sitting by the door"). Greedy decoding of Whisper-base (30 s padded input, as Whisper was trained).

    python -m training.speech.transcribe_check --data ../shared/data/speech/ravdess --n 8
"""

import argparse
import re
from pathlib import Path

import numpy as np

from services.speech.audio import decode
from services.speech.features import WhisperMelParams, whisper_logmel
from shared.weights import WHISPER_BASE, materialise

STATEMENTS = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}
PROMPT = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z']+", text.lower()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/speech/ravdess"))
    parser.add_argument("--n", type=int, default=8)
    args = parser.parse_args(argv)
    import ctranslate2
    from tokenizers import Tokenizer

    folder = materialise(WHISPER_BASE)
    model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32", intra_threads=1)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    files = sorted(args.data.glob("Actor_*/*.flac"))
    picked = files[:: max(1, len(files) // args.n)][: args.n]
    correct = 0
    for path in picked:
        y = decode(path.read_bytes(), sample_rate=16000, max_duration_s=60)
        mel = whisper_logmel(np.pad(y, (0, 30 * 16000 - min(len(y), 30 * 16000))), WhisperMelParams())[:, :3000]
        result = model.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None])), [PROMPT])
        text = tokenizer.decode(result[0].sequences_ids[0])
        expected = STATEMENTS[path.name.split("-")[4]]
        ok = words(text) == expected
        correct += ok
        print(f"{path.name}  {'OK ' if ok else 'BAD'}  {text.strip()!r}")
    print(f"{correct}/{len(picked)} transcribed word for word")
    return 0 if correct == len(picked) else 1


if __name__ == "__main__":
    raise SystemExit(main())
