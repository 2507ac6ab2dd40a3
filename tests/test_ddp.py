"""DDP on CPU (gloo) through the real CLI: negatives gathered across ranks, weights in sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pytorch_lightning import Callback

REPO = Path(__file__).resolve().parents[1]


class RankStateDump(Callback):
    """Writes ``out/rank<r>.pt`` at the end of training: the keys this rank handed to the
    contrastive queue at each step (before the cross-rank gather), the queue, its pointer, and
    the parameters at the start and at the end."""

    def __init__(self, out: str):
        self.out = out
        self.keys: list[torch.Tensor] = []
        self.start: dict[str, torch.Tensor] = {}

    def setup(self, trainer, pl_module, stage: str) -> None:
        queue = pl_module.model.heads["temporal"].queue
        enqueue = queue.enqueue

        def recording_enqueue(keys: torch.Tensor) -> None:
            self.keys.append(keys.detach().clone())
            enqueue(keys)

        queue.enqueue = recording_enqueue

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = {n: p.detach().clone() for n, p in pl_module.named_parameters()}

    def on_train_end(self, trainer, pl_module) -> None:
        queue = pl_module.model.heads["temporal"].queue
        state = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "keys": torch.stack(self.keys),  # (steps, B*T, d)
            "queue": queue.queue.clone(),
            "pointer": int(queue.pointer),
            "start": self.start,
            "end": {n: p.detach().clone() for n, p in pl_module.named_parameters()},
        }
        torch.save(state, Path(self.out) / f"rank{trainer.global_rank}.pt")


@pytest.mark.slow
def test_ddp_gathers_negatives_and_syncs_weights(tiny_corpus, tmp_path):
    probe = {"class_path": "test_ddp.RankStateDump", "init_args": {"out": str(tmp_path)}}
    command = [
        sys.executable, "-m", "aurep", "fit",
        "--config", str(REPO / "configs" / "pretrain" / "base.yaml"),
        "--config", str(REPO / "configs" / "pretrain" / "heads" / "temporal.yaml"),
        f"--data.init_args.root={tiny_corpus}",
        "--model.init_args.backbone=test_resnet",
        "--data.init_args.image_size=32",
        "--data.init_args.batch_size=4",
        "--data.init_args.num_workers=0",
        "--data.init_args.clips_per_epoch=12",  # 3 steps per rank
        "--data.init_args.val_clips=0",
        "--trainer.max_epochs=1",
        "--trainer.accelerator=cpu",
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.use_distributed_sampler=false",  # IdentityBatchSampler draws per rank
        "--trainer.enable_progress_bar=false",
        f"--trainer.callbacks+={json.dumps(probe)}",
    ]  # fmt: skip
    paths = [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and {r["world_size"] for r in ranks} == {2}
    keys = [r["keys"] for r in ranks]  # (3 steps, 16 keys, d) each
    steps, per_step, dim = keys[0].shape
    assert steps == 3 and not torch.allclose(keys[0], keys[1])  # each rank saw its own clips
    # every step enqueued rank 0's keys then rank 1's, on both ranks: the queues are identical
    expected = torch.stack(keys, dim=1).reshape(steps * 2 * per_step, dim)
    for rank in ranks:
        assert rank["pointer"] == steps * 2 * per_step
        assert torch.equal(rank["queue"][: len(expected)], expected)
    # DDP averaged the gradients: identical weights on both ranks, and they did train
    start, end = ranks[0]["start"], ranks[0]["end"]
    assert all(torch.equal(end[n], ranks[1]["end"][n]) for n in end)
    assert all(torch.equal(start[n], ranks[1]["start"][n]) for n in start)
    assert any(not torch.equal(start[n], end[n]) for n in end if n.startswith("model.backbone."))
