"""AUDetector: frozen vs fine-tuned backbone, PretrainTask checkpoints, AU-set and backbone checks,
and the checkpoint -> backbone loader of :mod:`aurep.models.checkpoints`."""

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from aurep.data.labelled import FrameBatch
from aurep.metrics import AUDetectionMetrics
from aurep.models.checkpoints import backbone_state, load_backbone, read_checkpoint
from aurep.tasks.detector import AUDetector
from aurep.tasks.pretrain import PretrainTask

AUS = [1, 2, 4]


def _batches(count: int = 3, size: int = 8, seed: int = 0) -> list[FrameBatch]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        labels = (torch.rand(size, len(AUS), generator=generator) < 0.4).float()
        out.append(
            FrameBatch(
                images=torch.randn(size, 3, 32, 32, generator=generator),
                labels=labels,
                label_mask=torch.rand(size, len(AUS), generator=generator) > 0.2,
                subject=["S1"] * size,
                video=["S1/v0"] * size,
                frame=torch.arange(size),
            )
        )
    return out


def _loader(batches: list[FrameBatch]) -> DataLoader:
    return DataLoader(batches, batch_size=None, shuffle=False)


def _trainer(tmp_path, **kwargs) -> pl.Trainer:
    defaults = dict(
        default_root_dir=tmp_path,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_steps=2,
        num_sanity_val_steps=0,
    )
    return pl.Trainer(**{**defaults, **kwargs})


def _backbone_state(model: AUDetector) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.backbone.state_dict().items()}


def _changed(before: dict, after: dict) -> list[str]:
    return [k for k in before if not torch.equal(before[k], after[k])]


def _pretrain_checkpoint(tmp_path, backbone: str = "test_resnet") -> str:
    task = PretrainTask(backbone=backbone, au_codes=AUS, au_weight=1.0, online_probe=False)
    for p in task.parameters():  # recognisable weights
        torch.nn.init.normal_(p)
    trainer = _trainer(tmp_path)
    trainer.strategy.connect(task)
    path = str(tmp_path / f"pretrain-{backbone}.ckpt")
    trainer.save_checkpoint(path)
    return path, task


def test_linear_mode_keeps_backbone_and_finetune_changes_it(tmp_path):
    linear = AUDetector(backbone="test_resnet", mode="linear", au_codes=AUS)
    before, head_before = (
        _backbone_state(linear),
        linear.head.state_dict()["layers.2.weight"].clone(),
    )
    _trainer(tmp_path).fit(linear, _loader(_batches()))
    assert _changed(before, _backbone_state(linear)) == []  # weights and BatchNorm statistics
    assert not torch.equal(head_before, linear.head.state_dict()["layers.2.weight"])
    linear.train()
    assert linear.head.training and not linear.backbone.training

    finetune = AUDetector(backbone="test_resnet", mode="finetune", au_codes=AUS)
    before = _backbone_state(finetune)
    _trainer(tmp_path).fit(finetune, _loader(_batches()))
    assert any(".weight" in k for k in _changed(before, _backbone_state(finetune)))


def test_backbone_learning_rate_scale():
    model = AUDetector(
        backbone="test_resnet",
        mode="finetune",
        backbone_lr_scale=0.1,
        au_codes=AUS,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.5),
    )
    optimizer = model.configure_optimizers()
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.5, 0.05])
    linear = AUDetector(backbone="test_resnet", au_codes=AUS).configure_optimizers()
    assert sum(p.numel() for g in linear.param_groups for p in g["params"]) == sum(
        p.numel() for p in AUDetector(backbone="test_resnet", au_codes=AUS).head.parameters()
    )


def test_fit_starts_from_a_pretrain_checkpoint(tmp_path):
    path, _ = _pretrain_checkpoint(tmp_path)
    model = AUDetector(backbone="test_resnet", pretrained_ckpt=path, au_codes=AUS)
    assert _changed(_backbone_state(model), backbone_state(read_checkpoint(path), path))
    _trainer(tmp_path).fit(model, _loader(_batches()))
    expected = backbone_state(read_checkpoint(path), path)
    assert _changed(expected, model.backbone.state_dict()) == []


def test_pretrain_checkpoint_of_another_backbone_is_refused(tmp_path):
    path, _ = _pretrain_checkpoint(tmp_path, backbone="test_resnet")
    model = AUDetector(backbone="resnet10t", au_codes=AUS)
    with pytest.raises(ValueError, match="trained with backbone='test_resnet' but the model has"):
        model.load_pretrained_backbone(path)
    other = AUDetector(backbone="resnet10t", au_codes=AUS).state_dict()
    bare = tmp_path / "bare.ckpt"  # no hyper-parameters: only the weight shapes can tell
    torch.save({"state_dict": {k: v for k, v in other.items() if k.startswith("backbone.")}}, bare)
    with pytest.raises(
        ValueError, match="bare.ckpt: its backbone weights do not fit 'test_resnet'"
    ):
        AUDetector(backbone="test_resnet", au_codes=AUS).load_pretrained_backbone(bare)
    torch.save({"state_dict": {"head.weight": torch.zeros(1)}}, bare)
    with pytest.raises(ValueError, match=r"bare.ckpt: no backbone weights .*'model.backbone.\*'"):
        model.load_pretrained_backbone(bare)
    with pytest.raises(ValueError, match="missing.ckpt: no such checkpoint file"):
        model.load_pretrained_backbone(tmp_path / "missing.ckpt")
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.ckpt: not a torch checkpoint"):
        model.load_pretrained_backbone(tmp_path / "notes.ckpt")
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(ValueError, match="list.ckpt: not an aurep checkpoint"):
        model.load_pretrained_backbone(tmp_path / "list.ckpt")


