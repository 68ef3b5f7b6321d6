"""A data error in a DataLoader worker ends the training at once with the worker's one-line
message and leaves no worker process behind (issue 29: it used to hang at exit, the workers
ignoring SIGTERM); a worker that dies is a one-line error too."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.engine_toys import ToyDataset, ToyDetector, collate

from sckd.engine.config import TrainConfig
from sckd.engine.distributed import DistEnv
from sckd.engine.trainer import Trainer
from sckd.engine.validation import run_predictions
from sckd.errors import SckdError


class BadFrameToys(ToyDataset):
    """Frame ``bad`` raises the reader's kind of error."""

    def __init__(self, bad: int, **kw):
        super().__init__(**kw)
        self.bad = bad

    def __getitem__(self, i):
        if i == self.bad:
            raise SckdError(f"/data/label_2/{i:05d}.txt:1: h is not finite ('nan')")
        return super().__getitem__(i)


class FileToys(ToyDataset):
    """Every frame reads ``path`` (float32 x 4 per point), as a radar reader would."""

    def __init__(self, path: Path, **kw):
        super().__init__(**kw)
        self.path = path

    def __getitem__(self, i):
        # One read, then the size check on what was read (as sckd.data.points.read_bin does): a
        # stat before the read raced the truncation in CI (the read saw 37 bytes after the stat
        # saw 160).
        raw = self.path.read_bytes()
        if len(raw) % 16:
            raise SckdError(f"{self.path}: size {len(raw)} bytes is not a multiple of 16")
        frame = super().__getitem__(i)
        frame.radar = np.frombuffer(raw, dtype=np.float32).reshape(-1, 4).copy()
        return frame


class DyingToys(ToyDataset):
    """Frame 3 kills the process loading it (as the out-of-memory killer would)."""

    def __getitem__(self, i):
        if i == 3 and multiprocessing.parent_process() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(i)


def _trainer(tmp_path, dataset, workers, **kw):
    cfg = TrainConfig(epochs=kw.pop("epochs", 2), batch_size=2, workers=workers, lr=0.01, seed=1,
                      val_every=0, progress=False, log_every=100)
    return Trainer(ToyDetector(), cfg, dataset, collate, run_dir=tmp_path / "run", env=DistEnv(), **kw)


def _no_workers_left(within_s: float = 10.0) -> bool:
    end = time.monotonic() + within_s
    while multiprocessing.active_children() and time.monotonic() < end:
        time.sleep(0.05)
    return not multiprocessing.active_children()


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_worker_data_error_is_the_one_line_message_and_no_worker_survives(tmp_path, workers):
    t0 = time.monotonic()
    with pytest.raises(SckdError) as err:
        _trainer(tmp_path, BadFrameToys(bad=5, n=10), workers).fit()
    assert str(err.value) == "/data/label_2/00005.txt:1: h is not finite ('nan')"
    assert _no_workers_left(), multiprocessing.active_children()
    assert time.monotonic() - t0 < 60
    with pytest.raises(SckdError, match=r"^/data/label_2/00005\.txt:1: h is not finite"):
        run_predictions(ToyDetector(), BadFrameToys(bad=5, n=10), collate, env=DistEnv(), batch_size=2,
                        workers=workers)
    assert _no_workers_left()


@pytest.mark.parametrize("workers", [1, 2])
def test_file_truncated_while_training_runs(tmp_path, workers):
    path = tmp_path / "cloud.bin"
    np.arange(40, dtype=np.float32).tofile(path)  # 10 points

    def truncate_after_first_step(trainer):
        if trainer.state.step == 1:
            with open(path, "r+b") as f:
                f.truncate(37)

    with pytest.raises(SckdError) as err:
        _trainer(tmp_path, FileToys(path, n=8), workers, epochs=4, on_step=truncate_after_first_step).fit()
    assert str(err.value) == f"{path}: size 37 bytes is not a multiple of 16"
    assert _no_workers_left()


def test_dead_worker_is_a_one_line_error(tmp_path):
    with pytest.raises(SckdError, match=r"^config key 'train.workers': a data loading worker process died"):
        _trainer(tmp_path, DyingToys(n=10), 1).fit()
    assert _no_workers_left()


def test_a_batch_cut_off_in_its_handover_is_the_same_one_line_error(tmp_path, monkeypatch):
    """A worker killed while the main process takes its batch's shared memory: the handshake
    with the dead worker ends in ConnectionResetError before torch's SIGCHLD handler speaks (seen
    once in a full run of the suite); the same one line, the workers ended."""
    from multiprocessing import resource_sharer

    def cut(self):
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(resource_sharer.DupFd, "detach", cut)
    with pytest.raises(SckdError, match=r"^config key 'train.workers': a data loading worker process died "
                                        r"\(ConnectionResetError: \[Errno 104\] Connection reset by peer\)"):
        _trainer(tmp_path, ToyDataset(n=10), 1).fit()
    assert _no_workers_left()


def test_failed_step_ends_the_workers(tmp_path):
    """An error in the main process (here the step) ends the workers too, not at collection."""
    def fail(trainer):
        raise SckdError("step failed")

    with pytest.raises(SckdError, match="step failed") as err:
        _trainer(tmp_path, ToyDataset(n=10), 2, on_step=fail).fit()
    assert _no_workers_left(2.0), multiprocessing.active_children()
    del err


def test_sckd_train_on_a_bad_train_frame_exits_with_the_error(tmp_path):
    """The reported case: a real ``sckd train`` with one worker on a world whose train frame has
    a NaN box size exits 2 with the reader's one line (it hung forever before)."""
    from sckd.data.synth.config import load_synth_config
    from sckd.data.synth.world import synthesize

    world = tmp_path / "world"
    synthesize(world, 12, 0, load_synth_config(None, ["synth.sequence.frames_per_sequence=4"]), workers=1)
    fid = (world / "radar" / "ImageSets" / "train.txt").read_text().split()[0]
    label = world / "lidar" / "training" / "label_2" / f"{fid}.txt"
    lines = label.read_text().splitlines()
    fields = lines[0].split()
    fields[8] = "nan"  # h
    label.write_text("\n".join([" ".join(fields), *lines[1:]]) + "\n")
    cmd = [sys.executable, "-m", "sckd", "-q", "train", "experiments/synth/second_radar_gt",
           "--data", str(world), "--out", str(tmp_path / "run"), "--workers", "1"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail("sckd train hung on a data error in its loader worker")
    assert p.returncode == 2, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and f"label_2/{fid}.txt:1: h is not finite ('nan')" in last, p.stderr
