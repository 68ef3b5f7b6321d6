import random

import numpy as np
import pytest
import torch

from sckd.engine import checkpoint as ck
from sckd.errors import SckdError


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "step_00000001.pt"
    ck.atomic_torch_save({"format": ck.FORMAT, "x": torch.arange(3)}, target)
    real_save = torch.save

    def broken_save(obj, f):
        real_save({"partial": torch.zeros(1000)}, f)  # some bytes hit the temp file ...
        raise OSError("disk full")                     # ... then the write dies

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(SckdError, match=f"^{target}: cannot write checkpoint \\(disk full\\)$"):
        ck.atomic_torch_save({"format": ck.FORMAT, "x": torch.arange(5)}, target)
    monkeypatch.setattr(torch, "save", real_save)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temp file left behind
    assert ck.load_checkpoint(target)["x"].tolist() == [0, 1, 2]


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
    ck.atomic_torch_save({"format": ck.FORMAT, "rng": [ck.capture_rng()]}, tmp_path / "r.pt")
    expected = (random.random(), np.random.normal(size=3).tolist(), torch.rand(3).tolist())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ck.restore_rng(ck.load_checkpoint(tmp_path / "r.pt")["rng"][0])
    assert (random.random(), np.random.normal(size=3).tolist(), torch.rand(3).tolist()) == expected


def test_signature_tells_models_and_configs_apart(tmp_path):
    a = torch.nn.Linear(3, 4)
    b = torch.nn.Linear(3, 5)
    assert ck.model_signature(a, "x: 1") == ck.model_signature(torch.nn.Linear(3, 4), "x: 1")
    assert ck.model_signature(a, "x: 1") != ck.model_signature(b, "x: 1")
    assert ck.model_signature(a, "x: 1") != ck.model_signature(a, "x: 2")
    with pytest.raises(SckdError, match=r"c.pt: checkpoint is from another model") as e:
        ck.check_signature({"signature": ck.model_signature(b)}, ck.model_signature(a), tmp_path / "c.pt")
    assert "\n" not in str(e.value)


def test_prune_keeps_the_newest_step_checkpoints(tmp_path):
    for step in (5, 40, 10, 200):
        (tmp_path / ck.step_checkpoint_name(step)).write_bytes(b"")
    (tmp_path / "best.pt").write_bytes(b"")
    ck.prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "step_00000040.pt", "step_00000200.pt"]
    assert ck.latest_checkpoint(tmp_path).name == "step_00000200.pt"
    assert ck.latest_checkpoint(tmp_path / "none") is None
