import math

import pytest
import torch

from sckd.config import from_dict
from sckd.engine.config import TrainConfig
from sckd.engine.optim import OneCycle, build_optimizer
from sckd.errors import SckdError


def _opt(lr=1e-3):
    p = torch.nn.Parameter(torch.ones(3))
    return torch.optim.AdamW([p], lr=lr, betas=(0.95, 0.99), weight_decay=0.01), p


def test_paper_schedule_endpoints():
    # Paper: starts 1e-3, peaks 1e-2, ends 1e-7 (LR 0.01, div factor 10, final div 1e4).
    opt, _ = _opt()
    s = OneCycle(opt, total_steps=1000, max_lr=0.01, div_factor=10, final_div_factor=1e4, pct_start=0.4)
    assert s.get_last_lr() == [pytest.approx(1e-3)]
    assert opt.param_groups[0]["betas"][0] == pytest.approx(0.95)
    assert s.lr_at(400) == pytest.approx(1e-2)          # int(0.4 * 1000) = peak
    assert s.momentum_at(400) == pytest.approx(0.85)
    assert s.lr_at(1000) == pytest.approx(1e-7, rel=1e-9)
    assert s.momentum_at(1000) == pytest.approx(0.95)
    # Half-way up a cosine is the arithmetic mean of its ends; half-way down likewise.
    assert s.lr_at(200) == pytest.approx((1e-3 + 1e-2) / 2)
    assert s.momentum_at(200) == pytest.approx(0.9)
    assert s.lr_at(700) == pytest.approx((1e-2 + 1e-7) / 2)
    # A quarter of the way up: low + (high - low) * (1 - cos(pi/4)) / 2.
    assert s.lr_at(100) == pytest.approx(1e-3 + 9e-3 * (1 - math.cos(math.pi / 4)) / 2)


def test_schedule_is_monotonic_in_each_phase_and_drives_the_optimizer():
    opt, _ = _opt()
    s = OneCycle(opt, total_steps=50, max_lr=0.003, pct_start=0.4)
    lrs, moms = [], []
    for _ in range(50):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["betas"][0])
        s.step()
    assert all(a < b for a, b in zip(lrs[:20], lrs[1:21]))
    assert all(a > b for a, b in zip(lrs[20:], lrs[21:]))
    assert all(a > b for a, b in zip(moms[:20], moms[1:21]))
    assert opt.param_groups[0]["betas"][1] == 0.99  # beta2 untouched


def test_state_dict_round_trip_continues_the_curve():
    opt, _ = _opt()
    s = OneCycle(opt, total_steps=100, max_lr=0.01)
    for _ in range(37):
        s.step()
    state = s.state_dict()
    opt2, _ = _opt(lr=123.0)
    s2 = OneCycle(opt2, total_steps=5, max_lr=1.0)  # other hyper-parameters: replaced by the state
    s2.load_state_dict(state)
    assert s2.step_num == 37 and s2.total_steps == 100
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert opt2.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
    s.step(), s2.step()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_adamw_weight_decay_is_decoupled_and_covers_all_params():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    model[0].weight.requires_grad_(False)  # frozen parameters stay out of the optimiser
    cfg = TrainConfig(lr=0.01, weight_decay=0.01)
    opt = build_optimizer(model, cfg)
    params = opt.param_groups[0]["params"]
    assert len(params) == 3 and all(p.requires_grad for p in params)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    # Zero gradient: Adam's update is 0, only the decoupled decay p *= (1 - lr * wd) acts.
    before = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    for b, p in zip(before, params):
        torch.testing.assert_close(p.detach(), b * (1 - 1e-3 * 0.01))


def test_train_config_validation_names_the_key():
    assert from_dict(TrainConfig, {"epochs": 3, "moms": [0.9, 0.8]}, "train").epochs == 3
    with pytest.raises(SckdError, match=r"'train.pct_start'"):
        from_dict(TrainConfig, {"pct_start": 1.5}, "train")
    with pytest.raises(SckdError, match=r"'train.moms'"):
        from_dict(TrainConfig, {"moms": [0.9]}, "train")
    with pytest.raises(SckdError, match=r"'train.batch_size'"):
        from_dict(TrainConfig, {"batch_size": 0}, "train")
    with pytest.raises(SckdError, match=r"'train.ckpt_unit'"):
        from_dict(TrainConfig, {"ckpt_unit": "hour"}, "train")
    with pytest.raises(SckdError, match=r"'train.lr_max'.*unknown key"):
        from_dict(TrainConfig, {"lr_max": 1}, "train")