def test_loader_prefers_model_backbone_weights_and_builds_from_hparams(tmp_path):
    """New PretrainTask checkpoints keep the backbone under ``model.backbone.``, older ones and
    AUDetector checkpoints under ``backbone.``: both load, the new prefix wins."""
    detector = AUDetector(backbone="test_resnet", au_codes=AUS)
    old = {k: v for k, v in detector.state_dict().items() if k.startswith("backbone.")}
    new = {f"model.{k}": torch.randn_like(v.float()).to(v.dtype) for k, v in old.items()}
    hparams = {"backbone": "test_resnet", "img_size": None, "backbone_levels": [1, -1]}
    path = tmp_path / "both.ckpt"
    torch.save({"state_dict": {**old, **new}, "hyper_parameters": hparams}, path)
    backbone, data = load_backbone(path)
    assert data == {} and not backbone.training and backbone.levels == [backbone.levels[-1]]
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, new[f"model.backbone.{key}"]), key
    torch.save({"state_dict": old, "hyper_parameters": hparams}, path)
    backbone, _ = load_backbone(path)
    assert all(torch.equal(v, old[f"backbone.{k}"]) for k, v in backbone.state_dict().items())
    torch.save({"state_dict": old}, path)
    with pytest.raises(ValueError, match="both.ckpt: no 'backbone' hyper-parameter"):
        load_backbone(path)


def test_detector_from_a_read_checkpoint(tmp_path):
    model = AUDetector(backbone="test_resnet", mode="finetune", au_codes=AUS).eval()
    model.thresholds.fill_(0.3)
    path = tmp_path / "detector.ckpt"
    saved = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    saved["hyper_parameters"]["_instantiator"] = "lightning.pytorch.cli.instantiate_module"
    torch.save(saved, path)
    restored = AUDetector.from_checkpoint(read_checkpoint(path), path)
    assert not restored.training and restored.au_codes == AUS
    torch.testing.assert_close(restored.state_dict(), model.state_dict())
    pretrain, _ = _pretrain_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="pretrain-test_resnet.ckpt: not an AUDetector checkpoint"):
        AUDetector.from_checkpoint(read_checkpoint(pretrain), pretrain)


def test_au_set_is_saved_and_checked(tmp_path):
    model = AUDetector(backbone="test_resnet", au_codes=AUS)
    trainer = _trainer(tmp_path)
    trainer.fit(model, _loader(_batches()))
    path = tmp_path / "detector.ckpt"
    trainer.save_checkpoint(path)
    restored = AUDetector.load_from_checkpoint(path)
    assert restored.au_codes == AUS
    torch.testing.assert_close(restored.head.state_dict(), model.head.state_dict())
    (probs,) = _trainer(tmp_path).predict(restored, _loader(_batches(count=1)))
    assert probs.shape == (8, len(AUS)) and ((probs >= 0) & (probs <= 1)).all()

    other = AUDetector(backbone="test_resnet", au_codes=[1, 2, 12])
    with pytest.raises(ValueError, match=r"checkpoint detects AUs \[1, 2, 4\]"):
        _trainer(tmp_path).test(other, _loader(_batches()), ckpt_path=path)

    class OtherAUs(pl.LightningDataModule):
        au_codes = [1, 2, 12]

        def train_dataloader(self):
            return _loader(_batches())

    with pytest.raises(
        ValueError, match=r"model detects AUs \[1, 2, 4\] but .* has AUs \[1, 2, 12\]"
    ):
        _trainer(tmp_path).fit(restored, datamodule=OtherAUs())


def test_missing_au_codes_and_bad_mode_are_clear_errors():
    with pytest.raises(ValueError, match="needs au_codes"):
        AUDetector(backbone="test_resnet")
    with pytest.raises(ValueError, match="mode must be one of"):
        AUDetector(backbone="test_resnet", mode="probe", au_codes=AUS)


def test_tuned_thresholds_come_from_validation_and_reach_the_test(tmp_path):
    model = AUDetector(
        backbone="test_resnet", tune_thresholds=True, threshold_bins=11, au_codes=AUS
    )
    val = _batches(seed=1)
    _trainer(tmp_path, max_steps=-1, max_epochs=1).fit(model, _loader(_batches()), _loader(val))
    reference = AUDetectionMetrics(AUS, auc=False, threshold_bins=11)
    model.eval()
    with torch.no_grad():
        for batch in val:
            reference.update(model(batch.images).sigmoid(), batch.labels, batch.label_mask)
    torch.testing.assert_close(model.thresholds, reference.best_thresholds())
    assert "thresholds" in model.state_dict()

    test = _batches(seed=2)
    _trainer(tmp_path).test(model, _loader(test))
    expected = AUDetectionMetrics(AUS)
    with torch.no_grad():
        for batch in test:
            probs = model(batch.images).sigmoid()
            expected.update(probs, batch.labels, batch.label_mask, model.thresholds)
    assert model.test_scores.f1 == pytest.approx(expected.compute().f1, nan_ok=True)
    assert model.test_scores.thresholds == pytest.approx(model.thresholds.numpy())
