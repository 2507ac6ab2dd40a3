"""``aurep plot``: the AU time series and the overlay strip from an infer-style CSV (made here
with known boxes, landmarks and AU values) and its video, and one-line errors."""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import pandas as pd
import pytest

from aurep import cli
from aurep.infer.pipeline import csv_columns
from aurep.plot import command
from aurep.plot.overlay import BOX_COLOUR, POINT_COLOUR, pick_rows
from aurep.prepare.frames import encode_video

FRAMES, HEIGHT, WIDTH = 10, 96, 128
ORANGE = np.array([0xFD, 0xD4, 0x9E])  # "detected" shading of the time series


def infer_table(frames: int = FRAMES) -> pd.DataFrame:
    """Rows as ``aurep infer`` writes them: a 40 x 40 px face box at (20 + t, 30), landmarks on
    a 10 x 10 px grid inside it; AU12 detected from frame 4 on, AU01 never; frame 2 no face."""
    table = pd.DataFrame(np.nan, index=range(frames), columns=csv_columns([1, 12], False))
    t = np.arange(frames)
    table["frame"], table["face_id"], table["timestamp"] = t + 1, 0, t * 0.04
    table["success"], table["confidence"] = 1, 0.9
    table[["face_x", "face_y", "face_w", "face_h"]] = np.stack(
        [20.0 + t, np.full(frames, 30.0), np.full(frames, 40.0), np.full(frames, 40.0)], 1
    )
    grid = np.stack(np.meshgrid(np.arange(8), np.arange(9)), -1).reshape(-1, 2)[:68] * 5.0
    for i, (x, y) in enumerate(grid):
        table[f"x_{i}"] = 20.0 + t + x
        table[f"y_{i}"] = 30.0 + y
    table["AU01_p"], table["AU01_c"] = 0.1, 0
    table["AU12_p"] = np.where(t >= 4, 0.8, 0.2)
    table["AU12_c"] = (t >= 4).astype(int)
    table.loc[2, "success"] = 0
    table.loc[2, [c for c in table.columns if c not in ("frame", "face_id", "timestamp")]] = np.nan
    table.loc[2, ["success", "confidence"]] = 0
    return table


@pytest.fixture
def result(tmp_path):
    """(csv, video): the table above and a dark grey video of the same length."""
    csv, video = tmp_path / "clip.csv", tmp_path / "clip.mp4"
    infer_table().to_csv(csv, index=False)
    encode_video(video, [np.full((HEIGHT, WIDTH, 3), 40, np.uint8)] * FRAMES)
    return csv, video


def run_plot(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.run(parser.parse_args(list(argv)))


def read_rgb(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} is not a PNG"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def colour_share(image: np.ndarray, colour, tolerance: int = 12) -> float:
    return float((np.abs(image.astype(int) - np.asarray(colour)).max(-1) <= tolerance).mean())


def test_time_series_shades_detected_frames_only(result, tmp_path, capsys):
    csv, _ = result
    assert run_plot(str(csv), "--aus", "12") == 0
    series = tmp_path / "clip_aus.png"
    assert f"AU time series -> {series}" in capsys.readouterr().out
    assert colour_share(read_rgb(series), ORANGE) > 0.02  # AU12 is on from frame 4
    out = tmp_path / "au01"
    out.mkdir()
    assert run_plot(str(csv), "--aus", "1", "--out-dir", str(out)) == 0
    assert colour_share(read_rgb(out / "clip_aus.png"), ORANGE) == 0.0  # AU01 never on
    assert not (out / "clip_overlay.png").exists()  # no --video, no overlay
    assert sorted(p.name for p in out.iterdir()) == ["clip_aus.png"]  # no temp files


def test_overlay_strip_draws_the_rows_box_and_landmarks(result, tmp_path):
    csv, video = result
    assert run_plot(str(csv), "--video", str(video), "--frames", "3", "--height", "192") == 0
    strip = read_rgb(tmp_path / "clip_overlay.png")
    scale = 192 / HEIGHT
    tile = int(round(WIDTH * scale))
    assert strip.shape == (192, 3 * tile, 3)
    rows = pick_rows(infer_table(), 3)
    assert rows == [0, 5, 9]  # first, middle, last of the 9 rows with a face (not row 2)
    for number, row in enumerate(rows):
        part = strip[:, number * tile : (number + 1) * tile]
        left, top = (20 + row) * scale, 30 * scale
        bottom = int(round(top + 40 * scale))
        edge = part[bottom - 1 : bottom + 2, int(left) + 10 : int(left) + 60]
        assert colour_share(edge, BOX_COLOUR, 40) > 0.3  # the box's bottom edge
        centre = part[int(top + 20 * scale) - 2 : int(top + 20 * scale) + 3]
        centre = centre[:, int(left + 20 * scale) - 2 : int(left + 20 * scale) + 3]
        assert colour_share(centre, POINT_COLOUR, 60) >= 0.12  # the grid's landmark (20, 20)
        assert colour_share(part[-20:, -20:], BOX_COLOUR, 40) == 0.0  # nothing off the face


def test_bad_inputs_are_one_line_errors(result, tmp_path, capsys):
    csv, video = result
    with pytest.raises(ValueError, match=r"missing.csv: no such CSV file"):
        run_plot(str(tmp_path / "missing.csv"))
    other = tmp_path / "labels.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"labels.csv: not an `aurep infer` CSV \(no frame"):
        run_plot(str(other))
    with pytest.raises(ValueError, match=r"clip.csv: has no AU \[4\] \(it has AUs \[1, 12\]\)"):
        run_plot(str(csv), "--aus", "4")
    short = tmp_path / "short.mp4"
    encode_video(short, [np.zeros((HEIGHT, WIDTH, 3), np.uint8)] * 4)
    with pytest.raises(ValueError, match=r"short.mp4: has fewer frames than .*clip.csv"):
        run_plot(str(csv), "--video", str(short))
    no_geometry = tmp_path / "old.csv"
    infer_table().drop(columns=["face_x"]).to_csv(no_geometry, index=False)
    assert run_plot(str(no_geometry)) == 0  # the time series needs no geometry
    with pytest.raises(ValueError, match=r"old.csv: not an `aurep infer` CSV \(no face_x"):
        run_plot(str(no_geometry), "--video", str(video))
    with pytest.raises(SystemExit) as exited:
        cli.main(["plot", str(tmp_path / "missing.csv")])
    assert exited.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
