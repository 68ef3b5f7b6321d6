"""Two-process DDP on CPU (gloo): replicas stay identical; without BatchNorm they match one process
on the combined batch, with BatchNorm (per-process statistics: SyncBatchNorm is CUDA only) one
process that runs each rank's half batch and averages the gradients."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from helpers.engine_toys import ToyDataset, ToyDetector, collate

from sckd.engine import distributed as D
from sckd.engine.config import TrainConfig
from sckd.engine.seeding import seed_everything
from sckd.engine.trainer import Trainer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cfg(batch_size: int) -> TrainConfig:
    return TrainConfig(epochs=2, batch_size=batch_size, workers=0, lr=0.01, seed=5, val_every=0,
                       ckpt_unit="epoch", ckpt_every=1, log_every=1, progress=False, max_ckpts=5)


def _train(rank: int, world: int, port: int, out: str, batch_size: int, bn: bool, dropout: float) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    env = D.init_distributed("cpu")
    try:
        seed_everything(5 + rank)  # different init per rank: DDP must broadcast rank 0's weights
        model = ToyDetector(bn=bn, dropout=dropout)
        tr = Trainer(model, _cfg(batch_size), ToyDataset(n=8), collate, run_dir=out, env=env)
        tr.fit()
        params = {k: v.detach().clone() for k, v in model.named_parameters()}
        torch.save(params, os.path.join(out, f"rank{rank}.pt"))
    finally:
        D.cleanup()


def _spawn(tmp_path, bn, dropout):
    mp.spawn(_train, args=(2, _free_port(), str(tmp_path), 2, bn, dropout), nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_ddp_replicas_stay_identical(tmp_path):
    # BatchNorm + dropout: each rank sees other frames and other dropout masks.
    p0, p1 = _spawn(tmp_path, bn=True, dropout=0.2)
    assert p0.keys() == p1.keys()
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k
    assert (tmp_path / "checkpoints" / "final.pt").is_file()  # written once, by rank 0


def test_ddp_equals_one_process_with_the_combined_batch(tmp_path):
    # Without BN and dropout, 2 ranks x 2 frames average to the same gradient as 1 x 4 frames:
    # rank r takes frames r, r+2, ... of the shared epoch order, the single run frames 0..3.
    p0, _ = _spawn(tmp_path / "ddp", bn=False, dropout=0.0)
    seed_everything(5)
    model = ToyDetector(bn=False, dropout=0.0)
    Trainer(model, _cfg(4), ToyDataset(n=8), collate, run_dir=tmp_path / "single", env=D.DistEnv()).fit()
    for k, v in model.named_parameters():
        torch.testing.assert_close(p0[k], v.detach(), rtol=1e-5, atol=1e-6)
    # ... and the test is not vacuous: training moved the weights away from the init.
    seed_everything(5)
    init = ToyDetector(bn=False, dropout=0.0)
    assert not torch.allclose(init.net[0].weight, model.net[0].weight, atol=1e-3)


@pytest.mark.parametrize("pref", ["cpu", "auto"])
def test_single_process_env_without_torchrun(monkeypatch, pref):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    env = D.init_distributed(pref)
    assert (env.rank, env.world_size, env.is_main, env.distributed) == (0, 1, True, False)
    if not torch.cuda.is_available():
        assert env.device.type == "cpu"
    model = ToyDetector()
    wrapped = D.wrap_for_training(model, env)
    assert D.unwrap(wrapped) is model


def _train_real(rank: int, world: int, port: int, cfg_path: str, data: str, out: str,
                overrides: list[str], keep: str) -> None:
    """One rank of a 2-process run of the experiment at ``cfg_path``; saves this rank's final
    ``keep`` (``parameters`` or ``state``) to ``out/rank<r>.pt``."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from pathlib import Path

    from sckd.experiment.config import load_experiment
    from sckd.experiment.train import train_experiment

    exp = load_experiment(cfg_path, overrides)
    exp.dataset.root = data
    env = D.init_distributed("cpu")
    try:
        captured = {}

        def builder(e):
            from sckd.experiment.train import build_model
            captured["model"] = build_model(e)
            return captured["model"]

        train_experiment(exp, run_dir=Path(out), env=env, model_builder=builder)
        m = captured["model"]
        tensors = m.named_parameters() if keep == "parameters" else m.state_dict().items()
        torch.save({k: v.detach().clone() for k, v in tensors}, os.path.join(out, f"rank{rank}.pt"))
    finally:
        D.cleanup()


