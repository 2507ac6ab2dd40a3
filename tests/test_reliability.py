"""Fault injection for the data side (issue 12): safe overwrites, dead workers, exact resumes,
corrupt inputs, settings checked up front. Each test states the exact outcome; those that
start worker processes are bounded by a timeout, so a hang fails instead of blocking.
docs/reliability.md lists the cases and the test of each."""

from __future__ import annotations

import argparse
import ast
import json
import re
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from faults import KillWorkerOn
from test_adapters import write_frames
from test_preprocess import face_clip

from aurep.cli import main
from aurep.data.flow import video_flow_targets
from aurep.data.prepared import MARKER_FILE, DatasetError, PreparedDataset
from aurep.prepare import flow as flow_module
from aurep.prepare import jobs as jobs_module
from aurep.prepare import videos as prepare_videos
from aurep.prepare.converters import bp4d, disfa, gft
from aurep.prepare.converters.common import read_occurrence_csv
from aurep.prepare.faces.preprocessor import FacePreprocessor
from aurep.prepare.frames import encode_video, is_truncated_image, iter_frames
from aurep.synth import corpus as corpus_module
from aurep.synth import generate_corpus
from aurep.workers import WorkerDied, run_in_workers

SYNTH = ["--identities", "2", "--clips-per-identity", "2", "--frames", "3", "--size", "32"]


def prepare(module, *argv: str, workers: int = 1) -> int:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    options = ["--size", "32", "--no-progress", "--workers", str(workers)]
    return module.run(parser.parse_args([*argv, *options]))


