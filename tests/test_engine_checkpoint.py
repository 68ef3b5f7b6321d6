import random

import numpy as np
import pytest
import torch

from sckd.engine import checkpoint as ck
from sckd.errors import SckdError


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "step_00000001.pt"
    ck.save_checkpoint(ck.Checkpoint({"x": torch.arange(3)}, {}), target)
    real_save = torch.save

    def broken_save(obj, f):
        real_save({"partial": torch.zeros(1000)}, f)  # some bytes hit the temp file ...
        raise OSError("disk full")                     # ... then the write dies

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(SckdError, match=f"^{target}: cannot write checkpoint \\(disk full\\)$"):
        ck.save_checkpoint(ck.Checkpoint({"x": torch.arange(5)}, {}), target)
    monkeypatch.setattr(torch, "save", real_save)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temp file left behind
    assert ck.load_checkpoint(target).model["x"].tolist() == [0, 1, 2]


def test_load_refuses_non_checkpoints_and_pickled_code(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(SckdError, match=r"junk.pt: not a readable checkpoint"):
        ck.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(SckdError, match=r"other.pt: not an sckd checkpoint"):
        ck.load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": ck.FORMAT, "obj": ValueError("x")}, tmp_path / "code.pt")  # arbitrary class
    with pytest.raises(SckdError, match=r"code.pt: not a readable checkpoint"):
        ck.load_checkpoint(tmp_path / "code.pt")
    with pytest.raises(SckdError, match=r"missing.pt: checkpoint not found"):
        ck.load_checkpoint(tmp_path / "missing.pt")


def test_rng_states_survive_a_checkpoint_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # leave a cached gaussian in numpy's legacy state
    ck.save_checkpoint(ck.Checkpoint({}, {}, rng=[ck.capture_rng()]), tmp_path / "r.pt")
    expected = (random.random(), np.random.normal(size=3).tolist(), torch.rand(3).tolist())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ck.restore_rng(ck.load_checkpoint(tmp_path / "r.pt").rng[0])
    assert (random.random(), np.random.normal(size=3).tolist(), torch.rand(3).tolist()) == expected


def test_signature_tells_models_and_configs_apart(tmp_path):
    a = torch.nn.Linear(3, 4)
    b = torch.nn.Linear(3, 5)
    assert ck.model_signature(a, {"x": 1}) == ck.model_signature(torch.nn.Linear(3, 4), {"x": 1.0})
    assert ck.model_signature(a, {"x": 1}) != ck.model_signature(b, {"x": 1})
    assert ck.model_signature(a, {"x": 1}) != ck.model_signature(a, {"x": 2})
    assert ck.model_signature(a, {"x": [1, 2], "y": True}) != ck.model_signature(a, {"x": [1, 2], "y": 1})
    with pytest.raises(SckdError, match=r"c.pt: checkpoint is from another model") as e:
        ck.check_signature(ck.Checkpoint({}, {}, ck.model_signature(b)), ck.model_signature(a), tmp_path / "c.pt")
    assert "\n" not in str(e.value)
    ck.check_signature(ck.Checkpoint({}, {}, ""), ck.model_signature(a), tmp_path / "c.pt")  # unknown: passes


def test_a_checkpoint_comes_back_as_written(tmp_path):
    state = {"w": torch.randn(3, 2, generator=torch.Generator().manual_seed(0))}
    c = ck.Checkpoint(state, {"model": {"name": "m"}, "train": {"lr": 0.5}}, "abc", epoch=2, step=40,
                      step_in_epoch=3, iters_per_epoch=18, world_size=2, optimizer={"state": {}},
                      scheduler={"step_num": 40}, best=ck.BestMetric("entire_area/mAP_3d", 12.5, 1),
                      metrics={"entire_area/mAP_3d": 12.5}, rng=[{"torch": torch.get_rng_state()}])
    back = ck.load_checkpoint(ck.save_checkpoint(c, tmp_path / "c.pt"))
    assert torch.equal(back.model["w"], state["w"]) and torch.equal(back.rng[0]["torch"], c.rng[0]["torch"])
    assert (back.config, back.signature, back.best, back.metrics) == (c.config, "abc", c.best, c.metrics)
    assert (back.epoch, back.step, back.step_in_epoch, back.iters_per_epoch, back.world_size) == (2, 40, 3, 18, 2)
    assert back.has_training_state and not ck.Checkpoint(state, {}).has_training_state


def test_first_format_checkpoints_still_load(tmp_path):
    """Format 1 stored the config as YAML text and a signature over YAML text: the config comes
    back as a dict, the signature as unknown (strict weight loading still checks the model)."""
    ck.atomic_torch_save({"format": "sckd-ckpt-1", "model": {"w": torch.ones(2)}, "optimizer": None,
                          "epoch": 3, "step": 9, "step_in_epoch": 0, "iters_per_epoch": 3,
                          "best": {"metric": "m", "value": None, "epoch": None}, "rng": [],
                          "config": "model:\n  name: x\ntrain: {lr: 0.1}\n", "signature": "0123456789abcdef"},
                         tmp_path / "old.pt")
    old = ck.load_checkpoint(tmp_path / "old.pt")
    assert old.config == {"model": {"name": "x"}, "train": {"lr": 0.1}} and old.signature == ""
    assert (old.epoch, old.step, old.best.metric, old.optimizer) == (3, 9, "m", None)
    ck.atomic_torch_save({"format": "sckd-ckpt-9", "model": {}}, tmp_path / "new.pt")
    with pytest.raises(SckdError, match=r"new.pt: checkpoint format 'sckd-ckpt-9' is newer than this sckd reads"):
        ck.load_checkpoint(tmp_path / "new.pt")


def test_prune_keeps_the_newest_step_checkpoints(tmp_path):
    for step in (5, 40, 10, 200):
        (tmp_path / ck.step_checkpoint_name(step)).write_bytes(b"")
    (tmp_path / "best.pt").write_bytes(b"")
    ck.prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "step_00000040.pt", "step_00000200.pt"]
    assert ck.latest_checkpoint(tmp_path).name == "step_00000200.pt"
    assert ck.latest_checkpoint(tmp_path / "none") is None