def test_ddp_real_detector_replicas_identical_with_validation(tmp_path):
    from helpers.vod_tree import make_vod_tree
    from test_engine_e2e import TINY

    from sckd.engine import checkpoint as ck

    tree = make_vod_tree(tmp_path / "data", n_frames=7, splits={"train": [0, 1, 2, 3, 4], "val": [5, 6]})
    (tmp_path / "tiny.yaml").write_text(TINY)
    out = tmp_path / "run"
    mp.spawn(_train_real, args=(2, _free_port(), str(tmp_path / "tiny.yaml"), str(tree.root), str(out),
                                ["train.epochs=2", "train.val_every=1"], "parameters"), nprocs=2, join=True)
    p0, p1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2))
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k
    final = ck.load_checkpoint(out / "checkpoints" / "final.pt")
    # 5 frames over 2 ranks -> 3 per rank (one padded) -> 2 steps of batch 2 per epoch
    assert (final.step, final.iters_per_epoch, final.world_size) == (4, 2, 2)
    assert len(final.rng) == 2  # both ranks' generator states, for an exact resume
    assert "entire_area/mAP_3d" in final.metrics
    for k, v in final.model.items():
        if k in p0:
            assert torch.equal(v, p0[k]), k


@pytest.mark.slow
def test_the_same_command_runs_under_torchrun(tmp_path):
    """``torchrun --nproc_per_node=2 -m sckd train ...`` on CPU (gloo) writes one run."""
    import subprocess
    import sys

    from helpers.vod_tree import make_vod_tree
    from test_engine_e2e import TINY

    from sckd.engine import checkpoint as ck

    tree = make_vod_tree(tmp_path / "data", n_frames=7, splits={"train": [0, 1, 2, 3, 4], "val": [5, 6]})
    (tmp_path / "tiny.yaml").write_text(TINY)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={_free_port()}", "-m", "sckd", "train", str(tmp_path / "tiny.yaml"),
                           "--data", str(tree.root), "--out", str(out), "--epochs", "1"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    final = ck.load_checkpoint(out / "checkpoints" / "final.pt")
    assert final.world_size == 2 and len(final.rng) == 2 and final.step == 2
    assert proc.stdout.count("finished:") == 1  # rank 0 reports, once


# --------------------------------------------------------------------------------------------
# DDP against one process, for a real detector with BatchNorm.

# the end-to-end test's tiny PointPillars (test_engine_e2e.TINY), augmented, no validation
BN_PP = ["train.val_every=0", "train.lr=0.01", "augment.enabled=true", "augment.flip_x=true",
         "augment.scale_range=[0.9, 1.1]", "augment.shuffle_points=true"]


class _PerRankBatches:
    """A global batch of 2 x B frames kept as the two per-rank batches a 2-process run gets."""

    def __init__(self, halves):
        self.halves = halves

    @property
    def batch_size(self) -> int:
        return sum(h.batch_size for h in self.halves)

    def to(self, device):
        return _PerRankBatches([h.to(device) for h in self.halves])


def _per_rank_collate(items):
    """Frames k, k+1, ... of a global batch: rank r of 2 takes frames r, r + 2, ... (the
    sampler deals the epoch order out round robin), so the halves are items[0::2], items[1::2]."""
    from sckd.data.dataset import collate
    return _PerRankBatches([collate(items[0::2]), collate(items[1::2])])


