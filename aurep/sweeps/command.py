"""``aurep sweep``: run a W&B sweep file's grid or random search locally, one process per run.

Every run gets its own directory ``OUT/runNNN`` holding ``config.yaml``, ``checkpoints/``,
``log.txt`` (the run's console) and its logs (an offline W&B run under ``wandb/``, or a
CSVLogger ``version_0/metrics.csv``). The sweep's ``metric.name`` is read back from each run's
logged metrics (last value, as W&B's summary) into ``OUT/summary.csv`` and ``OUT/summary.md``,
best run first. ``--dry-run`` checks every expanded command with LightningCLI
(``--print_config``) and writes ``OUT/commands.txt`` without training. A sweep never resumes: an ``OUT`` holding an earlier sweep's run folders or
summary is refused up front (choose another ``--out`` or delete it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from aurep.sweeps.results import run_metrics
from aurep.sweeps.spec import Sweep, command, expand, load_sweep

HELP = "run a W&B sweep file (configs/sweeps/*.yaml) locally and tabulate its metric"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = "%(prog)s [options] FILE [-- LightningCLI overrides]"
    parser.add_argument("file", type=Path, help="sweep file in W&B's format")
    parser.add_argument("--max-runs", type=int, default=None,
                        help="run at most this many (grid: the first ones; random: draws)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (runs/sweeps/<sweep name>)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of random sweeps (%(default)s)")
    parser.add_argument("--logger", choices=("wandb", "csv"), default="wandb",
                        help="wandb (offline unless --online; `wandb sync` later) or csv")  # fmt: skip
    parser.add_argument("--online", action="store_true", help="log W&B runs online")
    parser.add_argument("--dry-run", action="store_true",
                        help="check and list the commands without running them")  # fmt: skip
    parser.add_argument("overrides", nargs="*",
                        help="after --: LightningCLI overrides added to every run")  # fmt: skip


def logger_overrides(run_dir: Path, kind: str, online: bool, sweep: Sweep, index: int) -> list[str]:
    """Overrides that send the run's logs, config and default root into ``run_dir``."""
    if kind == "csv":
        logger = {"class_path": "pytorch_lightning.loggers.CSVLogger",
                  "init_args": {"save_dir": str(run_dir), "name": ""}}  # fmt: skip
    else:
        logger = {
            "class_path": "pytorch_lightning.loggers.WandbLogger",
            "init_args": {
                "save_dir": str(run_dir),
                "offline": not online,
                "name": f"{sweep.name}-{index:03d}",
                "group": sweep.name,
            },
        }
    return [f"--trainer.logger={json.dumps(logger)}", f"--trainer.default_root_dir={run_dir}"]


def resolve_config(argv: list[str]) -> dict[str, Any]:
    """The full config LightningCLI builds from ``argv`` (``python -m aurep fit ...``), via its
    ``--print_config``; ValueError with LightningCLI's error when it rejects the command."""
    from aurep.cli import main

    if argv[1:3] != ["-m", "aurep"]:
        raise ValueError(f"only `aurep` commands can be checked, got {shlex.join(argv[:3])}")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([*argv[3:], "--print_config"])  # 1 for aurep's one-line errors
        except SystemExit as exit_:
            code = exit_.code
    if code != 0:
        text = err.getvalue()
        message = " ".join(text[text.find("error:") :].split()) if "error:" in text else text
        raise ValueError(f"LightningCLI rejects `{shlex.join(argv[3:])}`: {message[:600]}")
    return yaml.safe_load(out.getvalue())


def checkpoint_override(config: dict[str, Any], run_dir: Path) -> list[str]:
    """``--trainer.callbacks.init_args.dirpath=run_dir/checkpoints`` when the last callback is a
    ModelCheckpoint or RunCheckpoint (the only list element an override can reach), else nothing."""
    callbacks = (config.get("trainer") or {}).get("callbacks") or []
    if callbacks and callbacks[-1].get("class_path", "").endswith(
        ("ModelCheckpoint", "RunCheckpoint")
    ):
        return [f"--trainer.callbacks.init_args.dirpath={run_dir / 'checkpoints'}"]
    return []


def prepare_run(sweep: Sweep, params: dict[str, Any], index: int, args) -> tuple[list[str], Path]:
    """The checked argv of run ``index`` and its directory."""
    run_dir = (args.out / f"run{index:03d}").resolve()
    own = logger_overrides(run_dir, args.logger, args.online, sweep, index)
    config = resolve_config(command(sweep, params, [*own, *args.overrides]))
    argv = command(sweep, params, [*own, *checkpoint_override(config, run_dir), *args.overrides])
    return argv, run_dir


def execute(argv: list[str], run_dir: Path) -> int:
    """Run one training process; its console goes to ``run_dir/log.txt``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "log.txt", "w") as log:
        log.write(shlex.join(argv) + "\n\n")
        log.flush()
        return subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False).returncode


def summary_table(sweep: Sweep, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Runs sorted best first by the sweep's metric (failed or unlogged runs last)."""
    table = pd.DataFrame(rows)
    return table.sort_values(
        sweep.metric, ascending=sweep.goal == "minimize", na_position="last", kind="stable"
    ).reset_index(drop=True)


def write_summary(sweep: Sweep, table: pd.DataFrame, out: Path) -> None:
    table.to_csv(out / "summary.csv", index=False)
    title = f"# Sweep {sweep.name}: {sweep.metric} ({sweep.goal}), {sweep.path}\n\n"
    (out / "summary.md").write_text(title + table.to_markdown(index=False, floatfmt=".4g") + "\n")


def check_fresh_out(out: Path) -> None:
    """ValueError when ``out`` already holds run folders or a summary of an earlier sweep (a
    sweep never resumes: its runs would be refused beside their old checkpoints)."""
    earlier = [out / "summary.csv", *out.glob("run[0-9][0-9][0-9]")]
    if any(path.exists() for path in earlier):
        raise ValueError(f"--out {out} holds an earlier sweep: choose another --out or delete it")


def run(args: argparse.Namespace) -> int:
    sweep = load_sweep(args.file)
    args.out = args.out or Path("runs", "sweeps", sweep.name)
    check_fresh_out(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = expand(sweep, args.max_runs, args.seed)
    commands = [prepare_run(sweep, params, i, args) for i, params in enumerate(runs)]
    (args.out / "commands.txt").write_text("".join(shlex.join(c) + "\n" for c, _ in commands))
    print(f"{sweep.name}: {len(runs)} runs ({sweep.method}), commands in {args.out}/commands.txt")
    if args.dry_run:
        return 0
    rows = []
    for i, (params, (argv, run_dir)) in enumerate(zip(runs, commands, strict=True)):
        start = time.monotonic()
        code = execute(argv, run_dir)
        value, status = math.nan, "ok" if code == 0 else f"failed ({code}, see log.txt)"
        if code == 0:
            try:
                value = run_metrics(run_dir).get(sweep.metric, math.nan)
            except ValueError as error:
                status = f"metrics unreadable: {error}"
        rows.append({"run": run_dir.name, "status": status, sweep.metric: value, **params})
        print(f"[{i + 1}/{len(runs)}] {run_dir.name} {status} {sweep.metric}={value:.4g} "
              f"({time.monotonic() - start:.0f} s)", flush=True)  # fmt: skip
    table = summary_table(sweep, rows)
    write_summary(sweep, table, args.out)
    print(table.to_markdown(index=False, floatfmt=".4g"))
    return 0 if all(row["status"] == "ok" for row in rows) else 1
