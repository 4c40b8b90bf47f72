"""Fine-tune a transformer encoder (default: the packaged all-MiniLM-L6-v2) as one 7-class emotion model.

    python -m training.text.train --data ../shared/data/text [--encoder NAME_OR_PATH] [--out DIR]

Built for a small CPU budget: texts are tokenised once, batches are made of similar lengths
(little padding), the embeddings and the lowest ``--freeze-layers`` (default 3 of 6) layers stay
frozen, so their outputs are computed once and cached (fp16) and each step runs only the upper
layers and the head; the class imbalance is handled with square-root inverse-frequency loss
weights. A checkpoint is written every ``--checkpoint-every`` steps to ``--work``; rerunning
the same command resumes from it. At the end the model is exported (fp16 deltas over the
base encoder + head), reloaded through ``services.text.model.load`` (the service's code path)
and a classification report is printed per dataset on its val split and overall.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.text.model import PACKAGED_ENCODER, MiniLMEmotionModel, build_network, export_minilm, load_tokenizer
from training.text.data import Example, class_weights, load_split, per_dataset_reports, report_shipped_model

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "services" / "text" / "artifacts" / "minilm"
CHECKPOINT = "checkpoint.pt"
#: Options that change the training trajectory; a checkpoint resumes only if they match.
SIGNATURE_KEYS = {
    "data",
    "encoder",
    "epochs",
    "batch_size",
    "lr",
    "head_lr",
    "weight_decay",
    "warmup",
    "max_tokens",
    "freeze_layers",
    "train_embeddings",
    "class_weight_power",
    "seed",
    "max_steps",
    "limit_per_dataset",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.text.train", description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/data/text", help="folder with <dataset>/{train,val}.csv")
    p.add_argument("--encoder", default=PACKAGED_ENCODER, help="Hugging Face model name or local path")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="artefact folder to write")
    p.add_argument("--work", default="/tmp/text-train", help="checkpoint folder (resume from here)")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=8e-5, help="encoder learning rate")
    p.add_argument("--head-lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=float, default=0.06, help="fraction of steps with linear warm-up")
    p.add_argument("--max-tokens", type=int, default=128, help="model window (head tokens kept)")
    p.add_argument("--freeze-layers", type=int, default=3, help="lowest encoder layers to keep frozen")
    p.add_argument("--train-embeddings", action="store_true", help="also tune the embeddings (slow)")
    p.add_argument(
        "--no-cache-frozen",
        dest="cache_frozen",
        action="store_false",
        help="recompute the frozen lower layers every step instead of caching their outputs once",
    )
    p.add_argument("--class-weight-power", type=float, default=0.5, help="0 = no weights, 1 = inverse frequency")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (smoke tests)")
    p.add_argument("--limit-per-dataset", type=int, default=None, help="use only the first N rows per dataset")
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--eval-every-epoch", action="store_true", help="print val summaries after each epoch")
    p.add_argument("--name", default="minilm-l6-emotion")
    p.add_argument("--version", default=time.strftime("%Y.%m.%d"))
    p.add_argument(
        "--export-only",
        action="store_true",
        help="export and report the checkpoint in --work as it is (e.g. an interrupted run), without training",
    )
    p.add_argument("--figure", default=None, help="write the overall val confusion matrix PNG here")
    p.add_argument("--metrics", default=None, help="write the val reports as JSON here")
    return p.parse_args(argv)


def make_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle, sort within chunks of 50 batches by length, split, shuffle the batches."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def collate(ids: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return input_ids, mask


def attention_mask_4d(bert: Any, hidden: Any, mask: Any) -> Any:
    """The mask in the form the encoder's attention implementation wants (as BertModel.forward builds it)."""
    from transformers.masking_utils import create_bidirectional_mask

    # Positional on purpose: the embeddings' keyword was renamed within 5.x (input_embeds -> inputs_embeds).
    return create_bidirectional_mask(bert.config, hidden, mask)


