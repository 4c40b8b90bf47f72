"""Train the face-emotion CNN on FER2013 train; select on public_test; export fp16 weights.

    python -m training.image.train --out /tmp/fer_run --epochs 40
    python -m training.image.train --out /tmp/fer_run --resume          # continue after a stop
    python -m training.image.train --out /tmp/fer_run --export-only     # best.pt -> services/image/artifacts
    # fine-tune the shipped model with photo-like augmentation, cyclic LR and weight averaging (SWA):
    python -m training.image.train --out /tmp/fer_swa --init services/image/artifacts/face_emotion.pt \
        --epochs 24 --lr 0.02 --cyclic --swa-start 2 --photo-aug 0.5
    # distil an ensemble (any weights file the service loads) into one network: its probabilities on the
    # training images join the targets
    python -m training.image.train --out /tmp/fer_kd --teacher services/image/artifacts/face_emotion.pt \
        --teacher-weight 0.5 --epochs 60

CPU-friendly: bf16 autocast (AMX where present), channels_last, all data in one uint8 tensor,
augmentation as batched torch ops (affine grid: crop/shift, scale, rotation, flip; brightness/contrast).
"""

import argparse
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from services.image.network import INPUT_SIZE, PIXEL_MEAN, PIXEL_STD, EmotionNet, normalize
from shared.labels import LABELS
from training.image.compare import probabilities
from training.image.data import DEFAULT_CACHE, DEFAULT_ROOT, Split, load_split

