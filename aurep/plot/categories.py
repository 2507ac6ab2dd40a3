"""Scatter plots coloured by many categories (identities, clips), each told apart and named.

Up to 60 categories get 60 distinct colours (matplotlib's tab20, tab20b and tab20c); beyond
that, colours repeat with another marker, so every category has its own (colour, marker) pair
(480 in all before pairs repeat).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.lines import Line2D

PALETTE = tuple(
    colour for name in ("tab20", "tab20b", "tab20c") for colour in matplotlib.colormaps[name].colors
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def category_styles(names: Sequence[str]) -> dict[str, tuple[tuple[float, ...], str]]:
    """Sorted unique ``names`` -> (RGB colour, marker)."""
    styles = {}
    for index, name in enumerate(sorted(set(map(str, names)))):
        colour = PALETTE[index % len(PALETTE)]
        styles[name] = (colour, MARKERS[(index // len(PALETTE)) % len(MARKERS)])
    return styles


def scatter_categories(ax, xy: np.ndarray, groups: Sequence[str], title: str, legend: int = 40):
    """Scatter (N, 2) points ``xy`` on matplotlib axes ``ax``, one style per group (N names),
    with a legend beside the axes naming the first ``legend`` groups (and how many more)."""
    groups = np.asarray(groups).astype(str)
    styles = category_styles(groups)
    for name, (colour, marker) in styles.items():
        mask = groups == name
        ax.scatter(*xy[mask].T, s=8, color=colour, marker=marker, label=name, linewidths=0)
    ax.set(title=f"{title} ({len(styles)})", xticks=[], yticks=[])
    handles, labels = ax.get_legend_handles_labels()
    if len(styles) > legend:
        handles = handles[:legend] + [Line2D([], [], linestyle="none")]
        labels = labels[:legend] + [f"... {len(styles) - legend} more"]
    ax.legend(
        handles,
        labels,
        fontsize=6,
        markerscale=1.5,
        ncol=max(1, math.ceil(len(labels) / 20)),
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
    )
