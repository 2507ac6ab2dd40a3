"""``aurep plot CSV [--video INPUT]``: an AU time-series PNG from an ``aurep infer`` CSV and,
with the CSV's input video or image folder, a tracked-overlay PNG strip (see
:mod:`aurep.plot.timeseries` and :mod:`aurep.plot.overlay`), of one face (``--face-id``) when
the CSV has several per frame."""

from __future__ import annotations

import argparse
from pathlib import Path

from aurep.plot.overlay import overlay_strip
from aurep.plot.table import one_face, read_infer_csv, select_aus
from aurep.plot.timeseries import au_timeseries

HELP = "plot an `aurep infer` CSV: AU time series and a tracked-overlay strip (PNG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("csv", type=Path, help="CSV written by aurep infer")
    parser.add_argument(
        "--video", type=Path, help="the CSV's input (video or image folder): adds the overlay"
    )
    parser.add_argument(
        "--out-dir", type=Path, help="folder for the PNGs (default: the CSV's folder)"
    )
    parser.add_argument("--aus", type=int, nargs="+", help="AU codes to plot (default: all)")
    parser.add_argument(
        "--face-id",
        type=int,
        help="the face to plot in a CSV with several faces per frame (default: the one found "
        "in the most frames)",
    )
    parser.add_argument("--frames", type=int, default=6, help="frames in the overlay strip (6)")
    parser.add_argument(
        "--top", type=int, default=3, help="most probable AUs written per frame (3)"
    )
    parser.add_argument("--height", type=int, default=240, help="overlay tile height, px (240)")


def output_paths(csv: Path, out_dir: Path | None) -> tuple[Path, Path]:
    """(time series, overlay) PNG paths: ``<csv stem>_aus.png`` and ``<csv stem>_overlay.png``."""
    folder = out_dir if out_dir is not None else csv.parent
    return folder / f"{csv.stem}_aus.png", folder / f"{csv.stem}_overlay.png"


def run(args: argparse.Namespace) -> int:
    if args.frames < 1 or args.top < 0 or args.height < 32:
        raise ValueError("--frames must be >= 1, --top >= 0 and --height >= 32 px")
    if args.video is not None and not args.video.exists():
        raise ValueError(f"--video {args.video}: no such file or directory")
    if args.out_dir is not None and not args.out_dir.is_dir():
        raise ValueError(f"--out-dir {args.out_dir}: no such folder")
    table = read_infer_csv(args.csv, geometry=args.video is not None)
    several = "face_id" in table and table["face_id"].nunique() > 1
    table, face_id = one_face(table, args.face_id, args.csv)
    aus = select_aus(table, args.aus, args.csv)
    series, overlay = output_paths(args.csv, args.out_dir)
    title = f"{args.csv.name}, face {face_id}" if several else args.csv.name
    au_timeseries(table, aus, series, title=title)
    print(f"AU time series -> {series}")
    if args.video is not None:
        overlay_strip(
            table, args.video, overlay, aus, args.frames, args.top, args.height, csv=args.csv
        )
        print(f"overlay strip -> {overlay}")
    return 0