ARTIFACT_DIR = Path(__file__).resolve().parents[2] / "services" / "image" / "artifacts"
WEIGHTS_NAME = "face_emotion.pt"


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shift (+-4 px), scale (0.9-1.1), rotation (+-12 deg), hflip, brightness/contrast on (n,1,H,W)."""
    n = x.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    angle = uniform(-12, 12) * math.pi / 180
    scale = uniform(0.9, 1.1)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    shift = 4.0 / (INPUT_SIZE / 2)
    tx, ty = uniform(-shift, shift), uniform(-shift, shift)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], dim=1), torch.stack([sin * flip, cos, ty], dim=1)], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = uniform(0.7, 1.3).view(n, 1, 1, 1)
    brightness = uniform(-0.3, 0.3).view(n, 1, 1, 1)
    mean = out.mean(dim=(2, 3), keepdim=True)
    out = (out - mean) * contrast + mean + brightness
    # Random erasing of one small patch on half of the batch (occlusion robustness).
    erase = torch.rand(n, generator=generator) < 0.5
    if erase.any():
        size = 12
        ys = torch.randint(0, INPUT_SIZE - size, (n,), generator=generator)
        xs = torch.randint(0, INPUT_SIZE - size, (n,), generator=generator)
        for i in torch.nonzero(erase).flatten().tolist():
            out[i, :, ys[i] : ys[i] + size, xs[i] : xs[i] + size] = 0.0
    return out


def _jpeg(batch: torch.Tensor, quality: int) -> torch.Tensor:
    """Round-trip (k, 1, H, W) normalised images through JPEG at ``quality``."""
    pixels = ((batch * PIXEL_STD + PIXEL_MEAN) * 255).clamp(0, 255).to(torch.uint8).numpy()
    out = np.empty_like(pixels)
    for i, image in enumerate(pixels[:, 0]):
        _ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out[i, 0] = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    return (torch.from_numpy(out).float() / 255.0 - PIXEL_MEAN) / PIXEL_STD


def photo_augment(x: torch.Tensor, generator: torch.Generator, strength: float = 0.5) -> torch.Tensor:
    """Photo-like corruptions on normalised (n,1,H,W): low resolution, gamma, noise, JPEG; rates scale with strength."""
    n, _, height, width = x.shape
    out = x.clone()
    # Low resolution (a small or distant face upscaled): downscale to 40-90 % and back up.
    low = torch.nonzero(torch.rand(n, generator=generator) < strength * 0.6).flatten()
    if len(low):
        factor = float(torch.rand(1, generator=generator)) * 0.5 + 0.4
        size = (max(8, round(height * factor)), max(8, round(width * factor)))
        small = F.interpolate(out[low], size=size, mode="area")
        out[low] = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
    # Gamma (exposure), in pixel space.
    gamma_rows = torch.rand(n, generator=generator) < strength
    if gamma_rows.any():
        gamma = torch.exp((torch.rand(n, generator=generator) - 0.5) * 1.0).view(n, 1, 1, 1)
        pixels = (out * PIXEL_STD + PIXEL_MEAN).clamp(0, 1)
        adjusted = (pixels**gamma - PIXEL_MEAN) / PIXEL_STD
        out = torch.where(gamma_rows.view(n, 1, 1, 1), adjusted, out)
    # Sensor noise.
    noisy = (torch.rand(n, generator=generator) < strength * 0.4).view(n, 1, 1, 1)
    sigma = torch.rand(n, 1, 1, 1, generator=generator) * (8.0 / 255 / PIXEL_STD)
    out = out + noisy * sigma * torch.randn(out.shape, generator=generator)
    # JPEG artefacts.
    jpeg = torch.nonzero(torch.rand(n, generator=generator) < strength * 0.4).flatten()
    if len(jpeg):
        out[jpeg] = _jpeg(out[jpeg], int(torch.randint(25, 80, (1,), generator=generator)))
    return out


def soft_targets(
    labels: torch.Tensor, ferplus: torch.Tensor, *, ferplus_weight: float, smoothing: float
) -> torch.Tensor:
    """FER2013 one-hot mixed with the FER+ majority (where there is one) and uniform smoothing."""
    k = len(LABELS)
    target = F.one_hot(labels, k).float()
    has_plus = ferplus >= 0
    plus = F.one_hot(ferplus.clamp(min=0), k).float()
    mixed = torch.where(has_plus[:, None], (1 - ferplus_weight) * target + ferplus_weight * plus, target)
    return (1 - smoothing) * mixed + smoothing / k


def teacher_probabilities(path: Path, images: np.ndarray, cache: Path, *, temperature: float = 1.0) -> np.ndarray:
    """A teacher's flip-TTA, uncalibrated probabilities on ``images``, softened by ``temperature``; cached.

    Offline distillation: computed once on the clean images (the student sees augmented views of
    them), stored in ``cache`` under the teacher file's hash so a resumed run reuses them.
    """
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    target = cache / f"teacher-{digest}-{len(images)}-t{temperature:g}.npy"
    if target.exists():
        cached: np.ndarray = np.load(target)
        return cached
    probs = probabilities(path, images, tta=True)  # the service's loader: ensembles included
    if temperature != 1.0:
        probs = probs ** (1.0 / temperature)
        probs /= probs.sum(axis=1, keepdims=True)
    probs = probs.astype(np.float32)
    np.save(target, probs)
    return probs


def bf16_is_native(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bfloat16 in hardware (AMX or AVX-512 BF16).

    Elsewhere PyTorch emulates it: one 128-face training step of the shipped network took 19 s under
    bf16 autocast against 1.9 s in float32 on an AVX2-only EPYC (2 threads).
    """
    try:
        flags = cpuinfo.read_text(encoding="utf-8")
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def autocast(enabled: bool) -> "torch.autocast":
    """bf16 autocast where the CPU has it natively (``--precision auto``), else a no-op context."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def predict_probabilities(
    model: nn.Module, images: np.ndarray, *, tta: bool, batch_size: int = 256, bf16: bool = True
) -> np.ndarray:
    """Softmax over (n, 48, 48) uint8 images; with ``tta`` averaged with the horizontal flip."""
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        x = normalize(torch.from_numpy(images[start : start + batch_size])).contiguous(
            memory_format=torch.channels_last
        )
        with autocast(bf16):
            probs = model(x).float().softmax(dim=1)
            if tta:
                probs = (probs + model(torch.flip(x, dims=[3])).float().softmax(dim=1)) / 2
        outputs.append(probs.numpy())
    return np.concatenate(outputs)


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Arg-max accuracy over the rows whose label is known (>= 0)."""
    known = labels >= 0
    return float((probs.argmax(axis=1)[known] == labels[known]).mean())


