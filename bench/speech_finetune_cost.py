"""What fine-tuning Whisper-base's encoder for emotion would cost on this CPU (seconds to run).

The speech model trains heads on frozen encoder states; the one lever its model card lists as untried is
fine-tuning the encoder itself. This times one float32 training step (forward, backward, AdamW) of a
network with Whisper-base's encoder shape (two convolutions, six pre-norm blocks of width 512, 8 heads,
2,048-wide MLP; a 3 s window = 300 log-mel frames -> 150 states) and a linear head, in three set-ups:

* all six blocks trained;
* only the top ``k`` blocks trained, the lower ones run without gradients at every step;
* only the top ``k`` blocks trained from the lower blocks' outputs cached once (the cheapest recipe).

Random weights: the cost of a step does not depend on their values. Prints milliseconds per window and,
for ``--windows`` training windows, minutes per epoch.

    python bench/speech_finetune_cost.py [--threads 2] [--batch 16] [--windows 7400]
"""

import argparse
import json
import time
from typing import Any

WIDTH, HEADS, MLP, BLOCKS, MELS = 512, 8, 2048, 6, 80


def block() -> Any:
    import torch

    return torch.nn.TransformerEncoderLayer(
        WIDTH, HEADS, MLP, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    )


def step_ms(trained: int, *, cached: bool, batch: int, frames: int, repeats: int) -> float:
    """Milliseconds per window of one training step with the top ``trained`` blocks learning."""
    import torch

    convs = torch.nn.Sequential(
        torch.nn.Conv1d(MELS, WIDTH, 3, padding=1),
        torch.nn.GELU(),
        torch.nn.Conv1d(WIDTH, WIDTH, 3, stride=2, padding=1),
        torch.nn.GELU(),
    )
    frozen = torch.nn.ModuleList(block() for _ in range(0 if cached else BLOCKS - trained))
    top = torch.nn.ModuleList(block() for _ in range(trained))
    head = torch.nn.Linear(WIDTH, 7)
    learning = [*top.parameters(), *head.parameters()] + (list(convs.parameters()) if trained == BLOCKS else [])
    optimiser = torch.optim.AdamW(learning, lr=1e-5)
    mel = torch.randn(batch, MELS, 2 * frames)
    states = torch.randn(batch, frames, WIDTH)
    labels = torch.randint(0, 7, (batch,))

    def one_step() -> None:
        if cached:
            x = states
        else:
            with torch.set_grad_enabled(trained == BLOCKS):
                x = convs(mel).transpose(1, 2)
                for layer in frozen:
                    x = layer(x)
        for layer in top:
            x = layer(x)
        loss = torch.nn.functional.cross_entropy(head(x.mean(1)), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    one_step()  # warm-up: allocator, kernels
    started = time.perf_counter()
    for _ in range(repeats):
        one_step()
    return (time.perf_counter() - started) / repeats / batch * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (this machine: 2 cores)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=150, help="encoder states per window (150 = 3 s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per set-up")
    parser.add_argument("--windows", type=int, default=7400, help="training windows per epoch (see the model card)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    import torch

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    setups = [(BLOCKS, False), (2, False), (2, True), (1, True)]
    results = []
    for trained, cached in setups:
        ms = step_ms(trained, cached=cached, batch=args.batch, frames=args.frames, repeats=args.repeats)
        name = (
            "all six blocks"
            if trained == BLOCKS
            else f"top {trained} block(s), " + ("lower blocks cached once" if cached else "lower blocks run each step")
        )
        minutes = ms * args.windows / 60_000
        results.append({"setup": name, "ms_per_window": round(ms, 1), "minutes_per_epoch": round(minutes, 1)})
        print(f"{name}: {ms:.0f} ms per window, {minutes:.1f} min per epoch of {args.windows} windows", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"threads": args.threads, "batch": args.batch, "frames": args.frames, "results": results}, handle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
