"""How far from convergence is a pretraining config at a step budget? One run, probed at growing
budgets.

The run is trained to the smallest budget, probed, resumed from its own last checkpoint
(``aurep fit ... --ckpt_path=last``) to the next budget, probed, and so on. Each budget's
checkpoint is kept (``WORK/NAME/budgets/step-N.ckpt``), so a rerun skips the budgets it has and
a later call can extend the curve with larger ones. With the shipped configs' constant learning
rate a run stopped at N steps is the run of budget N (up to the order of the data stream after a
resume mid-epoch); with a schedule that depends on ``max_steps`` it would not be.

Probing is :mod:`probe_checkpoints`' (the quality benchmark's protocol: fold 3 unseen, per-AU
logistic regression, identity accuracy), one JSON line per row and label fraction appended to
``WORK/probes.jsonl``; a markdown table of the curve is printed at the end. Baselines come from
``probe_checkpoints.py --corpus C`` (deterministic, so one run per corpus serves every curve).
``--probe-corpus P`` pretrains on ``--corpus`` and probes on P (e.g. a corpus of other people,
to ask what more pretraining identities give); the fit still leaves out ``--corpus``'s fold 3
unless the overrides say otherwise (``--data.init_args.exclude_folds=[]``).

    .venv/bin/python benchmarks/budget_curve.py landmark_invariant \\
        --fragment configs/pretrain/landmark_invariant.yaml --steps 1000 2000 3000 --centre \\
        [--corpus data/synth] [--probe-corpus P] [--seed 0] [--work runs/budget] \\
        [-- FIT_OVERRIDES ...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import probe_checkpoints  # noqa: E402
import quality  # noqa: E402


@dataclass(frozen=True)
class Budget:
    """One point of the curve: its kept checkpoint, optimiser steps and frames drawn."""

    checkpoint: Path
    steps: int
    images: int


def kept_checkpoint(run: Path, steps: int) -> Path:
    return run / "budgets" / f"step-{steps}.ckpt"


def reach(
    fragment: Path, corpus: Path, run: Path, steps: int, seed: int, overrides: Sequence[str]
) -> Budget:
    """The run at ``steps`` optimiser steps: its kept checkpoint, or trained on from the run's
    last checkpoint (from scratch if it has none) and then kept. SystemExit when the run is
    already past ``steps`` or its fit stops short of them."""
    kept = kept_checkpoint(run, steps)
    if not kept.exists():
        last = run / "checkpoints" / "last.ckpt"
        resume = []
        if last.exists():
            done = int(quality.read_checkpoint(last)["global_step"])
            if done > steps:
                raise SystemExit(
                    f"{run}: already trained {done} steps, past the budget {steps} "
                    "(budgets are reached in increasing order; use a new NAME)"
                )
            resume = ["--ckpt_path=last"]
        arguments = quality.fit_arguments(fragment, corpus, run, steps, seed)
        last = quality.finished_checkpoint(
            run, quality.aurep_main(arguments + [*overrides, *resume])
        )
        stopped = int(quality.read_checkpoint(last)["global_step"])
        if stopped != steps:  # checked before keeping: a short run is never kept as budget N
            raise SystemExit(f"{run}: the fit stopped at step {stopped}, not {steps}")
        kept.parent.mkdir(exist_ok=True)
        partial = kept.with_suffix(".partial")
        shutil.copyfile(last, partial)
        partial.replace(kept)
    data = quality.read_checkpoint(kept).get("datamodule_hyper_parameters", {})
    return Budget(kept, *quality.trained_steps(kept, data))


def curve_table(name: str, budgets: Sequence[Budget], lines: Sequence[dict]) -> str:
    """Markdown: one row per budget, the probe's mean F1 / AUC (100% labels), F1 (10%), identity
    accuracy, and the identity-centred F1 where it was probed."""
    found = {(line["row"], line["fraction"]): line for line in lines}
    header = "| steps | images seen | F1 100% | AUC 100% | F1 10% | identity acc. | F1, - identity mean |"
    text = [header, "|" + "---|" * 7]
    for budget in budgets:
        row = f"{name}@{budget.steps}"
        full, tenth = found[row, 1.0], found[row, 0.1]
        centred = found.get((f"{row} - identity mean", 1.0))
        text.append(
            f"| {budget.steps} | {budget.images} | {full['mean_f1']} | {full['mean_auc']} "
            f"| {tenth['mean_f1']} | {full['identity_acc']} "
            f"| {centred['mean_f1'] if centred else '-'} |"
        )
    return "\n".join(text)


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """The script's arguments and the ``aurep fit`` overrides after ``--``."""
    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="run name: WORK/NAME, rows NAME@STEPS")
    parser.add_argument("--fragment", type=Path, required=True, help="pretraining config")
    parser.add_argument("--steps", type=int, nargs="+", required=True, help="budgets")
    parser.add_argument("--corpus", type=Path, default=Path("data/synth"), help="pretraining")
    parser.add_argument("--probe-corpus", type=Path, help="the probes' corpus (--corpus)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("runs/budget"))
    parser.add_argument("--centre", action="store_true", help="also probe features - identity mean")
    args = parser.parse_args(argv[:split])
    if min(args.steps) < 1:
        parser.error("--steps: budgets are positive optimiser step counts")
    if not args.fragment.is_file():
        parser.error(f"--fragment {args.fragment}: no such config file")
    return args, argv[split + 1 :]


def main(argv: Sequence[str] | None = None) -> str:
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    corpus, run = args.corpus.resolve(), (args.work / args.name).resolve()
    probe_corpus = args.probe_corpus or args.corpus
    frames = quality.corpus_frames(probe_corpus.resolve())
    budgets, lines = [], []
    for steps in sorted(set(args.steps)):
        budget = reach(args.fragment.resolve(), corpus, run, steps, args.seed, overrides)
        rows = probe_checkpoints.checkpoint_rows(
            frames, f"{args.name}@{steps}", budget.checkpoint, args.centre
        )
        lines += probe_checkpoints.probe_rows(
            frames, rows, probe_corpus, args.work / "probes.jsonl"
        )
        budgets.append(budget)
    table = curve_table(args.name, budgets, lines)
    print(table)
    return table


if __name__ == "__main__":
    main()