class EMA:
    """Exponential moving average of a model's parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = EmotionNet(model.widths).to(memory_format=torch.channels_last)  # type: ignore[arg-type]
        self.model.load_state_dict(model.state_dict())
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for ema_p, p in zip(self.model.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p, 1 - self.decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)


def cyclic_lr(epoch_fraction: float, peak: float, low_ratio: float = 0.05) -> float:
    """One cosine cycle per epoch, peak -> peak*low_ratio: each epoch ends in a low-LR snapshot to average."""
    t = min(max(epoch_fraction, 0.0), 1.0)
    low = peak * low_ratio
    return low + (peak - low) * 0.5 * (1 + math.cos(math.pi * t))


class WeightAverage:
    """Running mean of model snapshots (stochastic weight averaging); BN statistics are recomputed after."""

    def __init__(self, model: nn.Module) -> None:
        self.model = EmotionNet(model.widths).to(memory_format=torch.channels_last)  # type: ignore[arg-type]
        self.model.load_state_dict(model.state_dict())
        self.count = 0

    @torch.no_grad()
    def add(self, model: nn.Module) -> None:
        self.count += 1
        for avg, p in zip(self.model.parameters(), model.parameters(), strict=True):
            avg.mul_(1 - 1 / self.count).add_(p.detach(), alpha=1 / self.count)

    @torch.no_grad()
    def update_bn(self, images: torch.Tensor, batch_size: int = 256) -> None:
        """Recompute BatchNorm running statistics of the averaged weights on ``images`` (uint8, no augmentation)."""
        norms = [m for m in self.model.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass
        self.model.train()
        for start in range(0, len(images), batch_size):
            x = normalize(images[start : start + batch_size]).contiguous(memory_format=torch.channels_last)
            self.model(x)
        self.model.eval()


def load_initial_weights(model: nn.Module, path: Path) -> None:
    """Start from a shipped artefact ({state_dict, meta}) or a training checkpoint ({model, meta})."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    weights = state.get("state_dict", state.get("model"))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})


def lr_at(progress: float, peak: float, warmup: float = 0.1) -> float:
    """One-cycle shape over training progress in [0, 1]: linear warm-up from peak/20, then cosine to ~0."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return peak / 20 + (peak - peak / 20) * progress / warmup
    return peak * (0.001 + 0.999 * 0.5 * (1 + math.cos(math.pi * (progress - warmup) / (1 - warmup))))


def export(checkpoint: Path, target: Path) -> dict[str, Any]:
    """Write the fp16 inference artefact (state dict + metadata) loadable with weights_only=True."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    weights = {k: (v.half() if v.is_floating_point() else v) for k, v in state["model"].items()}
    meta = dict(state["meta"])
    meta["version"] = f"{time.strftime('%Y.%m.%d')}-e{meta['epoch']}"
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": weights, "meta": meta}, target)
    return meta


