"""Per-fold and averaged per-AU tables of a cross-validation run, as CSV and markdown.

Rows are the folds then ``mean``; columns are the AUs (``AU01`` ...), how many AUs the fold's
mean covers (``aus_in_mean``: those with a defined score), then that mean. The ``mean``
row averages each AU over the folds where it is defined, and its mean column averages the folds'
means (the literature's "mean over AUs, then over folds"). CSV values are fractions in [0, 1];
markdown shows percentages.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from aurep.metrics import AUScores

METRICS = {"f1": "F1", "auc": "AUC"}


def score_table(scores: dict[int, AUScores], metric: str) -> pd.DataFrame:
    """fold -> scores to the table of one metric (``"f1"`` or ``"auc"``); index ``fold1``...
    ``mean``; columns the AUs, ``aus_in_mean`` and ``mean_<metric>``."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    if not scores:
        raise ValueError("no fold results to tabulate")
    columns = next(iter(scores.values())).columns
    values, counts, means = {}, {}, {}
    for fold, fold_scores in sorted(scores.items()):
        if fold_scores.columns != columns:
            raise ValueError(f"fold {fold} has AUs {fold_scores.columns}, others {columns}")
        per_au = getattr(fold_scores, metric)
        defined = np.isfinite(per_au)
        values[f"fold{fold}"] = per_au
        counts[f"fold{fold}"] = int(defined.sum())
        means[f"fold{fold}"] = float(per_au[defined].mean()) if defined.any() else math.nan
    table = pd.DataFrame.from_dict(values, orient="index", columns=columns)
    table.loc["mean"] = table.mean(axis=0, skipna=True)  # NaN only where undefined in every fold
    table["aus_in_mean"] = pd.array([*counts.values(), None], dtype="Int64")
    table[f"mean_{metric}"] = [*means.values(), pd.Series(means).mean(skipna=True)]
    table.index.name = "fold"
    return table


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub markdown table: scores as percentages with one decimal, NaN as ``n/a``."""

    def cell(column: str, value) -> str:
        if pd.isna(value):
            return "" if column == "aus_in_mean" else "n/a"
        return str(int(value)) if column == "aus_in_mean" else f"{100 * value:.1f}"

    header = [table.index.name or "", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in table.iterrows():
        cells = [str(name), *(cell(c, v) for c, v in row.items())]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_tables(scores: dict[int, AUScores], out: Path, title: str = "") -> list[Path]:
    """Write ``f1.csv``, ``auc.csv`` and ``results.md`` (both tables) into ``out``; returns the
    paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths, sections = [], [f"# {title}" if title else "# AU detection, cross-validation"]
    for metric, label in METRICS.items():
        table = score_table(scores, metric)
        path = out / f"{metric}.csv"
        table.to_csv(path, float_format="%.6f")
        paths.append(path)
        sections += [f"## {label} (%)", markdown_table(table)]
    sections.append(
        "A fold's mean covers the AUs with a defined score (`aus_in_mean`; an AU without positive"
        " test labels has none). The `mean` row averages each AU over folds and the folds' means."
    )
    markdown = out / "results.md"
    markdown.write_text("\n\n".join(sections) + "\n")
    return [*paths, markdown]
