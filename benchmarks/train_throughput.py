"""Training-step throughput of every pretraining config against the bare backbone, in one run.

For each pretraining fragment (configs/pretrain/heads/*.yaml, clp, rtatl, all) the model and
DataModule are built exactly as ``aurep fit --config configs/pretrain/base.yaml --config FRAGMENT``
builds them (plus the overrides given here), agree on the data contract as in ``Trainer.fit``,
and one batch is drawn and reused.
Reported: images/s of the full training step (forward of every head, backward, optimiser step,
momentum/queue updates) and of a bare backbone forward + backward + step on the same B x T frames
of view 0; their ratio is the number to read (goal for all.yaml: >= 0.5).

    .venv/bin/python benchmarks/train_throughput.py --out benchmarks/results/train_throughput.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from aurep.lightning_cli import AurepCLI

REPO = Path(__file__).resolve().parents[1]
PRETRAIN = REPO / "configs" / "pretrain"
FRAGMENTS = [
    *sorted(PRETRAIN.glob("heads/*.yaml")),
    *(PRETRAIN / f"{n}.yaml" for n in ("clp", "rtatl", "all")),
]


def build(config: Path, overrides: list[str]):
    args = ["--config", str(PRETRAIN / "base.yaml"), "--config", str(config), *overrides]
    cli = AurepCLI(args=args, run=False)
    datamodule = cli.datamodule
    datamodule.setup("fit")
    cli.model.model.attach(datamodule.provide(cli.model.model.needs()))
    batch = next(iter(datamodule.train_dataloader()))
    datamodule.trainer = None
    batch = datamodule.on_after_batch_transfer(batch, 0)
    return cli.model, batch


def time_pair(first, second, repeats: int, warmup: int) -> tuple[float, float]:
    """Median seconds of ``first()`` and ``second()``, alternated so both see the same load."""
    for _ in range(warmup):
        first()
        second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for step, bucket in zip((first, second), times, strict=True):
            start = time.perf_counter()
            step()
            bucket.append(time.perf_counter() - start)
    return tuple(sorted(bucket)[len(bucket) // 2] for bucket in times)


def full_step(model, batch, optimizer):
    def step():
        optimizer.zero_grad(set_to_none=True)
        model.training_step(batch, 0).backward()
        optimizer.step()
        model.model.after_optimizer_step()

    return step


def bare_step(model, batch):
    images = batch.frames[:, 0].flatten(0, 1)
    optimizer = torch.optim.AdamW(model.backbone.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        model.backbone(images).pooled.square().mean().backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", default=None, help="default: every fragment")
    parser.add_argument(
        "--data", default="data/synth", help="prepared dataset (default data/synth)"
    )
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="markdown results file")
    parser.add_argument("overrides", nargs="*", help="extra LightningCLI overrides")
    args = parser.parse_args()
    torch.manual_seed(0)
    configs = [Path(c) for c in args.configs] if args.configs else FRAGMENTS
    overrides = [f"--data.init_args.root={args.data}", "--data.init_args.num_workers=0"]
    overrides += args.overrides
    rows = []
    for config in configs:
        model, batch = build(config, overrides)
        model.train()
        images = batch.batch_size * batch.clip_length
        optimizer = model.configure_optimizers()
        optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
        full, bare = time_pair(
            full_step(model, batch, optimizer), bare_step(model, batch), args.repeats, args.warmup
        )
        rows.append((config.stem, list(model.model.heads), images, images / full, images / bare))
        print(
            f"{config.stem}: {images / full:.1f} img/s vs bare {images / bare:.1f} img/s",
            flush=True,
        )
    lines = [
        "# Training-step throughput (images/s of view 0 frames)",
        "",
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        f"Machine: {torch.get_num_threads()} CPU threads, torch {torch.__version__}.",
        "",
        "| config | heads | B x T | step img/s | bare backbone img/s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {', '.join(heads) or '-'} | {n} | {full:.1f} | {bare:.1f} | {full / bare:.2f} |"
        for name, heads, n, full, bare in rows
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