def train(args: argparse.Namespace, splits: tuple[Split, Split] | None = None) -> float:
    """Train per ``args`` (on ``splits`` = (train, val) if given, else FER2013 from ``args.data``); best val acc."""
    torch.set_num_threads(args.threads)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and bf16_is_native())
    print(f"precision: {'bf16 autocast' if bf16 else 'float32'}", flush=True)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if splits is None:
        cache = None if args.no_cache else Path(args.cache)
        splits = load_split("train", Path(args.data), cache), load_split("public_test", Path(args.data), cache)
    train_split, val = splits
    if args.limit:
        train_split = Split(
            train_split.images[: args.limit], train_split.labels[: args.limit], train_split.ferplus[: args.limit]
        )
        val = Split(val.images[: args.limit], val.labels[: args.limit], val.ferplus[: args.limit])
    images = torch.from_numpy(train_split.images)
    labels = torch.from_numpy(train_split.labels)
    ferplus = torch.from_numpy(train_split.ferplus)
    teacher = None
    if args.teacher:
        probs = teacher_probabilities(Path(args.teacher), train_split.images, out, temperature=args.teacher_temperature)
        teacher = torch.from_numpy(probs)
        agreement = float((probs.argmax(axis=1) == train_split.labels).mean())
        print(f"teacher {args.teacher}: agrees with the training labels on {agreement:.4f}", flush=True)
    n = len(images)
    steps_per_epoch = max(1, n // args.batch_size)
    total_steps = steps_per_epoch * args.epochs

    widths = tuple(int(w) for w in args.widths.split(","))
    model = EmotionNet(widths, dropout=args.dropout).to(memory_format=torch.channels_last)
    if args.init:
        load_initial_weights(model, Path(args.init))
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim == 1 or name.endswith(".bias") else decay).append(p)
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr / 20,
        momentum=0.9,
        nesterov=True,
    )
    ema = EMA(model, args.ema)
    swa = WeightAverage(model) if args.swa_start >= 0 else None
    start_epoch, best, history, elapsed_before, step_count = 0, -1.0, [], 0.0, 0
    last_path, best_path = out / "last.pt", out / "best.pt"
    if args.resume and last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        start_epoch, best, history = state["epoch"] + 1, state["best"], state["history"]
        elapsed_before, step_count = state["elapsed"], state["step"]
        if swa is not None and state.get("swa") is not None:
            swa.model.load_state_dict(state["swa"])
            swa.count = state["swa_count"]
        print(f"resumed at epoch {start_epoch}, best {best:.4f}", flush=True)

    meta_base = {
        "name": "face-emotion-resnet",
        "widths": list(widths),
        "input_size": INPUT_SIZE,
        "labels": list(LABELS),
        "trained_on": "FER2013 train (28,709); targets: FER2013 label mixed with FER+ majority",
        "initialised_from": args.init or None,
        "selected_on": "FER2013 public_test",
        "args": {k: v for k, v in vars(args).items() if k not in {"resume", "export_only"}},
    }
    run_started = time.time() - elapsed_before
    progress = step_count / total_steps
    for epoch in range(start_epoch, args.epochs):
        if progress >= 1.0:
            break
        model.train()
        started = time.time()
        order = torch.randperm(n, generator=generator)
        running, seen = 0.0, 0
        for step in range(steps_per_epoch):
            idx = order[step * args.batch_size : (step + 1) * args.batch_size]
            x = augment(normalize(images[idx]), generator)
            if args.photo_aug > 0:
                x = photo_augment(x, generator, args.photo_aug)
            x = x.contiguous(memory_format=torch.channels_last)
            target = soft_targets(
                labels[idx], ferplus[idx], ferplus_weight=args.ferplus_weight, smoothing=args.smoothing
            )
            if teacher is not None:
                target = (1 - args.teacher_weight) * target + args.teacher_weight * teacher[idx]
            with autocast(bf16):
                logits = model(x)
            loss = torch.sum(-target * F.log_softmax(logits.float(), dim=1), dim=1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step_count += 1
            progress = step_count / total_steps
            if args.budget_minutes:
                progress = max(progress, (time.time() - run_started) / (args.budget_minutes * 60))
            lr = cyclic_lr((step + 1) / steps_per_epoch, args.lr) if args.cyclic else lr_at(progress, args.lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            ema.update(model)
            running += float(loss.detach()) * len(idx)
            seen += len(idx)
        train_time = time.time() - started
        scores = {}
        candidates: list[tuple[str, nn.Module]] = [("raw", model), ("ema", ema.model)]
        if swa is not None and epoch >= args.swa_start:
            swa.add(model)
            swa.update_bn(images[: args.bn_images])
            candidates.append(("swa", swa.model))
        for tag, net in candidates:
            probs = predict_probabilities(net, val.images, tta=False, bf16=bf16)
            scores[tag] = accuracy(probs, val.labels)
        tag = max(scores, key=lambda t: scores[t])
        record = {
            "epoch": epoch,
            "loss": running / max(seen, 1),
            "val_acc_raw": scores["raw"],
            "val_acc_ema": scores["ema"],
            "val_acc_swa": scores.get("swa"),
            "lr": optimizer.param_groups[0]["lr"],
            "progress": round(progress, 4),
            "seconds": round(train_time, 1),
        }
        history.append(record)
        print(json.dumps(record), flush=True)
        if scores[tag] > best:
            best = scores[tag]
            chosen = dict(candidates)[tag]
            meta = {**meta_base, "epoch": epoch, "weights": tag, "val_accuracy": best}
            torch.save({"model": chosen.state_dict(), "meta": meta}, best_path)
        torch.save(
            {
                "model": model.state_dict(),
                "ema": ema.model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "elapsed": time.time() - run_started,
                "step": step_count,
                "generator": generator.get_state(),
                "epoch": epoch,
                "best": best,
                "history": history,
                "swa": None if swa is None else swa.model.state_dict(),
                "swa_count": 0 if swa is None else swa.count,
            },
            last_path,
        )
    (out / "history.json").write_text(json.dumps(history, indent=1))
    print(f"best public_test accuracy {best:.4f}", flush=True)
    return best


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_ROOT))
    parser.add_argument("--cache", default=str(DEFAULT_CACHE))
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--out", default="/tmp/fer_run")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--smoothing", type=float, default=0.1)
    parser.add_argument("--ferplus-weight", type=float, default=0.2)
    parser.add_argument("--ema", type=float, default=0.998)
    parser.add_argument("--widths", default="32,64,128,256")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=0.0,
        help="compress the LR schedule so training ends within this wall-clock time (0 = epochs only)",
    )
    parser.add_argument("--init", default="", help="start from these weights (artefact or checkpoint)")
    parser.add_argument("--cyclic", action="store_true", help="one cosine LR cycle per epoch (for --swa-start)")
    parser.add_argument("--swa-start", type=int, default=-1, help="average weights from this epoch on (-1 = off)")
    parser.add_argument("--bn-images", type=int, default=8192, help="train images for the averaged model's BN stats")
    parser.add_argument("--teacher", default="", help="distil these weights (a single network or an ensemble)")
    parser.add_argument("--teacher-weight", type=float, default=0.5, help="share of the teacher in the targets")
    parser.add_argument("--teacher-temperature", type=float, default=1.0, help="soften the teacher (T > 1)")
    parser.add_argument("--photo-aug", type=float, default=0.0, help="strength of photo-like corruptions (0 = off)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="bf16 autocast or float32; auto = bf16 only where the CPU has it natively (AMX / AVX-512 BF16)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images (smoke tests)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--export-only", action="store_true", help="write best.pt to the artefact folder and stop")
    parser.add_argument(
        "--artifact",
        default="",
        help=f"write the best weights here when done (e.g. {ARTIFACT_DIR / WEIGHTS_NAME}); default: only --out",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.export_only and not args.artifact:
        raise SystemExit("--export-only needs --artifact")
    if not args.export_only:
        train(args)
    if not args.artifact:  # an experiment must not overwrite the shipped model unasked
        print(f"best weights in {Path(args.out) / 'best.pt'} (not exported: no --artifact)")
        return
    meta = export(Path(args.out) / "best.pt", Path(args.artifact))
    print(f"exported epoch {meta['epoch']} ({meta['weights']}, val acc {meta['val_accuracy']:.4f}) to {args.artifact}")


if __name__ == "__main__":
    main()