def lower_states(bert: Any, input_ids: Any, mask: Any, layers: int) -> Any:
    """Token states after the embeddings and the lowest ``layers`` layers (frozen: computed once)."""
    hidden = bert.embeddings(input_ids=input_ids)
    attention = attention_mask_4d(bert, hidden, mask)
    for layer in bert.encoder.layer[:layers]:
        hidden = layer(hidden, attention)
    return hidden


def upper_logits(network: Any, hidden: Any, mask: Any, layers: int) -> Any:
    """The rest of the network from cached states: upper layers, mean pooling, head."""
    bert = network.encoder
    attention = attention_mask_4d(bert, hidden, mask)
    for layer in bert.encoder.layer[layers:]:
        hidden = layer(hidden, attention)
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    return network.head(network.dropout(pooled))


def cache_lower_states(network: Any, token_ids: list[list[int]], layers: int, pad_id: int, path: Path) -> list[Any]:
    """fp16 states of every training text after the frozen layers (loaded from ``path`` if there)."""
    import torch

    if path.is_file():
        print(f"loading cached frozen-layer states from {path}", flush=True)
        cached: list[Any] = torch.load(path, weights_only=True)
        return cached
    started = time.time()
    states: list[Any] = [None] * len(token_ids)
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    network.eval()
    with torch.inference_mode():
        for n, start in enumerate(range(0, len(order), 64)):
            idx = order[start : start + 64]
            input_ids, mask = collate([token_ids[i] for i in idx], pad_id)
            hidden = lower_states(network.encoder, input_ids, mask, layers).half()
            for row, i in enumerate(idx):
                states[i] = hidden[row, : len(token_ids[i])].clone()
            if n % 100 == 0:
                print(f"caching frozen states {start}/{len(order)} ({time.time() - started:.0f}s)", flush=True)
    network.train()
    tmp = path.with_suffix(".tmp")
    torch.save(states, tmp)
    tmp.replace(path)
    print(f"cached {len(states)} texts after {layers} frozen layers in {time.time() - started:.0f}s", flush=True)
    return states


def collate_states(states: list[Any]) -> tuple[Any, Any]:
    import torch

    width = max(s.shape[0] for s in states)
    hidden = torch.zeros((len(states), width, states[0].shape[1]), dtype=torch.float32)
    mask = torch.zeros((len(states), width), dtype=torch.long)
    for row, s in enumerate(states):
        hidden[row, : s.shape[0]] = s.float()
        mask[row, : s.shape[0]] = 1
    return hidden, mask


def configure_trainable(network: Any, *, freeze_layers: int, train_embeddings: bool) -> None:
    for name, param in network.encoder.named_parameters():
        if name.startswith("embeddings."):
            param.requires_grad = train_embeddings
        elif name.startswith("encoder.layer."):
            param.requires_grad = int(name.split(".")[2]) >= freeze_layers
        else:  # pooler (unused: we mean-pool) stays frozen
            param.requires_grad = False


def evaluate(model: MiniLMEmotionModel, examples: list[Example]) -> dict[str, dict[str, Any]]:
    was_training = model.network.training
    model.network.eval()
    probabilities = model.predict([e.text for e in examples])
    model.network.train(was_training)
    return per_dataset_reports(examples, probabilities)


# --------------------------------------------------------------------------- data


@dataclass
class TrainingData:
    """The tokenised training split, its labels and loss weights, and the val split."""

    train: list[Example]
    val: list[Example]
    tokenizer: Any
    token_ids: list[list[int]]
    labels: Any
    class_weights: np.ndarray

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.token_ids]

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id or 0)


def prepare_data(args: argparse.Namespace) -> TrainingData:
    """Read both splits, tokenise the training texts once (head-truncated) and weigh the classes."""
    import torch

    train = load_split(args.data, "train", limit_per_dataset=args.limit_per_dataset)
    val = load_split(args.data, "val", limit_per_dataset=args.limit_per_dataset)
    print(f"train={len(train)} val={len(val)} encoder={args.encoder}", flush=True)
    tokenizer = load_tokenizer(args.encoder)
    token_ids = tokenizer(
        [e.text for e in train], truncation=True, max_length=args.max_tokens, add_special_tokens=True
    )["input_ids"]
    weights = class_weights([e.label for e in train], power=args.class_weight_power)
    data = TrainingData(train, val, tokenizer, token_ids, torch.tensor([e.label for e in train]), weights)
    print("class weights:", np.round(weights, 3).tolist(), f"mean tokens={np.mean(data.lengths):.1f}", flush=True)
    return data


