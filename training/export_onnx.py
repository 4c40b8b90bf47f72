"""Export the text and image models and the fusion forest to ONNX ahead of time (e.g. while building an image).

The services export on their first start anyway (``shared/onnx_runtime.py``); this
fills the same cache beforehand, so a container starts without PyTorch export work and can run
with a read-only file system (point ``ONNX_CACHE_DIR`` at the folder)::

    python -m training.export_onnx --out /opt/onnx-cache [--runtime onnx|onnx-int8] [--only text,image,fusion]

The models and runtimes come from the same settings as the services (``MODEL_DIR``, ``MODEL_KIND``,
``INFERENCE_RUNTIME``, fp32 ``onnx`` by default), unless ``--runtime`` names one for all.
"""

import argparse
import time
from pathlib import Path


def export(modality: str, out: Path, runtime: str | None = None) -> Path:
    """Load ``modality``'s model with ``runtime`` (default: the service's) into the cache ``out``.

    Returns the file it wrote or reused.
    """
    before = set(out.glob("*.onnx"))
    if modality == "text":
        from services.text.model import load as load_text
        from services.text.settings import Settings as TextSettings

        text = TextSettings()
        runtime = runtime or text.inference_runtime
        load_text(text.model_path, threads=text.inference_threads, runtime=runtime, cache_dir=out)
    elif modality == "image":
        from services.image.model import load as load_image
        from services.image.settings import Settings as ImageSettings

        image = ImageSettings()
        runtime = runtime or image.inference_runtime
        load_image(image.model_dir, threads=image.inference_threads, runtime=runtime, cache_dir=out)
    elif modality == "fusion":
        from services.fusion.app import load as load_fusion
        from services.fusion.settings import Settings as FusionSettings

        fusion = FusionSettings(inference_runtime="onnx")
        if load_fusion(fusion, cache_dir=out).runtime_proba is None:
            raise RuntimeError("the fusion forest did not convert to ONNX (see the log)")
        return max(out.glob("fusion-forest-*.onnx"), key=lambda p: p.stat().st_mtime)
    else:
        raise ValueError(f"no ONNX export for {modality!r} (text, image or fusion)")
    candidates = (set(out.glob("*.onnx")) - before) or set(out.glob(f"{modality}-*{runtime}-*.onnx"))
    return max(candidates, key=lambda p: p.stat().st_mtime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="the ONNX cache folder (ONNX_CACHE_DIR)")
    parser.add_argument(
        "--runtime", choices=["onnx", "onnx-int8"], help="the same for every model (default: each service's own)"
    )
    parser.add_argument("--only", default="text,image,fusion")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for modality in args.only.split(","):
        start = time.perf_counter()
        path = export(modality, args.out, args.runtime)
        print(f"{modality}: {path} ({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
