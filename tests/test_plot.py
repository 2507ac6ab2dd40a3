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
from aurep.plot.table import one_face
from aurep.prepare.frames import encode_video

FRAMES, HEIGHT, WIDTH = 10, 96, 128
ORANGE = np.array([0xFD, 0xD4, 0x9E])  # "detected" shading of the time series
NO_FACE_GREY = np.array([217, 217, 217])  # "no face" shading (matplotlib grey 0.85)


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
    return table.copy()  # defragmented


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


def two_face_table() -> pd.DataFrame:
    """infer_table's face (id 0, all frames but frame 3) and a second face (id 1, frames 6-10,
    its box at (70, 30), AU12 detected throughout), as ``aurep infer --max-faces 2`` writes
    them: the frames' rows in order, face ids ascending."""
    first = infer_table()
    second = first[first["frame"] >= 6].copy()
    second["face_id"] = 1
    second[["face_x", "face_y"]] = 70.0, 30.0
    for i in range(68):
        second[f"x_{i}"] = second[f"x_{i}"] - first[first["frame"] >= 6]["face_x"] + 70.0
    second["AU12_p"], second["AU12_c"] = 0.9, 1
    return pd.concat([first, second]).sort_values(["frame", "face_id"], kind="stable")


def box_bottom_share(strip: np.ndarray, tile: int, number: int, left: float, scale: float):
    """Share of box colour along the bottom edge of a 40 px box at (left, 30) in tile ``number``."""
    part = strip[:, number * tile : (number + 1) * tile]
    bottom = int(round((30 + 40) * scale))
    edge = part[bottom - 1 : bottom + 2, int(left * scale) + 10 : int(left * scale) + 60]
    return colour_share(edge, BOX_COLOUR, 40)


def test_several_faces_per_frame_plot_the_chosen_face(result, tmp_path, capsys):
    csv, video = result
    table = two_face_table()
    table.to_csv(csv, index=False)
    with pytest.raises(
        ValueError, match=r"clip.csv: has no face_id 5 \(it has face ids \[0, 1\]\)"
    ):
        run_plot(str(csv), "--face-id", "5")
    chosen, face_id = one_face(table, 1, csv)
    assert face_id == 1 and chosen["frame"].tolist() == list(range(1, FRAMES + 1))
    assert chosen["success"].tolist() == [0] * 5 + [1] * 5  # frames without face 1: no face
    assert chosen["face_x"].iloc[5:].eq(70).all() and chosen["AU12_p"].iloc[:5].isna().all()
    assert one_face(table, None, csv)[1] == 0  # by default the face found in the most frames
    assert one_face(infer_table().drop(columns="face_id"), None, csv)[1] == 0  # a one-face CSV
    scale = 192 / HEIGHT
    tile = int(round(WIDTH * scale))
    argv = [str(csv), "--video", str(video), "--frames", "2", "--height", "192"]
    grey = {}
    for face, lefts in ((None, [20, 29]), ("1", [70, 70])):
        out = tmp_path / f"face{face}"
        out.mkdir()
        extra = ["--face-id", face] if face else []
        assert run_plot(*argv, *extra, "--out-dir", str(out)) == 0
        strip = read_rgb(out / "clip_overlay.png")
        assert strip.shape == (192, 2 * tile, 3)
        others = [70, 70] if face is None else [25, 29]  # the other face's box, not drawn
        for number, (left, other) in enumerate(zip(lefts, others, strict=True)):
            assert box_bottom_share(strip, tile, number, left, scale) > 0.3
            assert box_bottom_share(strip, tile, number, other, scale) < 0.3
        series = read_rgb(out / "clip_aus.png")
        assert colour_share(series, ORANGE) > 0.02  # AU12 on: face 0 from frame 5, face 1 always
        grey[face] = colour_share(series, NO_FACE_GREY, 3)
    assert grey["1"] > 3 * grey[None] > 0  # no face 1 in 5 frames, no face 0 in 1 frame
    assert f"AU time series -> {tmp_path / 'face1' / 'clip_aus.png'}" in capsys.readouterr().out


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