# --------------------------------------------------------------------------- loop


@dataclass
class Trainer:
    """The network and everything that moves it: optimizer, schedule, loss, step counts."""

    network: Any
    optimizer: Any
    scheduler: Any
    loss_fn: Any
    steps_per_epoch: int
    total_steps: int
    step: int = 0


def lr_schedule(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    """Linear warm-up over ``warmup_fraction`` of the steps, then linear decay to 0."""
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def build_trainer(args: argparse.Namespace, data: TrainingData) -> Trainer:
    """The network with its lower layers frozen, AdamW (encoder and head learning rates), schedule and loss."""
    import torch

    network = build_network(args.encoder)
    configure_trainable(network, freeze_layers=args.freeze_layers, train_embeddings=args.train_embeddings)
    encoder_params = [p for p in network.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": encoder_params, "lr": args.lr},
            {"params": list(network.head.parameters()), "lr": args.head_lr},
        ],
        weight_decay=args.weight_decay,
    )
    steps_per_epoch = math.ceil(len(data.train) / args.batch_size)
    total_steps = max(1, int(steps_per_epoch * args.epochs))
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(total_steps, args.warmup))
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(data.class_weights, dtype=torch.float32))
    return Trainer(network, optimizer, scheduler, loss_fn, steps_per_epoch, total_steps)


def signature_of(args: argparse.Namespace) -> dict[str, Any]:
    """The options a checkpoint must match to be resumed."""
    return {k: v for k, v in vars(args).items() if k in SIGNATURE_KEYS}


