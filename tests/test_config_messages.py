"""Config and data mistakes give one line naming the key or setting and the fix, in `aurep fit`
and `aurep cv` alike (no usage text, no jsonargparse "Union subtypes" tree)."""

from pathlib import Path

import pytest
from conftest import TINY_FIT

from aurep.cli import main
from aurep.config_errors import config_error_line
from aurep.data.datamodules import AUDataModule, ClipDataModule
from aurep.data.prepared import DatasetError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BASE = CONFIGS / "pretrain" / "base.yaml"
FLOW = CONFIGS / "pretrain" / "heads" / "flow.yaml"


def one_error_line(capsys, command: str = "fit") -> str:
    """The only line of stderr that is aurep's error (and no usage text); returns it."""
    err = capsys.readouterr().err
    assert "usage:" not in err and "Union subtypes" not in err, err
    errors = [line for line in err.splitlines() if line.startswith(f"aurep {command}: error:")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.fixture
def fit(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def run(*overrides: str, config: Path = FLOW) -> int:
        args = [f"--config={BASE}", f"--config={config}", f"--data.init_args.root={tiny_corpus}"]
        return main(["fit", *args, *TINY_FIT, "--trainer.max_epochs=1", *overrides])

    return run


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "--trainer.max_epochz=1",
            "unknown key trainer.max_epochz (did you mean trainer.max_epochs",
        ),
        (
            "--data.init_args.batch_sise=4",
            "unknown key data.init_args.batch_sise: ClipDataModule has no argument 'batch_sise' "
            "(did you mean batch_size?)",
        ),
        (
            "--model.init_args.heads.flow.init_args.widht=8",
            "unknown key model.init_args.heads.flow.init_args.widht: OpticalFlowHead has no "
            "argument 'widht' (did you mean width",
        ),
        ("--modle.init_args.au_weight=1", "(did you mean model.init_args.au_weight?)"),
    ],
)
def test_typo_in_an_override_is_one_line_with_did_you_mean(fit, capsys, override, message):
    assert fit(override) == 1
    assert message in one_error_line(capsys)


def test_typo_in_a_yaml_file_is_one_line_with_did_you_mean(fit, capsys, tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  init_args:\n    backbone_levls: [-1]\n")
    assert fit(f"--config={typo}") == 1
    assert one_error_line(capsys).endswith(
        "unknown key model.init_args.backbone_levls: PretrainTask has no argument "
        "'backbone_levls' (did you mean backbone_levels, backbone?)"
    )


def test_union_noise_is_dropped_from_other_errors():
    noisy = (
        'Parser key "data":\n  Does not validate against any of the Union subtypes\n'
        "  Subtypes: [<class 'LightningDataModule'>, <class 'NoneType'>]\n  Errors:\n"
        "    - Expected an int, got 'x'\n    - Expected a <class 'NoneType'>\n"
        "  Given value type: <class 'str'>\n  Given value: x"
    )
    assert (
        config_error_line(noisy) == "Parser key \"data\": Expected an int, got 'x': Given value: x"
    )


def test_vit_input_size_differing_from_the_data_is_refused_before_training(fit, capsys, tmp_path):
    code = fit(
        "--model.init_args.backbone=test_vit3",  # timm ViT with a fixed input size
        "--model.init_args.img_size=48",
        "--model.init_args.backbone_levels=[-1]",
    )
    assert code == 1
    assert one_error_line(capsys).endswith(
        "backbone test_vit3 is built for 48x48 px images but data.init_args.image_size is 32 px: "
        "set model.init_args.img_size=32 (or data.init_args.image_size=48)"
    )
    assert not (tmp_path / "runs").exists()


def test_cv_unwraps_datamodule_errors(tmp_path, capsys):
    config = CONFIGS / "eval" / "synth_linear.yaml"
    cv = ["cv", "--config", str(config), "--out", str(tmp_path / "cv"), "--folds", "1", "--"]
    with pytest.raises(SystemExit) as exit_info:
        main([*cv, f"--data.init_args.root={tmp_path / 'nowhere'}"])
    assert exit_info.value.code == 2
    line = one_error_line(capsys, "cv")
    assert line == f"aurep cv: error: {tmp_path / 'nowhere'}: no such dataset directory"


def test_cv_typo_gets_did_you_mean(tmp_path, capsys, tiny_corpus):
    config = CONFIGS / "eval" / "synth_linear.yaml"
    cv = ["cv", "--config", str(config), "--out", str(tmp_path / "cv"), "--folds", "1", "--"]
    with pytest.raises(SystemExit):
        main([*cv, f"--data.init_args.root={tiny_corpus}", "--data.init_args.batchsize=8"])
    assert one_error_line(capsys, "cv").endswith(
        "AUDataModule has no argument 'batchsize' (did you mean batch_size?)"
    )


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"image_size": 0}, "ClipDataModule: image_size must be >= 1, got 0"),
        ({"batch_size": 1}, "ClipDataModule: batch_size must be >= 2, got 1"),
        ({"clip_length": 0}, "ClipDataModule: clip_length must be >= 1, got 0"),
        ({"stride": 0}, "ClipDataModule: stride must be >= 1, got 0"),
        ({"clips_per_epoch": 3}, "ClipDataModule: clips_per_epoch must be >= 4, got 3"),
        ({"num_workers": -1}, "ClipDataModule: num_workers must be >= 0, got -1"),
        ({"val_clips": -4}, "ClipDataModule: val_clips must be >= 0, got -4"),
    ],
)
def test_clip_settings_out_of_range_are_refused(tiny_corpus, setting, message):
    with pytest.raises(ValueError) as error:
        ClipDataModule(str(tiny_corpus), **{"batch_size": 4, **setting})
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"image_size": 0}, "AUDataModule: image_size must be >= 1, got 0"),
        ({"fold": 0}, "AUDataModule: fold must be >= 1, got 0"),
        ({"batch_size": 0}, "AUDataModule: batch_size must be >= 1, got 0"),
    ],
)
def test_frame_settings_out_of_range_are_refused(tiny_corpus, setting, message):
    with pytest.raises(ValueError) as error:
        AUDataModule(str(tiny_corpus), **setting)
    assert str(error.value) == message


