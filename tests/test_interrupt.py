"""Interruption: a real ``sckd train`` killed with SIGKILL (no chance to clean up) at a random
step, or while it is writing a checkpoint, continues to exactly the weights of an uninterrupted
run, and never leaves a corrupt newest checkpoint behind.

The run uses the real detector on a hand-made VoD tree with augmentation on and one DataLoader
worker, checkpoints every step, 2 epochs x 3 steps.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from helpers.tiny_vod_config import tiny_radar_config
from helpers.vod_tree import make_vod_tree

from sckd.cli import main
from sckd.engine import checkpoint as ck

pytestmark = pytest.mark.slow

CFG = tiny_radar_config("interrupt", "{epochs: 2, batch_size: 2, workers: 1, val_every: 0, log_every: 1, "
                        "progress: false, seed: 11, ckpt_every: 1, ckpt_unit: step, max_ckpts: 2}")
TOTAL_STEPS = 6  # 5 frames, batch 2 -> 3 steps per epoch
# The kill points are drawn from this seed (set it to explore others; a failure names it).
SEED = int(os.environ.get("SCKD_INTERRUPT_SEED", "0"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(dataset root, config, final weights of an uninterrupted run)."""
    tmp = tmp_path_factory.mktemp("interrupt")
    tree = make_vod_tree(tmp / "data", n_frames=7, splits={"train": [0, 1, 2, 3, 4], "val": [5, 6]})
    cfg = tmp / "cfg.yaml"
    cfg.write_text(CFG)
    ref = tmp / "ref"
    assert main(_argv(cfg, tree.root, ref)) == 0
    final = ck.load_checkpoint(ref / "checkpoints" / "final.pt")
    assert final.step == TOTAL_STEPS
    return tree.root, cfg, final.model


def _argv(cfg: Path, root: Path, out: Path) -> list[str]:
    return ["-q", "train", str(cfg), "--data", str(root), "--out", str(out)]


def _env() -> dict[str, str]:
    # the same intra-op thread count as this process, so float reductions match bit for bit
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _resume_and_compare(cfg: Path, root: Path, run: Path, ref: dict) -> str:
    """Continue ``run`` with the very same command; its final weights must equal ``ref``."""
    assert main(_argv(cfg, root, run)) == 0
    final = ck.load_checkpoint(run / "checkpoints" / "final.pt")
    assert final.step == TOTAL_STEPS
    _assert_same_weights(ref, final.model)
    return (run / "train.log").read_text()


def _wait_for_step(proc: subprocess.Popen, log: Path, step: int) -> None:
    """Until the run has logged ``step`` (or ended, or 4 minutes passed)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and f" step {step}/{TOTAL_STEPS} " in log.read_text():
            return
        time.sleep(0.01)


def test_sigkill_at_a_random_step_then_resume_gives_identical_weights(world, tmp_path):
    root, cfg, ref = world
    rng = random.Random(SEED)
    step = rng.randint(1, TOTAL_STEPS - 3)
    delay = rng.uniform(0.0, 0.15)  # after the step's log line: mid-checkpoint or mid-next-step
    why = f"killed {delay:.3f} s after step {step} was logged (SCKD_INTERRUPT_SEED={SEED})"
    run = tmp_path / "run"
    log = run / "train.log"
    proc = subprocess.Popen([sys.executable, "-m", "sckd", *_argv(cfg, root, run)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_step(proc, log, step)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL, (why, proc.returncode, err)
    assert not (run / "checkpoints" / "final.pt").exists(), why
    latest = ck.latest_checkpoint(run / "checkpoints")
    if latest is not None:  # whatever the moment of the kill, the newest checkpoint is whole
        saved = ck.load_checkpoint(latest)
        assert step - 1 <= saved.step < TOTAL_STEPS, (why, saved.step)
    text = _resume_and_compare(cfg, root, run, ref)
    if latest is not None:
        assert f"resumed from {latest}" in text, why


WRITER_DIES = """
import io, os, signal, sys
import torch

