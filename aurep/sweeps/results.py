"""Reading a finished run's logged metrics back: W&B offline runs and CSVLogger files.

W&B runs are read with W&B's own reader, ``wandb leet inspect --summary --json`` (state,
summary = the last value of every metric, config), so nothing here parses W&B's binary
transaction log by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd


def wandb_run_dirs(save_dir: str | Path) -> list[Path]:
    """The W&B run directories (``offline-run-*``, ``run-*``) under ``save_dir/wandb``, oldest
    first."""
    return sorted(p for p in Path(save_dir, "wandb").glob("*run-*") if p.is_dir())


def read_wandb_run(run_dir: str | Path) -> dict[str, Any]:
    """A W&B run directory -> ``{"state", "summary", "config", "run_id", ...}`` as W&B reports
    it. ValueError naming the directory when W&B cannot read it."""
    result = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise ValueError(f"{run_dir}: W&B cannot read this run ({message[-1] if message else ''})")
    return json.loads(result.stdout)


def read_csv_metrics(metrics_csv: str | Path) -> dict[str, float]:
    """A CSVLogger ``metrics.csv`` -> the last logged value of every metric (as W&B's summary)."""
    table = pd.read_csv(metrics_csv)
    return {str(c): float(v.dropna().iloc[-1]) for c, v in table.items() if v.notna().any()}


def run_metrics(run_dir: str | Path) -> dict[str, float]:
    """The last value of every metric logged under ``run_dir``: from its W&B run (the newest)
    if it has one, else from its CSVLogger ``metrics.csv``. Empty when nothing was logged."""
    wandb_runs = wandb_run_dirs(run_dir)
    if wandb_runs:
        summary = read_wandb_run(wandb_runs[-1]).get("summary") or {}
        return {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}
    csv_files = sorted(Path(run_dir).glob("**/metrics.csv"), key=lambda p: p.stat().st_mtime)
    return read_csv_metrics(csv_files[-1]) if csv_files else {}
