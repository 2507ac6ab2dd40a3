"""AU time series of an ``aurep infer`` CSV: one row per AU, probability over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: no backend or global state

from aurep.au import AU_NAMES, au_column
from aurep.plot.table import write_atomically


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


def au_timeseries(table: pd.DataFrame, aus: list[int], out: Path, title: str = "") -> None:
    """Write a PNG to ``out``: the face detector confidence on top, then per AU its probability
    ``AUxx_p`` (line, 0-1) with the frames it is detected (``AUxx_c`` = 1) shaded; frames
    without a face are grey in every row. x: the CSV's ``timestamp`` in seconds."""
    time = table["timestamp"].to_numpy(float)
    step = float(np.median(np.diff(time))) if len(time) > 1 else 1.0
    no_face = table["success"].to_numpy() == 0
    rows = len(aus) + 1
    figure = Figure(figsize=(9, 0.75 * rows + 0.9))
    axes = np.atleast_1d(figure.subplots(rows, 1, sharex=True))
    panels = [("confidence", "confidence", None)]
    panels += [(f"{au_column(c)}_p", f"{au_column(c)} {AU_NAMES.get(c, '')}", c) for c in aus]
    for axis, (column, label, code) in zip(axes, panels, strict=True):
        for first, last in _spans(no_face):
            axis.axvspan(time[first] - step / 2, time[last] + step / 2, color="0.85", lw=0)
        if code is not None and f"{au_column(code)}_c" in table:
            detected = table[f"{au_column(code)}_c"].to_numpy(float) == 1
            for first, last in _spans(detected):
                axis.axvspan(time[first] - step / 2, time[last] + step / 2, color="#fdd49e", lw=0)
        axis.plot(time, table[column].to_numpy(float), color="#08519c", lw=1.2)
        axis.set_ylim(-0.05, 1.05)
        axis.set_yticks([0, 1])
        axis.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        axis.tick_params(labelsize=7)
        for side in ("top", "right"):
            axis.spines[side].set_visible(False)
    axes[-1].set_xlabel("time (s)")
    axes[0].set_title(
        title + "  (line: probability; orange: detected; grey: no face)", fontsize=9, loc="left"
    )
    figure.tight_layout(h_pad=0.2)
    write_atomically(out, lambda tmp: figure.savefig(tmp, format="png", dpi=110))