class _TwoRanksInOneProcess(torch.nn.Module):
    """What DDP computes, in one process: each rank's training step on its own half batch (train
    -mode BatchNorm normalising by that half's statistics), the gradient averaged over the ranks
    (the loss is the mean of the two ranks' losses), and BN running statistics as rank 0 keeps
    them (DDP broadcasts rank 0's buffers before every forward, and rank 0 only ever updates them
    with its own half)."""

    def __init__(self, det):
        super().__init__()
        self.det = det

    def training_step(self, batch: _PerRankBatches):
        rank0, rank1 = batch.halves
        bns = [m for m in self.det.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        kept = [dict(m._buffers) for m in bns]
        for m in bns:  # rank 1 updates copies: its BN statistics never reach rank 0's buffers
            m._buffers.update({k: v.clone() for k, v in m._buffers.items() if v is not None})
        l1 = self.det.training_step(rank1)["loss"]
        for m, bufs in zip(bns, kept):  # (swapped back, not copied into: autograd saved them)
            m._buffers.update(bufs)
        l0 = self.det.training_step(rank0)["loss"]
        return {"loss": (l0 + l1) / 2}


def test_ddp_real_detector_with_batchnorm_equals_one_process_averaging_per_rank_gradients(tmp_path):
    """Two gloo processes train a PointPillars detector (BatchNorm in the pillar net, backbone and
    deblocks; flip / scale / point-shuffle augmentation) for 4 steps. Plain (non-Sync) BN, which
    is what DDP runs on CPU/gloo (SyncBatchNorm is CUDA only), normalises each rank's batch by its
    own statistics, so DDP does NOT equal one process on the combined batch of 4 -- asserted
    below, the gap is far above float noise. What it does equal (to 1e-5 here; it comes out bit
    for bit on this machine) is one process that runs the two per-rank half batches through the
    same trainer and averages their gradients, with BN running statistics as rank 0 keeps them."""
    from dataclasses import replace

    from helpers.vod_tree import make_vod_tree
    from test_engine_e2e import TINY

    from sckd.engine import checkpoint as ck
    from sckd.experiment.config import load_experiment
    from sckd.experiment.train import build_model, build_train_set

    tree = make_vod_tree(tmp_path / "data", n_frames=9, splits={"train": list(range(8)), "val": [8]},
                         n_radar=40, seed=2)
    cfg = tmp_path / "bn_pp.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "ddp"
    mp.spawn(_train_real, args=(2, _free_port(), str(cfg), str(tree.root), str(out), BN_PP, "state"),
             nprocs=2, join=True)
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2))
    final = ck.load_checkpoint(out / "checkpoints" / "final.pt")
    # 8 frames over 2 ranks -> 4 each -> 2 steps of 2 frames per epoch, 2 epochs
    assert (final.step, final.iters_per_epoch, final.world_size) == (4, 2, 2)
    for k, v in final.model.items():
        assert torch.equal(v, r0[k]), k
    exp = load_experiment(cfg, BN_PP)
    exp.dataset.root = str(tree.root)
    params = {n for n, _ in build_model(exp).named_parameters()}
    bn_stats = [k for k in r0 if k.endswith("running_mean")]
    assert len(bn_stats) >= 5  # BatchNorm really is in the network
    for k in params:  # parameters: one replica
        assert torch.equal(r0[k], r1[k]), k
    # BN running statistics: each rank updates its own from its own half, so they differ
    assert any(not torch.equal(r0[k], r1[k]) for k in bn_stats)

    def single(model_of, collate, batch_size, name):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as the ranks, so float reductions run the same way
        try:
            seed_everything(exp.train.seed)
            det = build_model(exp)
            cfg1 = replace(exp.train, batch_size=batch_size)
            Trainer(model_of(det), cfg1, build_train_set(exp, det), collate, run_dir=tmp_path / name,
                    env=D.DistEnv()).fit()
        finally:
            torch.set_num_threads(threads)
        return {k: v.detach() for k, v in det.state_dict().items()}

    emulated = single(_TwoRanksInOneProcess, _per_rank_collate, 4, "emulated")
    assert emulated.keys() == r0.keys()
    for k in r0:
        torch.testing.assert_close(emulated[k], r0[k], rtol=1e-5, atol=1e-6, msg=k)
    from sckd.data.dataset import collate
    combined = single(lambda det: det, collate, 4, "combined")
    gap = max(float((combined[k] - r0[k]).abs().max()) for k in params)
    assert gap > 1e-3, gap  # one process of the combined batch is a different computation
    init = build_model(exp).state_dict()  # and training moved the weights
    assert any(not torch.allclose(init[k], r0[k], atol=1e-3) for k in params)
