"""A tracked-overlay PNG strip: a few source frames with the CSV's box, landmarks and top AUs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from aurep.au import au_column
from aurep.landmarks import NUM_LANDMARKS
from aurep.plot.table import write_atomically
from aurep.prepare.frames import iter_frames

BOX_COLOUR = (0, 200, 0)  # RGB
POINT_COLOUR = (255, 60, 60)
TEXT_COLOUR = (255, 255, 255)


def pick_rows(table: pd.DataFrame, count: int) -> list[int]:
    """Positions of ``count`` rows evenly spread over the frames with a face (all frames when
    none has one)."""
    if count < 1:
        raise ValueError(f"frame count must be >= 1, got {count}")
    candidates = np.flatnonzero(table["success"].to_numpy() == 1)
    if candidates.size == 0:
        candidates = np.arange(len(table))
    picked = np.linspace(0, candidates.size - 1, min(count, candidates.size)).round()
    return candidates[picked.astype(int)].tolist()


def draw_tile(
    image: np.ndarray, row: pd.Series, aus: list[int], top: int, height: int
) -> np.ndarray:
    """uint8 (H, W, 3) RGB source frame -> uint8 (height, W', 3) tile with the row's face box,
    68 landmarks, timestamp, confidence and its ``top`` most probable AUs of ``aus``."""
    scale = height / image.shape[0]
    width = max(1, round(image.shape[1] * scale))
    tile = np.ascontiguousarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
    lines = [f"t {row['timestamp']:.2f}s  conf {row['confidence']:.2f}"]
    if row["success"] == 1:
        x, y, w, h = (row[c] * scale for c in ("face_x", "face_y", "face_w", "face_h"))
        cv2.rectangle(tile, (round(x), round(y)), (round(x + w), round(y + h)), BOX_COLOUR, 2)
        for i in range(NUM_LANDMARKS):
            centre = (round(row[f"x_{i}"] * scale), round(row[f"y_{i}"] * scale))
            cv2.circle(tile, centre, max(1, height // 160), POINT_COLOUR, -1, cv2.LINE_AA)
        probs = sorted(((row[f"{au_column(c)}_p"], c) for c in aus), reverse=True)[:top]
        lines += [f"{au_column(code)} {p:.2f}" for p, code in probs]
    else:
        lines.append("no face")
    font, size = cv2.FONT_HERSHEY_SIMPLEX, height / 480
    line_height = round(24 * size * 1.9)
    widths = [cv2.getTextSize(text, font, size, 1)[0][0] for text in lines]
    panel = tile[: line_height * len(lines) + 6, : max(widths) + 12]
    panel[:] = (panel * 0.4).astype(np.uint8)  # darken behind the text
    for number, text in enumerate(lines):
        origin = (6, (number + 1) * line_height)
        cv2.putText(tile, text, origin, font, size, TEXT_COLOUR, 1, cv2.LINE_AA)
    return tile


def overlay_strip(
    table: pd.DataFrame,
    source: Path,
    out: Path,
    aus: list[int],
    count: int = 6,
    top: int = 3,
    height: int = 240,
    csv: Path | None = None,
) -> None:
    """Write a PNG to ``out``: ``count`` frames of ``source`` (the CSV's input, decoded as
    ``aurep infer`` does) side by side, each drawn by :func:`draw_tile`. ValueError naming
    ``source`` when it has fewer frames than the CSV's rows need."""
    if height < 32:
        raise ValueError(f"tile height must be >= 32 px, got {height}")
    wanted = {
        int(table["frame"].iloc[position]) - 1: position for position in pick_rows(table, count)
    }
    tiles: dict[int, np.ndarray] = {}
    for index, frame in enumerate(iter_frames(Path(source))):
        if index in wanted:
            row = table.iloc[wanted[index]]
            image = frame.image
            if image is None:  # an unreadable image of a folder
                image = np.zeros((height, height, 3), np.uint8)
            tiles[index] = draw_tile(image, row, aus, top, height)
        if len(tiles) == len(wanted):
            break
    if len(tiles) < len(wanted):
        last = max(wanted) + 1
        raise ValueError(
            f"{source}: has fewer frames than {csv or 'the CSV'} (row for frame {last}): "
            "give the video or folder the CSV was made from"
        )
    strip = np.concatenate([tiles[index] for index in sorted(tiles)], axis=1)
    encoded = cv2.imencode(".png", cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))[1]
    write_atomically(out, lambda tmp: tmp.write_bytes(encoded.tobytes()))
