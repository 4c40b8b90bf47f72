"""Word error rate and realtime factor of the transcription model on RAVDESS statements.

RAVDESS names every file ``03-01-EE-II-SS-RR-AA``: SS is the statement (01 "Kids are talking by
the door", 02 "Dogs are sitting by the door") and AA the actor, so the reference text comes from
the file name. Decoding and the model call are the service's own (``services.asr``).

    python -m training.asr.evaluate ../shared/data/speech/ravdess --actors 17-20 --json out.json
"""

import argparse
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.asr.app import load_model
from services.asr.audio import decode
from services.asr.model import SAMPLE_RATE, AsrModel
from services.asr.settings import Settings

STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
_NAME = re.compile(r"^03-01-\d\d-\d\d-(?P<statement>\d\d)-\d\d-(?P<actor>\d\d)\.\w+$")


def normalise(text: str) -> list[str]:
    """Lower case, punctuation dropped, split on whitespace (Whisper's punctuation is not an error)."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class Clip:
    """One RAVDESS file and the statement it says."""

    path: Path
    actor: int
    reference: str


def ravdess_clips(root: Path, actors: Sequence[int]) -> list[Clip]:
    """The clips of ``actors`` under ``root/Actor_NN/``, in a stable order."""
    clips = []
    for actor in actors:
        for path in sorted((root / f"Actor_{actor:02d}").glob("03-01-*")):
            match = _NAME.match(path.name)
            if match and int(match["actor"]) == actor:
                clips.append(Clip(path, actor, STATEMENTS[match["statement"]]))
    return clips


def evaluate(model: AsrModel, clips: Sequence[Clip]) -> dict[str, Any]:
    """WER over all clips (errors / reference words), exact-match rate, and realtime factor (wall and CPU)."""
    errors = words = exact = 0
    audio_s = compute_s = cpu_s = 0.0
    mistakes: list[dict[str, str]] = []
    for clip in clips:
        samples = decode(clip.path.read_bytes(), max_duration_s=600)
        start, cpu_start = time.perf_counter(), time.process_time()
        (transcript,) = model.transcribe([samples])
        compute_s += time.perf_counter() - start
        cpu_s += time.process_time() - cpu_start
        audio_s += samples.shape[0] / SAMPLE_RATE
        reference, hypothesis = normalise(clip.reference), normalise(transcript.text)
        distance = edit_distance(reference, hypothesis)
        errors += distance
        words += len(reference)
        exact += distance == 0
        if distance:
            mistakes.append({"file": clip.path.name, "reference": clip.reference, "hypothesis": transcript.text})
    return {
        "clips": len(clips),
        "reference_words": words,
        "word_errors": errors,
        "wer": errors / words if words else 0.0,
        "exact_match": exact / len(clips) if clips else 0.0,
        "audio_s": round(audio_s, 2),
        "compute_s": round(compute_s, 2),
        "realtime_factor": compute_s / audio_s if audio_s else 0.0,
        # CPU seconds per audio second: with one thread, the one-core figure even on a busy machine.
        "cpu_s": round(cpu_s, 2),
        "cpu_realtime_factor": cpu_s / audio_s if audio_s else 0.0,
        "mistakes": mistakes,
    }


def _actors(spec: str) -> list[int]:
    if "-" in spec:
        low, high = spec.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(a) for a in spec.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="RAVDESS folder holding Actor_NN/")
    parser.add_argument("--actors", default="17-20", help="e.g. 17-20 or 17,19")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for CTranslate2 (1 = one core)")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    model = load_model(Settings(inference_threads=args.threads))
    result = evaluate(model, ravdess_clips(args.root, _actors(args.actors)))
    result.update(model=f"{model.name}@{model.version}", threads=args.threads, beam_size=model.beam_size)
    print(json.dumps({k: v for k, v in result.items() if k != "mistakes"}, indent=2))
    for mistake in result["mistakes"]:
        print(f"  {mistake['file']}: {mistake['hypothesis']!r}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