def save_checkpoint(trainer: Trainer, path: Path, signature: dict[str, Any]) -> None:
    """Write the training state atomically (a crash never leaves a half-written checkpoint)."""
    import torch

    state = {
        "signature": signature,
        "network": trainer.network.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "step": trainer.step,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def resume(trainer: Trainer, path: Path, signature: dict[str, Any], *, force: bool = False) -> bool:
    """Restore ``trainer`` from ``path`` if it was made with the same options (or ``force``)."""
    import torch

    if not path.is_file():
        return False
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["signature"] != signature and not force:
        print(f"ignoring {path}: it was made with other options", flush=True)
        return False
    trainer.network.load_state_dict(state["network"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.step = int(state["step"])
    print(f"resumed from {path} at step {trainer.step}/{trainer.total_steps}", flush=True)
    return True


def train_loop(
    args: argparse.Namespace,
    data: TrainingData,
    trainer: Trainer,
    *,
    cached: list[Any] | None = None,
    on_checkpoint: Callable[[], None] = lambda: None,
    on_epoch: Callable[[int], None] = lambda _: None,
) -> None:
    """Run ``trainer`` from its current step to ``total_steps`` (resumable mid-epoch, same batch order)."""
    import torch

    network, lengths = trainer.network, data.lengths
    network.train()
    started, tokens_seen, running = time.time(), 0, 0.0
    while trainer.step < trainer.total_steps:
        epoch, offset = divmod(trainer.step, trainer.steps_per_epoch)
        batches = make_batches(lengths, args.batch_size, seed=args.seed * 1000 + epoch)
        for batch in batches[offset:]:
            if trainer.step >= trainer.total_steps:
                break
            if cached is not None:
                hidden, mask = collate_states([cached[i] for i in batch])
                logits = upper_logits(network, hidden, mask, args.freeze_layers)
            else:
                input_ids, mask = collate([data.token_ids[i] for i in batch], data.pad_id)
                logits = network(input_ids, mask)
            loss = trainer.loss_fn(logits, data.labels[batch])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            trainer.optimizer.step()
            trainer.scheduler.step()
            trainer.optimizer.zero_grad(set_to_none=True)
            trainer.step += 1
            tokens_seen += int(mask.sum())
            running = 0.98 * running + 0.02 * loss.item() if running else loss.item()
            if trainer.step % args.log_every == 0 or trainer.step == trainer.total_steps:
                elapsed = time.time() - started
                eta = elapsed / max(1, tokens_seen) * (sum(lengths) * args.epochs - tokens_seen)
                print(
                    f"step {trainer.step}/{trainer.total_steps} epoch {trainer.step / trainer.steps_per_epoch:.2f} "
                    f"loss {running:.4f} lr {trainer.scheduler.get_last_lr()[0]:.2e} "
                    f"tok/s {tokens_seen / elapsed:.0f} eta {eta / 60:.1f} min",
                    flush=True,
                )
            if trainer.step % args.checkpoint_every == 0:
                on_checkpoint()
        if trainer.step % trainer.steps_per_epoch == 0 and trainer.step < trainer.total_steps:
            on_epoch(trainer.step // trainer.steps_per_epoch)


# --------------------------------------------------------------------------- evaluation and export


def print_epoch_reports(model: MiniLMEmotionModel, val: list[Example], epoch: int) -> None:
    """Val accuracy and F1 per dataset after an epoch."""
    print(f"after epoch {epoch}:")
    for name, r in evaluate(model, val).items():
        print(f"  {name:<18} acc={r['accuracy']:.4f} macro_f1={r['macro_f1']:.4f} w_f1={r['weighted_f1']:.4f}")


def export(args: argparse.Namespace, network: Any, steps: int) -> Path:
    """Write the artefact (fp16 deltas over the base encoder, head, config with the encoder fingerprint)."""
    network.eval()
    config = {
        "name": args.name,
        "version": args.version,
        "encoder": args.encoder,
        "max_tokens": args.max_tokens,
        "pooling": "mean",
        "truncation": "head",
        "training": {
            k: v for k, v in vars(args).items() if k not in {"out", "work", "figure", "metrics", "threads", "data"}
        },
        "steps": steps,
    }
    out = Path(args.out)
    export_minilm(network, out, config)
    print(f"exported {out}: " + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in out.iterdir()))
    return out


def main(argv: list[str] | None = None) -> int:
    """Data, then the (resumable) loop, then export, then the report from the exported files."""
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    data = prepare_data(args)
    trainer = build_trainer(args, data)
    checkpoint, signature = work / CHECKPOINT, signature_of(args)
    resumed = resume(trainer, checkpoint, signature, force=args.export_only)
    if args.export_only:
        if not resumed:
            raise SystemExit(f"--export-only: no checkpoint at {checkpoint}")
        trainer.total_steps = trainer.step
    cached = None
    if (
        args.freeze_layers > 0
        and args.cache_frozen
        and not args.train_embeddings
        and trainer.step < trainer.total_steps
    ):
        # The frozen part is deterministic in eval mode, so its outputs are computed once, not every epoch.
        cache_name = f"states_{args.freeze_layers}_{args.max_tokens}_{len(data.train)}.pt"
        cached = cache_lower_states(trainer.network, data.token_ids, args.freeze_layers, data.pad_id, work / cache_name)
    eval_model = MiniLMEmotionModel(
        network=trainer.network,
        tokenizer=data.tokenizer,
        name=args.name,
        version=args.version,
        max_tokens=args.max_tokens,
    )
    train_loop(
        args,
        data,
        trainer,
        cached=cached,
        on_checkpoint=lambda: save_checkpoint(trainer, checkpoint, signature),
        on_epoch=(lambda epoch: print_epoch_reports(eval_model, data.val, epoch))
        if args.eval_every_epoch
        else (lambda _: None),
    )
    if not args.export_only:
        save_checkpoint(trainer, checkpoint, signature)
    out = export(args, trainer.network, trainer.step)
    # The report comes from the exported files, loaded exactly as the service loads them.
    report_shipped_model(out, data.val, metrics=args.metrics, figure=args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