def cli_error(capsys, *argv: str) -> str:
    """Run ``aurep ARGV``, expect a non-zero exit, return its one-line error."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code != 0
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    return error


def face_corpus(root, videos=("a", "b", "c")):
    """One identity folder per video, each a 3-frame clip of the astronaut."""
    for name in videos:
        (root / name).mkdir(parents=True)
        encode_video(root / name / "clip.mp4", face_clip(3, size=64))
    return root


def bp4d_csv(*rows: str) -> str:
    """A BP4D label file: header 0..24, each row ``frame,AU1,AU2`` with the other AUs 0."""
    return "\n".join([",".join(map(str, range(25))), *(row + ",0" * 22 for row in rows)]) + "\n"


def bp4d_tree(root, *rows: str):
    """Sequences F001/T1 and F002/T1 of 2 frames; F001_T1.csv holds ``rows``."""
    write_frames(root / "F001" / "T1", [0, 1], digits=3)
    write_frames(root / "F002" / "T1", [0, 1], digits=3)
    labels = root / "AUCoding" / "AU_OCC"
    labels.mkdir(parents=True)
    (labels / "F001_T1.csv").write_text(bp4d_csv(*(rows or ("0,1,0", "1,0,1"))))
    (labels / "F002_T1.csv").write_text(bp4d_csv("0,0,0", "1,0,0"))
    return root


# --- 1. --overwrite removes only what aurep wrote --------------------------------------------


def test_overwrite_never_touches_an_input_folder(tmp_path, capsys):
    src = face_corpus(tmp_path / "D", videos=("a",))
    (src / "notes.txt").write_text("mine")
    before = sorted(p.relative_to(src) for p in src.rglob("*"))
    error = cli_error(capsys, "prepare", "videos", str(src), "--out", str(src), "--overwrite")
    assert "is the input" in error and "--overwrite" not in error.split("error:")[1]
    error = cli_error(capsys, "prepare", "videos", str(src), "--out", str(src / "prepared"))
    assert "lies inside the input" in error
    raw = bp4d_tree(tmp_path / "X")
    error = cli_error(capsys, "prepare", "bp4d", str(raw), "--out", str(raw), "--overwrite")
    assert "is the input" in error
    error = cli_error(capsys, "prepare", "bp4d", str(raw), "--out", str(tmp_path), "--overwrite")
    assert "holds the input" in error
    assert sorted(p.relative_to(src) for p in src.rglob("*")) == before
    assert (raw / "AUCoding" / "AU_OCC" / "F001_T1.csv").exists()


def test_overwrite_refuses_foreign_folders_and_keeps_foreign_files(tmp_path, capsys):
    thesis = tmp_path / "thesis_dir"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("\\chapter{AUs}")
    error = cli_error(capsys, "synth", "--out", str(thesis), "--overwrite", *SYNTH)
    assert "aurep did not write (chapter1.tex)" in error and "--overwrite" not in error[30:]
    assert (thesis / "chapter1.tex").read_text() == "\\chapter{AUs}"
    out = tmp_path / "synth"
    assert main(["synth", "--out", str(out), "--no-flow", *SYNTH]) == 0
    (out / "README.txt").write_text("my notes")  # a user's file inside aurep's output
    assert main(["synth", "--out", str(out), "--no-flow", "--overwrite", *SYNTH[:-2]]) == 0
    assert (out / "README.txt").read_text() == "my notes"
    assert PreparedDataset(out).image_size == 112 and (out / MARKER_FILE).is_file()


# --- 2. a dead worker process is named, nothing hangs, a rerun resumes ----------------------


@pytest.mark.timeout(60)
def test_run_in_workers_names_only_the_task_that_killed_its_worker():
    results = dict(run_in_workers(KillWorkerOn("builtins:str", "3"), list("123456"), 2))
    assert results == {"1": "1", "2": "2", "3": WorkerDied(), "4": "4", "5": "5", "6": "6"}


@pytest.mark.timeout(60)
def test_run_in_workers_survives_a_death_while_a_result_is_being_used():
    results = {}
    for item, result in run_in_workers(KillWorkerOn("builtins:str", "3", 0.5), list("1345"), 2):
        results[item] = result
        if item == "1":
            time.sleep(2.0)  # task 3 kills its worker now, before the next task is submitted
    assert results == {"1": "1", "3": WorkerDied(), "4": "4", "5": "5"}


@pytest.mark.timeout(120)
def test_synth_survives_a_killed_worker_and_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "synth"
    options = dict(identities=2, clips_per_identity=2, frames=3, size=32, flow=False)
    killer = KillWorkerOn("aurep.synth.corpus:_write_video", "S001_C00")
    monkeypatch.setattr(corpus_module, "_write_video", killer)
    with pytest.raises(DatasetError, match=r"1 of 4 videos failed \(S001_C00\).*run the same"):
        generate_corpus(out, workers=2, progress=False, **options)
    assert "error: video S001_C00: its worker process died" in capsys.readouterr().err
    assert not (out / "meta.json").exists()
    kept = (out / "videos" / "S000_C00" / "rows.parquet").stat().st_mtime_ns
    monkeypatch.undo()
    generate_corpus(out, workers=2, progress=False, **options)
    assert PreparedDataset(out).video_lengths == dict.fromkeys(
        ["S000_C00", "S000_C01", "S001_C00", "S001_C01"], 3
    )
    assert (out / "videos" / "S000_C00" / "rows.parquet").stat().st_mtime_ns == kept


@pytest.mark.timeout(240)
def test_prepare_videos_survives_a_killed_worker_and_resumes(tmp_path, monkeypatch, capsys):
    src, out = face_corpus(tmp_path / "raw"), tmp_path / "out"
    killer = KillWorkerOn("aurep.prepare.jobs:process_job", "b__clip")
    monkeypatch.setattr(jobs_module, "process_job", killer)
    assert prepare(prepare_videos, str(src), "--out", str(out), "--no-flow", workers=2) == 1
    captured = capsys.readouterr()
    assert "error: video b__clip:" in captured.err and "worker process died" in captured.err
    assert "videos: 2 written, 1 failed, 0 already done" in captured.out
    assert "1 videos failed (b__clip)" in captured.out
    monkeypatch.undo()
    assert prepare(prepare_videos, str(src), "--out", str(out), "--no-flow", workers=2) == 0
    assert "videos: 1 written, 0 failed, 2 already done" in capsys.readouterr().out
    assert PreparedDataset(out).meta["summary"]["videos"] == 3


@pytest.mark.timeout(120)
def test_prepare_flow_survives_a_killed_worker_and_resumes(prepared, monkeypatch, capsys):
    root = prepared(videos_per_subject=2, subjects={"A": 1, "B": 2})
    killer = KillWorkerOn("aurep.prepare.flow:_safe_video_flow", "B_v1")
    monkeypatch.setattr(flow_module, "_safe_video_flow", killer)
    flow = ["prepare", "flow", str(root), "--workers", "2", "--no-progress"]
    assert main(flow) == 1
    captured = capsys.readouterr()
    assert "error: video B_v1: its worker process died" in captured.err
    assert "computed 3 videos" in captured.out and "1 failed" in captured.out
    assert "flow_pending" in PreparedDataset(root).meta
    monkeypatch.undo()
    assert main(flow) == 0
    assert "computed 1 videos" in capsys.readouterr().out
    assert PreparedDataset(root).meta["flow"] == {"delta": 1, "grid": 28, "method": "dis"}


# --- 3. exact resume: settings and input fingerprints -----------------------------------------


def test_interrupted_flow_overwrite_is_finished_with_the_new_delta(prepared, monkeypatch):
    root = prepared(videos_per_subject=2, subjects={"A": 1, "B": 2})
    flow = ["prepare", "flow", str(root), "--workers", "1", "--no-progress"]
    assert main(flow) == 0
    real, calls = flow_module._safe_video_flow, []

    def interrupted(video_dir, **kwargs):
        calls.append(video_dir)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(video_dir, **kwargs)

    monkeypatch.setattr(flow_module, "_safe_video_flow", interrupted)
    with pytest.raises(KeyboardInterrupt):
        flow_module.prepare_flow(root, delta=3, workers=1, overwrite=True, progress=False)
    monkeypatch.undo()
    assert flow_module.prepare_flow(root, delta=3, workers=1, progress=False) == (3, {})
    dataset = PreparedDataset(root)
    for video in dataset.videos:
        expected = video_flow_targets(dataset.frames(video), delta=3)
        np.testing.assert_array_equal(dataset.array(video, "flow"), expected)
    assert dataset.meta["flow"]["delta"] == 3


def test_prepare_redoes_changed_labels_drops_vanished_sources_and_sums_everything(tmp_path, capsys):
    raw, out = bp4d_tree(tmp_path / "BP4D", "0,1,0", "1,0.6,1", "7,1,1"), tmp_path / "out"
    assert prepare(bp4d, str(raw), "--out", str(out), "--no-flow") == 0
    captured = capsys.readouterr()
    assert "F001_T1.csv: line 3: malformed, skipped (AU1 code '0.6' is not an integer)" in (
        captured.err
    )
    assert "warning: video F001_T1: 1 frames without labels, 1 label rows without a frame" in (
        captured.err
    )
    assert "(in 1 videos: F001_T1), 1 label-file problems" in captured.out
    labels = raw / "AUCoding" / "AU_OCC" / "F001_T1.csv"
    labels.write_text(bp4d_csv("0,1,0", "1,0,1"))  # the fix
    assert prepare(bp4d, str(raw), "--out", str(out), "--no-flow") == 0
    captured = capsys.readouterr()
    assert f"redoing video F001_T1: its input changed ({labels})" in captured.err
    assert "videos: 1 written, 0 failed, 1 already done" in captured.out
    assert "0 frames without labels, 0 label rows without a frame" in captured.out
    rows = PreparedDataset(out).video_rows("F001_T1")
    assert rows["AU01"].tolist() == [1, 0] and rows["AU02"].tolist() == [0, 1]
    summary = PreparedDataset(out).meta["summary"]
    assert (summary["videos"], summary["frames"], summary["problems"]) == (2, 4, 0)
    for image in (raw / "F002" / "T1").iterdir():
        image.unlink()
    (raw / "F002" / "T1").rmdir()
    (raw / "F002").rmdir()
    assert prepare(bp4d, str(raw), "--out", str(out), "--no-flow") == 0
    captured = capsys.readouterr()
    gone = (raw / "F002" / "T1").resolve()
    assert f"dropped video F002_T1: its source {gone} no longer exists" in captured.err
    assert "0 written, 0 failed, 1 already done, 1 dropped" in captured.out
    dataset = PreparedDataset(out)
    assert dataset.videos == ["F001_T1"] and dataset.meta["summary"]["videos"] == 1
    assert dataset.array("F001_T1", "crop_to_source").shape == (2, 2, 3)  # converters keep it
    assert not (out / "videos" / "F002_T1").exists()


# --- 4. corrupt inputs: decoders and label readers --------------------------------------------


def test_truncated_video_keeps_its_length_with_missing_frames_marked(tmp_path):
    path = tmp_path / "cut.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.pix_fmt, stream.height, stream.width = "yuv420p", 32, 32
        for _ in range(48):
            image = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    frames = list(iter_frames(path))
    decoded = sum(frame.image is not None for frame in frames)
    assert len(frames) == 48 and 0 < decoded < 48
    assert [frame.number for frame in frames] == list(range(48))
    problems = [frame.problem for frame in frames if frame.problem]
    assert problems == [
        f"{path}: truncated: decoded {decoded} of the 48 frames it lists; "
        f"frames {decoded}-47 are marked success = 0"
    ]


def test_truncated_image_is_a_frame_without_success(tmp_path):
    folder = tmp_path / "frames"
    write_frames(folder, [0, 1, 2])
    cut = folder / "0001.jpg"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    sequence = FacePreprocessor(size=32).sequence(iter_frames(folder))
    assert sequence.success.tolist() == [1, 0, 1]
    assert sequence.problems == [f"{cut}: truncated image (no end marker): success = 0"]


class _BrokenVideo:
    """A stand-in for an opened container whose stream lists no frame count and whose
    decoding fails after ``decoded`` frames."""

    def __init__(self, decoded: int):
        self.decoded = decoded
        self.stream = argparse.Namespace(frames=0, average_rate=25, thread_type=None)
        self.streams = argparse.Namespace(video=[self.stream])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def decode(self, stream):
        for _ in range(self.decoded):
            image = np.zeros((8, 8, 3), np.uint8)
            yield argparse.Namespace(time=None, to_ndarray=lambda format, image=image: image)
        raise av.error.InvalidDataError(1094995529, "Invalid data found")


def test_decoding_error_without_a_listed_count_adds_no_phantom_frame(tmp_path, monkeypatch):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"")
    monkeypatch.setattr(av, "open", lambda name: _BrokenVideo(2))
    frames = list(iter_frames(path))
    assert [frame.number for frame in frames] == [0, 1]
    assert all(frame.image is not None for frame in frames)
    assert [frame.problem for frame in frames] == [
        None,
        f"{path}: decoding failed at frame 2 ([Errno 1094995529] Invalid data found); kept the "
        "2 frames decoded before it",
    ]


def test_jpeg_with_data_after_its_end_marker_is_not_truncated(tmp_path):
    folder = tmp_path / "frames"
    write_frames(folder, [0, 1])
    padded, cut = folder / "0000.jpg", folder / "0001.jpg"
    padded.write_bytes(padded.read_bytes() + b"\0" * 4096)  # e.g. a camera's trailer
    cut.write_bytes(cut.read_bytes()[:-4])
    assert not is_truncated_image(padded) and is_truncated_image(cut)


def test_unreadable_frames_are_not_counted_as_label_problems(tmp_path, capsys):
    raw, out = bp4d_tree(tmp_path / "BP4D", "0,1,0", "1,0,1"), tmp_path / "out"
    cut = raw / "F002" / "T1" / "001.jpg"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    assert prepare(bp4d, str(raw), "--out", str(out), "--no-flow") == 0
    captured = capsys.readouterr()
    assert "0 label-file problems" in captured.out
    assert "unreadable frames: 1 problems (see the warnings)" in captured.out
    assert f"warning: video F002_T1: {cut}: truncated image" in captured.err
    summary = PreparedDataset(out).meta["summary"]
    assert (summary["problems"], summary["frame_problems"]) == (0, 1)


def gft_tree(root, split: str):
    """Subjects 001A and 002B as 2-frame folders with labels, and split.csv holding ``split``."""
    for subject in ("001A", "002B"):
        write_frames(root / "Images" / subject, [0, 1])
    (root / "AUCoding").mkdir()
    for subject in ("001A", "002B"):
        (root / "AUCoding" / f"{subject}.csv").write_text("frame,AU01\n0,1\n1,0\n")
    (root / "split.csv").write_text(split)
    return root


def test_gft_split_change_redoes_only_the_subjects_whose_fold_changed(tmp_path, capsys):
    raw, out = gft_tree(tmp_path / "GFT", "001A,train\n002B,test\n"), tmp_path / "out"
    assert prepare(gft, str(raw), "--out", str(out), "--no-flow") == 0
    (raw / "split.csv").write_text("001A,test\n002B,test\n")
    capsys.readouterr()
    assert prepare(gft, str(raw), "--out", str(out), "--no-flow") == 0
    captured = capsys.readouterr()
    assert "videos: 1 written, 0 failed, 1 already done" in captured.out
    assert "redoing video 001A: it was made with other settings, subject or fold" in captured.err
    assert set(PreparedDataset(out).video_rows("001A")["fold"]) == {1}


def test_occurrence_labels_reject_non_integers_and_conflicts_and_read_a_bom(tmp_path):
    path = tmp_path / "F001_T1.csv"
    text = "0,1,2\n10,1,0\n11,0.6,1\n12,1.5,0\n11.9,1,1\n13,1,0\n13,1,0\n14,1,0\n14,0,0\n15,1.0,1\n"
    path.write_text("\ufeff" + text, encoding="utf-8")
    labels = read_occurrence_csv(path, (1, 2), "0")
    assert labels.numbers.tolist() == [10, 13, 15]
    assert labels.occurrence.tolist() == [[1, 0], [1, 0], [1, 1]]
    assert labels.problems == [
        f"{path}: line 3: malformed, skipped (AU1 code '0.6' is not an integer)",
        f"{path}: line 4: malformed, skipped (AU1 code '1.5' is not an integer)",
        f"{path}: line 5: malformed, skipped (frame number '11.9' is not an integer)",
        f"{path}: lines 8, 9: frame 14 has conflicting labels: left unlabelled",
    ]


def test_disfa_intensities_reject_non_integers_and_conflicts(tmp_path):
    path = tmp_path / "SN001_au1.txt"
    path.write_text("\ufeff1,0\n2,1.5\n3.5,2\n4,3\n4,4\n5,2\n5,2\n", encoding="utf-8")
    values, problems = disfa.read_intensity_file(path)
    assert values == {1: 0.0, 5: 2.0}
    assert problems == [
        f"{path}: line 2: malformed, skipped (intensity '1.5' is not an integer)",
        f"{path}: line 3: malformed, skipped (frame number '3.5' is not an integer)",
        f"{path}: lines 4, 5: frame 4 has conflicting labels: left unlabelled",
    ]


def test_gft_split_rejects_a_subject_in_both_and_reads_a_bom(tmp_path):
    path = tmp_path / "split.csv"
    path.write_text("\ufeffsubject,split\n001A,train\n002B,test\n001A,train\n", encoding="utf-8")
    assert gft.read_split(path) == {"001A": 2, "002B": 1}
    path.write_text("subject,split\n001A,train\n002B,test\n001A,test\n")
    with pytest.raises(DatasetError, match=r"split.csv: lines 2 and 4: subject 001A is listed"):
        gft.read_split(path)


# --- 5. settings first, honest exit codes, clear refusals -------------------------------------


@pytest.mark.parametrize(
    "option, message",
    [
        (["--flow-grid", "0"], "--flow-grid must be in 1..--size"),
        (["--fps", "0"], "--fps must be > 0"),
        (["--margin", "1.5"], "crop margin must be in [0, 1)"),
        (["--min-detection-confidence", "2"], "--min-detection-confidence: 0-1"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, capsys, option, message):
    src, out = face_corpus(tmp_path / "raw", videos=("a",)), tmp_path / "out"
    error = cli_error(capsys, "prepare", "videos", str(src), "--out", str(out), *option)
    assert message in error
    assert not out.exists()


def test_labelled_trees_without_any_label_file_are_refused(tmp_path):
    raw = bp4d_tree(tmp_path / "BP4D")
    for path in (raw / "AUCoding" / "AU_OCC").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match=r"AU_OCC: no label file .* not a labelled BP4D tree"):
        prepare(bp4d, str(raw), "--out", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_raw_videos_given_as_a_dataset_say_how_to_prepare_them(tmp_path):
    src = face_corpus(tmp_path / "raw", videos=("a",))
    with pytest.raises(DatasetError, match=r"holds raw videos .* run `aurep prepare videos"):
        PreparedDataset(src)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not a prepared dataset"):
        PreparedDataset(tmp_path / "empty")


def test_outputs_written_before_the_marker_can_still_be_overwritten(tmp_path):
    out = tmp_path / "synth"
    generate_corpus(out, identities=1, clips_per_identity=1, frames=2, size=32, flow=False,
                    workers=1, progress=False)  # fmt: skip
    (out / MARKER_FILE).unlink()  # as written before the marker existed
    manifest = pd.read_parquet(out / "manifest.parquet")
    generate_corpus(out, identities=1, clips_per_identity=2, frames=2, size=32, flow=False,
                    workers=1, progress=False, overwrite=True)  # fmt: skip
    assert len(PreparedDataset(out)) == 2 * len(manifest)
    assert (
        json.loads((out / MARKER_FILE).read_text())["job"]["generator"]["clips_per_identity"] == 2
    )


# --- docs/reliability.md ----------------------------------------------------------------------


def test_reliability_table_names_only_tests_that_exist():
    """Every test named in docs/reliability.md (``file.py::name``, or a bare ``name`` for this
    file) is a test function of that file."""
    tests = Path(__file__).parent
    table = (tests.parent / "docs" / "reliability.md").read_text()
    named = re.findall(r"`(?:(test_\w+\.py)::)?(test_\w+)`", table)
    assert len(named) > 30, "the table names no tests"
    defined = {}
    for file, name in named:
        file = file or Path(__file__).name
        if file not in defined:
            tree = ast.parse((tests / file).read_text())
            defined[file] = {
                node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
            }
        assert name in defined[file], (
            f"docs/reliability.md names {file}::{name}, which is not there"
        )


def test_rerun_from_another_folder_skips_done_videos_and_stray_folders(
    tmp_path, monkeypatch, capsys
):
    src, out = face_corpus(tmp_path / "raw", ("a", "b")), tmp_path / "out"
    assert prepare(prepare_videos, str(src), "--out", str(out), "--no-flow") == 0
    stray = out / "videos" / ".ipynb_checkpoints"
    stray.mkdir()
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)  # the same SRC, given relative: nothing to redo
    assert prepare(prepare_videos, "raw", "--out", "out", "--no-flow") == 0
    captured = capsys.readouterr()
    assert "videos: 0 written, 0 failed, 2 already done" in captured.out
    assert f"warning: {stray.resolve()}: not a video folder" in captured.err
    assert stray.is_dir() and PreparedDataset(out).videos == ["a__clip", "b__clip"]


def test_rerun_with_another_src_is_refused_and_drops_nothing(tmp_path):
    src, out = face_corpus(tmp_path / "raw", ("a", "b")), tmp_path / "out"
    assert prepare(prepare_videos, str(src), "--out", str(out), "--no-flow") == 0
    part = face_corpus(tmp_path / "part", ("a",))
    with pytest.raises(DatasetError) as error:
        prepare(prepare_videos, str(part), "--out", str(out), "--no-flow")
    assert str(error.value) == (
        f"{out}: was prepared from {src.resolve()}, not {part.resolve()}; give the same SRC to "
        "resume it, or another --out for this source"
    )
    assert PreparedDataset(out).videos == ["a__clip", "b__clip"]
    assert (out / "videos" / "b__clip" / "rows.parquet").is_file()


@pytest.mark.timeout(120)
def test_rerun_redoes_videos_whose_flow_has_other_settings(tmp_path, capsys):
    src, out = face_corpus(tmp_path / "raw", ("a",)), tmp_path / "out"
    assert prepare(prepare_videos, str(src), "--out", str(out)) == 0
    flow_module.prepare_flow(out, delta=2, workers=1, overwrite=True, progress=False)
    assert PreparedDataset(out).meta["flow"]["delta"] == 2
    capsys.readouterr()
    assert prepare(prepare_videos, str(src), "--out", str(out)) == 0
    assert "redoing video a__clip: its flow targets are not" in capsys.readouterr().err
    dataset = PreparedDataset(out)
    assert dataset.meta["flow"]["delta"] == 1
    expected = video_flow_targets(dataset.frames("a__clip"), delta=1)
    np.testing.assert_array_equal(dataset.array("a__clip", "flow"), expected)


@pytest.mark.timeout(120)
def test_no_flow_rerun_keeps_added_flow_and_refuses_disagreeing_flow(tmp_path):
    src, out = face_corpus(tmp_path / "raw", ("a", "b")), tmp_path / "out"
    assert prepare(prepare_videos, str(src), "--out", str(out), "--no-flow") == 0
    flow_module.prepare_flow(out, delta=2, workers=1, progress=False)
    assert prepare(prepare_videos, str(src), "--out", str(out), "--no-flow") == 0
    assert PreparedDataset(out).meta["flow"] == {"delta": 2, "grid": 28, "method": "dis"}
    (out / "videos" / "b__clip" / "flow.json").unlink()  # b's flow.npy is of unknown settings
    with pytest.raises(DatasetError, match="meta.json not written: the videos' flow targets"):
        prepare(prepare_videos, str(src), "--out", str(out), "--no-flow")
    assert not (out / "meta.json").exists()
