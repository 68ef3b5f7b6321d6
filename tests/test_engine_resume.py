"""Resume determinism and trainer bookkeeping on a tiny model (the real detector: test_engine_e2e)."""

import logging
import os
import signal

import pytest
import torch
from helpers.engine_toys import ToyDataset, ToyDetector, collate, toy_evaluate

from sckd.engine import checkpoint as ck
from sckd.engine.config import TrainConfig
from sckd.engine.distributed import DistEnv
from sckd.engine.seeding import seed_everything
from sckd.engine.trainer import Trainer
from sckd.engine.validation import DetectionValidator
from sckd.errors import SckdError


class Crash(Exception):
    pass


def _trainer(run_dir, cfg, crash_at=None, validate=False, n=10):
    seed_everything(cfg.seed)
    ds = ToyDataset(n=n)
    model = ToyDetector()
    env = DistEnv()
    val = DetectionValidator(ToyDataset(n=6, seed=1), collate, toy_evaluate(ToyDataset(n=6, seed=1)),
                             env=env, batch_size=4, workers=0) if validate else None

    def hook(tr):
        if crash_at is not None and tr.state.step == crash_at:
            raise Crash

    return Trainer(model, cfg, ds, collate, run_dir=run_dir, env=env, validator=val,
                   config={"toy": 1}, signature=ck.model_signature(model, {"toy": 1}), on_step=hook)