def test_image_size_none_is_the_datasets(tiny_corpus):
    assert ClipDataModule(str(tiny_corpus), batch_size=4, num_workers=0).image_size == 64
    assert AUDataModule(str(tiny_corpus), image_size=32).image_size == 32


def test_three_identities_fail_before_the_model_is_built(prepared, capsys, monkeypatch, tmp_path):
    root = prepared(subjects={"A": 1, "B": 2, "C": 3})
    with pytest.raises(DatasetError, match="1 identities left for training"):
        ClipDataModule(str(root), batch_size=4)
    assert ClipDataModule(str(root), batch_size=4, val_fraction=0).train_subjects == ["A", "B", "C"]

    def no_model(*args, **kwargs):
        raise AssertionError("the model was built before the data was checked")

    monkeypatch.setattr("aurep.tasks.pretrain.Backbone", no_model)
    monkeypatch.chdir(tmp_path)
    args = [f"--config={BASE}", f"--config={FLOW}", f"--data.init_args.root={root}", *TINY_FIT]
    assert main(["fit", *args]) == 1
    assert one_error_line(capsys).endswith(
        f"{root}: 1 identities left for training (2 held out for validation): clip batches need "
        "at least 2 identities (cross-identity partners); use more identities, or set "
        "data.init_args.val_fraction=0"
    )


def test_wrong_value_type_is_one_line_with_the_value(fit, capsys):
    assert fit("--trainer.max_epochs=abc") == 1
    assert one_error_line(capsys).endswith(
        "Parser key \"trainer.max_epochs\": Expected a <class 'int'>: Given value: abc"
    )


def test_no_config_says_which_to_give(capsys):
    assert main(["fit"]) == 1
    line = one_error_line(capsys)
    assert "required: fit.data, fit.model" in line
    assert line.endswith(
        "give a config, e.g. --config configs/pretrain/base.yaml --config "
        "configs/pretrain/clp.yaml (or configs/eval/*.yaml for AU detection)"
    )


def test_a_later_config_that_drops_heads_is_warned_about(fit, capsys, tmp_path):
    landmark = CONFIGS / "pretrain" / "landmark_invariant.yaml"
    kept = tmp_path / "kept.yaml"  # names the same heads again: nothing dropped
    kept.write_text(landmark.read_text())
    assert fit(f"--config={kept}", "--trainer.max_epochz=1", config=landmark) == 1
    assert "warning" not in capsys.readouterr().err
    assert fit(f"--config={FLOW}", "--trainer.max_epochz=1", config=landmark) == 1
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [
        f"aurep: warning: {FLOW} replaces the heads of {landmark}, dropping landmark_shape, "
        "invariance (a later --config replaces model.init_args.heads as a whole: list every "
        "head in the last file that names heads)"
    ]