def test_weights_digest_follows_the_weights_not_the_file(tmp_path):
    """Same weights written with and without optimiser state: one digest; one value changed, a
    tensor renamed or reshaped: another. Checked against sha256 of the bytes written by hand."""
    import hashlib

    w = {"b": torch.tensor([1.5, -2.0]), "a.weight": torch.arange(6.0).reshape(2, 3), "n": torch.tensor(7)}
    full = ck.Checkpoint(dict(w), {"name": "m"}, "sig", epoch=3, optimizer={"state": {}}, scheduler={"e": 1},
                         iters_per_epoch=2)
    ck.save_checkpoint(full, tmp_path / "full.pt")
    ck.save_checkpoint(ck.Checkpoint(dict(w), {}), tmp_path / "bare.pt")
    got = ck.weights_digest(ck.load_checkpoint(tmp_path / "full.pt"))
    assert got == ck.weights_digest(ck.load_checkpoint(tmp_path / "bare.pt")) == ck.weights_digest(full)
    h = hashlib.sha256()
    for name in ["a.weight", "b", "n"]:
        t = w[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode() + t.numpy().tobytes())
    assert got == h.hexdigest()[:16]
    nudged = dict(w, b=torch.tensor([1.5, -2.0 + 1e-6]))
    renamed = {"c" if k == "b" else k: v for k, v in w.items()}
    reshaped = dict(w, **{"a.weight": w["a.weight"].reshape(3, 2)})
    others = {ck.weights_digest(ck.Checkpoint(m, {})) for m in (nudged, renamed, reshaped)}
    assert got not in others and len(others) == 3
