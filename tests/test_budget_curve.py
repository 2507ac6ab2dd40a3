"""benchmarks/budget_curve.py: one pretraining run probed at growing step budgets."""

import json
import sys
from pathlib import Path

import pytest

from aurep.models.checkpoints import read_checkpoint

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import budget_curve  # noqa: E402
import quality  # noqa: E402

FRAGMENT = REPO / "configs/pretrain/heads/landmark_shape.yaml"
SMALL = ["--data.init_args.stride=1", "--data.init_args.num_workers=0"]  # 8-frame videos


def curve(corpus: Path, work: Path, *steps: int, probe: Path | None = None) -> str:
    argv = ["tiny", f"--fragment={FRAGMENT}", f"--corpus={corpus}", f"--work={work}"]
    argv += [] if probe is None else [f"--probe-corpus={probe}"]
    return budget_curve.main([*argv, "--centre", "--steps", *map(str, steps), "--", *SMALL])


@pytest.mark.slow
def test_each_budget_resumes_the_last_and_is_kept_and_probed(
    three_clip_corpus, tmp_path, monkeypatch
):
    table = curve(three_clip_corpus, tmp_path, 4, 2)
    run = tmp_path / "tiny"
    for steps in (2, 4):
        checkpoint = read_checkpoint(budget_curve.kept_checkpoint(run, steps))
        assert checkpoint["global_step"] == steps
        assert any(k.startswith("model.heads.landmark_shape.") for k in checkpoint["state_dict"])
    lines = [json.loads(line) for line in (tmp_path / "probes.jsonl").read_text().splitlines()]
    rows = {(line["row"], line["fraction"], line["steps"]) for line in lines}
    for steps in (2, 4):
        for fraction in quality.FRACTIONS:
            assert (f"tiny@{steps}", fraction, steps) in rows
            assert (f"tiny@{steps} - identity mean", fraction, steps) in rows
    # 8 clips x 4 frames per step
    assert [line.split(" | ")[:2] for line in table.splitlines()[2:]] == [
        ["| 2", "64"],
        ["| 4", "128"],
    ]
    # the second budget trained on from the first: one run, one fit resumed, not two fresh fits
    assert len(list(run.glob("version_*"))) == 2

    def no_fit(argv):
        raise AssertionError(f"kept budgets must not be trained again: {argv}")

    monkeypatch.setattr(quality, "aurep_main", no_fit)
    assert curve(three_clip_corpus, tmp_path, 2, 4) == table  # kept checkpoints, same probe
    with pytest.raises(SystemExit, match="already trained 4 steps, past the budget 3"):
        curve(three_clip_corpus, tmp_path, 3)


@pytest.mark.slow
def test_the_probe_corpus_can_differ_from_the_pretraining_corpus(
    tiny_corpus, three_clip_corpus, tmp_path
):
    curve(tiny_corpus, tmp_path, 2, probe=three_clip_corpus)
    kept = read_checkpoint(budget_curve.kept_checkpoint(tmp_path / "tiny", 2))
    assert Path(kept["datamodule_hyper_parameters"]["root"]) == tiny_corpus.resolve()
    lines = [json.loads(line) for line in (tmp_path / "probes.jsonl").read_text().splitlines()]
    assert lines and {line["corpus"] for line in lines} == {str(three_clip_corpus)}


def test_a_missing_fragment_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        budget_curve.main(["x", "--fragment", str(tmp_path / "nope.yaml"), "--steps", "10"])
    assert "nope.yaml: no such config file" in capsys.readouterr().err
