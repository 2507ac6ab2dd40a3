"""Reading an ``aurep infer`` CSV for plotting, with one-line errors naming the file."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from aurep.landmarks import NUM_LANDMARKS

REQUIRED = ("frame", "timestamp", "confidence", "success")
GEOMETRY = (
    "face_x",
    "face_y",
    "face_w",
    "face_h",
    *(f"x_{i}" for i in range(NUM_LANDMARKS)),
    *(f"y_{i}" for i in range(NUM_LANDMARKS)),
)
_PROBABILITY = re.compile(r"^AU(\d+)_p$")


def read_infer_csv(path: Path, geometry: bool = False) -> pd.DataFrame:
    """The rows of an ``aurep infer`` CSV; ``geometry``: the face box and landmark columns are
    required too. ValueError naming the file when it is missing, unreadable or lacks columns."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such CSV file")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: not a readable CSV ({first})") from None
    wanted = [*REQUIRED, *(GEOMETRY if geometry else ())]
    missing = [column for column in wanted if column not in table.columns]
    if not au_codes(table):
        missing.append("AUxx_p")
    if missing:
        shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        raise ValueError(
            f"{path}: not an `aurep infer` CSV (no {shown} column); make it with aurep infer"
        )
    if table.empty:
        raise ValueError(f"{path}: has no rows")
    return table


def au_codes(table: pd.DataFrame) -> list[int]:
    """The AU codes with a probability column ``AUxx_p``, in column order."""
    return [int(m.group(1)) for c in table.columns if (m := _PROBABILITY.match(str(c)))]


def select_aus(table: pd.DataFrame, wanted: list[int] | None, path: Path) -> list[int]:
    """``wanted`` AU codes (all of the CSV's when None); ValueError naming the file for codes
    it does not have."""
    available = au_codes(table)
    if wanted is None:
        return available
    unknown = [code for code in wanted if code not in available]
    if unknown:
        raise ValueError(f"{path}: has no AU {unknown} (it has AUs {available})")
    return list(wanted)


def one_face(table: pd.DataFrame, face_id: int | None, path: Path) -> tuple[pd.DataFrame, int]:
    """(one row per frame for face ``face_id``, that id) from a CSV that may hold several faces
    per frame (``aurep infer --max-faces``); frames without that face become no-face rows
    (success 0, empty cells). ``face_id`` None: the id found in the most frames. A CSV without a
    ``face_id`` column is one face, id 0. ValueError naming the file for an id it lacks."""
    if "face_id" not in table:
        table = table.assign(face_id=0)
    found = table[table["success"] == 1]
    ids = sorted(int(i) for i in found["face_id"].unique())
    if face_id is None:
        face_id = int(found["face_id"].value_counts().idxmax()) if ids else 0
    elif face_id not in ids:
        raise ValueError(f"{path}: has no face_id {face_id} (it has face ids {ids})")
    rows = found[found["face_id"] == face_id].drop(columns="timestamp")
    frames = table.drop_duplicates("frame")[["frame", "timestamp"]]
    chosen = frames.merge(rows, on="frame", how="left")
    chosen["face_id"] = face_id
    chosen["success"] = chosen["success"].fillna(0).astype(int)
    chosen["confidence"] = chosen["confidence"].fillna(0.0)
    return chosen[table.columns], face_id


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary name next to ``path``, then rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