real_save = torch.save
calls = 0

def dying_save(obj, f, *args, **kwargs):
    # The {n}th checkpoint: half its bytes reach the file, then the process is killed.
    global calls
    calls += 1
    if calls < {n}:
        return real_save(obj, f, *args, **kwargs)
    buf = io.BytesIO()
    real_save(obj, buf, *args, **kwargs)
    data = buf.getvalue()
    f.write(data[: len(data) // 2])
    f.flush()
    os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)

torch.save = dying_save
from sckd.cli import main
sys.exit(main({argv!r}))
"""


def test_killed_while_writing_a_checkpoint_leaves_the_previous_one_as_latest(world, tmp_path):
    root, cfg, ref = world
    n = random.Random(SEED + 1).randint(2, TOTAL_STEPS - 1)  # dies writing step_n (one checkpoint a step)
    run = tmp_path / "run"
    script = textwrap.dedent(WRITER_DIES).replace("{n}", str(n)).replace("{argv!r}", repr(_argv(cfg, root, run)))
    r = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, (n, r.returncode, r.stderr)
    ckpt_dir = run / "checkpoints"
    partial = [p for p in ckpt_dir.iterdir() if p.name.startswith(f".{ck.step_checkpoint_name(n)}.")]
    assert len(partial) == 1 and partial[0].stat().st_size > 0  # it did die mid-write
    assert not (ckpt_dir / ck.step_checkpoint_name(n)).exists()
    latest = ck.latest_checkpoint(ckpt_dir)
    assert latest is not None and latest.name == ck.step_checkpoint_name(n - 1), n
    assert ck.load_checkpoint(latest).step == n - 1
    text = _resume_and_compare(cfg, root, run, ref)
    assert f"resumed from {latest}" in text
    assert not partial[0].exists()  # the continued run swept the half-written file away


def test_sigterm_stops_after_the_step_with_a_checkpoint_then_resumes(world, tmp_path):
    """A pre-empting scheduler sends SIGTERM: the run saves where it is and exits cleanly."""
    root, cfg, ref = world
    run = tmp_path / "run"
    log = run / "train.log"
    proc = subprocess.Popen([sys.executable, "-m", "sckd", *_argv(cfg, root, run)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_step(proc, log, 2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode != -signal.SIGTERM, err  # handled, not killed by the default action
    assert "SIGTERM" in log.read_text()
    latest = ck.latest_checkpoint(run / "checkpoints")
    if not (run / "checkpoints" / "final.pt").exists():
        assert latest is not None and ck.load_checkpoint(latest).step >= 2
        _resume_and_compare(cfg, root, run, ref)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_to_the_whole_process_group_stops_cleanly(world, tmp_path, sig):
    """``scancel`` / a pre-empting scheduler signals every process of the job, and Ctrl-C in a
    terminal reaches the whole foreground group: the DataLoader workers get the signal too. They
    must leave the stop to the main process, which saves a checkpoint and exits 0 (a worker dying
    of it made the run end in an internal error, losing the steps since the last checkpoint)."""
    root, cfg, ref = world
    run = tmp_path / "run"
    log = run / "train.log"
    proc = subprocess.Popen([sys.executable, "-m", "sckd", *_argv(cfg, root, run)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _wait_for_step(proc, log, 2)
        assert proc.poll() is None, "the run ended before it could be signalled"
        os.killpg(proc.pid, sig)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 0, err
    assert "internal error" not in err and "worker" not in err, err
    assert signal.Signals(sig).name in log.read_text(), err
    latest = ck.latest_checkpoint(run / "checkpoints")
    if not (run / "checkpoints" / "final.pt").exists():
        assert latest is not None and ck.load_checkpoint(latest).step >= 2
        _resume_and_compare(cfg, root, run, ref)