def _cfg(**kw):
    base = dict(epochs=3, batch_size=4, workers=0, lr=0.01, seed=3, val_every=0, ckpt_unit="step",
                ckpt_every=4, max_ckpts=10, log_every=2, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def _assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("workers", [0, 1])
def test_interrupted_and_resumed_run_ends_with_identical_weights(tmp_path, workers):
    # 10 frames, batch 4 -> 3 steps/epoch (4, 4, 2 frames), 9 steps in all. Checkpoints every
    # 4 steps: the crash at step 6 loses steps 5-6; the resume starts mid-epoch 2 from step 4.
    cfg = _cfg(workers=workers)
    ref = _trainer(tmp_path / "ref", cfg)
    ref.fit()
    crashed = _trainer(tmp_path / "run", cfg, crash_at=6)
    with pytest.raises(Crash):
        crashed.fit()
    latest = ck.latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert latest.name == "step_00000004.pt"
    saved = ck.load_checkpoint(latest)
    assert (saved.epoch, saved.step, saved.step_in_epoch) == (1, 4, 1)

    resumed = _trainer(tmp_path / "run", cfg)
    resumed.resume(latest)
    # Something else drew random numbers between construction and fitting: must not matter.
    torch.rand(5)
    result = resumed.fit()
    assert result.state.step == 9 and result.state.epoch == 3 and not result.stopped_early
    _assert_same_state(ref.model.state_dict(), resumed.model.state_dict())
    o1, o2 = ref.optimizer.state_dict(), resumed.optimizer.state_dict()
    for pid in o1["state"]:
        _assert_same_state(o1["state"][pid], o2["state"][pid])
    assert o1["param_groups"][0]["lr"] == o2["param_groups"][0]["lr"]
    assert ck.load_checkpoint(tmp_path / "run" / "checkpoints" / "final.pt").step == 9


def test_resume_without_rng_restore_would_differ(tmp_path):
    # Guards the test above against passing vacuously: dropout makes the RNG state matter.
    cfg = _cfg()
    ref = _trainer(tmp_path / "ref", cfg)
    ref.fit()
    other = _trainer(tmp_path / "o", cfg)
    crashed = _trainer(tmp_path / "run", cfg, crash_at=6)
    with pytest.raises(Crash):
        crashed.fit()
    ck_path = ck.latest_checkpoint(tmp_path / "run" / "checkpoints")
    state = ck.load_checkpoint(ck_path)
    state.rng = []  # drop the RNG states
    ck.save_checkpoint(state, tmp_path / "norng.pt")
    other.resume(tmp_path / "norng.pt")
    torch.manual_seed(12345)
    other.fit()
    sd1, sd2 = ref.model.state_dict(), other.model.state_dict()
    assert not all(torch.equal(sd1[k], sd2[k]) for k in sd1)


def test_validation_keeps_best_and_max_steps_stops_with_a_checkpoint(tmp_path):
    cfg = _cfg(epochs=4, val_every=1, best_metric="neg_center_err", ckpt_unit="epoch", ckpt_every=1,
               max_ckpts=2, max_steps=7)
    tr = _trainer(tmp_path / "run", cfg, validate=True)
    res = tr.fit()
    # 3 steps per epoch: epochs 1 and 2 complete (validated), stop after step 7 inside epoch 3.
    assert res.stopped_early and res.state.step == 7 and res.state.epoch == 2
    ckdir = tmp_path / "run" / "checkpoints"
    names = sorted(p.name for p in ckdir.iterdir())
    assert names == ["best.pt", "step_00000006.pt", "step_00000007.pt"]  # pruned to 2
    best = ck.load_checkpoint(ckdir / "best.pt")
    assert best.best.metric == "neg_center_err" and best.best.epoch in (1, 2)
    assert best.best.value == res.state.best_value
    assert set(best.metrics) == {"neg_center_err", "frames"} and best.metrics["frames"] == 6.0
    assert (tmp_path / "run" / "tb").is_dir() and any((tmp_path / "run" / "tb").iterdir())
    # Resuming finishes the remaining epochs and keeps the best-so-far bookkeeping.
    cfg2 = _cfg(epochs=4, val_every=1, best_metric="neg_center_err", ckpt_unit="epoch", ckpt_every=1)
    tr2 = _trainer(tmp_path / "run", cfg2, validate=True)
    tr2.resume(ckdir / "step_00000007.pt")
    assert tr2.state.best_value == res.state.best_value
    res2 = tr2.fit()
    assert res2.state.step == 12 and res2.state.epoch == 4 and (ckdir / "final.pt").is_file()


def test_resume_refuses_other_models_and_other_batching(tmp_path):
    cfg = _cfg(epochs=1, max_steps=1)
    _trainer(tmp_path / "run", cfg).fit()
    path = ck.latest_checkpoint(tmp_path / "run" / "checkpoints")
    tr = _trainer(tmp_path / "b", cfg)
    tr.signature = "0123456789abcdef"
    with pytest.raises(SckdError, match=r"another model"):
        tr.resume(path)
    tr = _trainer(tmp_path / "c", _cfg(epochs=1, batch_size=2))
    with pytest.raises(SckdError, match=r"steps per epoch"):
        tr.resume(path)


def test_failed_validation_keeps_the_epoch_and_resume_reruns_it(tmp_path):
    cfg = _cfg(epochs=2, val_every=1, best_metric="neg_center_err", ckpt_unit="epoch")
    ref = _trainer(tmp_path / "ref", cfg, validate=True)
    ref.fit()
    tr = _trainer(tmp_path / "run", cfg, validate=True)
    real = tr.validator
    calls = []

    def flaky(model):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("metric crashed")
        return real(model)

    tr.validator = flaky
    with pytest.raises(RuntimeError, match="metric crashed"):
        tr.fit()
    latest = ck.latest_checkpoint(tmp_path / "run" / "checkpoints")
    saved = ck.load_checkpoint(latest)
    # end of epoch 2, before it closed: the resume validates it again
    assert (saved.epoch, saved.step, saved.step_in_epoch) == (1, 6, 3)
    again = _trainer(tmp_path / "run", cfg, validate=True)
    again.resume(latest)
    res = again.fit()
    assert res.state.epoch == 2 and res.state.last_metrics == ref.state.last_metrics
    assert res.state.best_value == ref.state.best_value
    _assert_same_state(ref.model.state_dict(), again.model.state_dict())


def test_init_from_starts_a_new_cycle_from_a_finished_runs_weights(tmp_path):
    """``train.init_from``: the weights of another run and nothing else. Checked against an
    independent route (the same weights copied in by hand): the same fit step for step, a new
    optimiser (no moments carried) and a schedule that starts again at lr / div_factor."""
    cfg = _cfg(epochs=2)
    _trainer(tmp_path / "first", cfg).fit()
    final = tmp_path / "first" / "checkpoints" / "final.pt"
    source = ck.load_checkpoint(final)

    warm = _trainer(tmp_path / "warm", _cfg(epochs=2, lr=0.005))
    warm.init_weights(final)
    _assert_same_state(warm.model.state_dict(), source.model)
    assert warm.optimizer.state_dict()["state"] == {} and warm.state.step == 0
    assert warm.optimizer.param_groups[0]["lr"] == pytest.approx(0.005 / cfg.div_factor)
    res = warm.fit()
    by_hand = _trainer(tmp_path / "hand", _cfg(epochs=2, lr=0.005))  # seeds as the warm run did
    by_hand.model.load_state_dict(source.model)
    by_hand.fit()
    assert res.state.step == 6 and res.state.epoch == 2
    _assert_same_state(warm.model.state_dict(), by_hand.model.state_dict())
    fresh = _trainer(tmp_path / "fresh", _cfg(epochs=2, lr=0.005))
    fresh.fit()  # the same cycle from random weights ends elsewhere: the start mattered
    assert not torch.equal(fresh.model.state_dict()["net.4.weight"], warm.model.state_dict()["net.4.weight"])


def test_init_from_refuses_a_missing_file_and_another_model(tmp_path):
    cfg = _cfg(epochs=1)
    _trainer(tmp_path / "first", cfg).fit()
    tr = _trainer(tmp_path / "b", cfg)
    with pytest.raises(SckdError, match=r"^config key 'train.init_from': .*nope.pt: checkpoint not found$"):
        tr.init_weights(tmp_path / "nope.pt")
    tr.signature = "0123456789abcdef"
    with pytest.raises(SckdError, match=r"final.pt: checkpoint is from another model"):
        tr.init_weights(tmp_path / "first" / "checkpoints" / "final.pt")


class _SignalWhileWriting(logging.Handler):
    """A log handler that sends this process SIGINT from inside its own write of the first line
    containing ``at``: Ctrl-C that lands while the trainer is writing its log."""

    def __init__(self, at: str):
        super().__init__(logging.INFO)
        self.at, self.sent, self.depth = at, False, 0
        self.lines: list[str] = []
        self.nested: list[str] = []  # lines written while another write was under way

    def emit(self, record):
        self.depth += 1
        try:
            msg = record.getMessage()
            if self.depth > 1:
                self.nested.append(msg)
            if not self.sent and self.at in msg:
                self.sent = True
                os.kill(os.getpid(), signal.SIGINT)
                sum(range(10_000))  # Python runs the signal handler at a bytecode boundary in here
            self.lines.append(msg)
        finally:
            self.depth -= 1


def test_ctrl_c_during_a_log_write_stops_with_a_checkpoint_and_logs_it_after(tmp_path):
    # A handler that logs re-enters the half-written file: the buffered file refuses the nested
    # write and the line is lost (make test saw "SIGINT" missing from train.log). The handler only
    # sets a flag; the loop logs the request once, after the step.
    cfg = _cfg(log_every=1, ckpt_every=100)
    tr = _trainer(tmp_path / "run", cfg)
    spy = _SignalWhileWriting(" step 2/")
    logger = logging.getLogger("sckd")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(spy)
    try:
        result = tr.fit()
    finally:
        logger.removeHandler(spy)
        logger.setLevel(old_level)
    assert spy.sent and spy.nested == []
    assert result.stopped_early and result.state.step == 2
    assert any(line.startswith("SIGINT: stopping at step 2 with a checkpoint") for line in spy.lines), spy.lines
    assert ck.load_checkpoint(ck.latest_checkpoint(tmp_path / "run" / "checkpoints")).step == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
