"""SCKD teacher fusion: adaptive weights, random modality dropout, and the Table 5 variants."""

import math

import pytest
import torch
import torch.nn.functional as F

from sckd.config import from_dict
from sckd.errors import SckdError
from sckd.models.adaptive_fusion import AdaptiveFusion, draw_modality_gate
from sckd.models.config import FusionConfig


def _maps(b=2, cl=5, cr=3, h=6, w=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"lidar": torch.randn(b, cl, h, w, generator=g), "radar": torch.randn(b, cr, h, w, generator=g) + 1.0}


def _module(**kw):
    torch.manual_seed(3)
    m = AdaptiveFusion({"lidar": 5, "radar": 3}, "lidar", **kw)
    with torch.no_grad():  # non-trivial BN statistics and affine terms
        m.weight_bn.running_mean.copy_(torch.tensor([0.3, -0.2]))
        m.weight_bn.running_var.copy_(torch.tensor([2.0, 0.5]))
        m.weight_bn.weight.copy_(torch.tensor([1.5, 0.7]))
        m.weight_bn.bias.copy_(torch.tensor([0.1, -0.4]))
    return m


def test_weights_sum_to_one_and_output_is_the_weighted_concat():
    m = _module(dropout=False).eval()
    maps = _maps()
    out = m(maps)
    # independent computation of the paper's equations with the module's parameters
    means = torch.cat([maps["lidar"].mean(1, keepdim=True), maps["radar"].mean(1, keepdim=True)], 1)
    z = F.conv2d(means, m.weight_conv.weight, padding=1)
    bn = m.weight_bn
    z = (z - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + bn.eps)
    z = z * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
    e = torch.exp(z)
    wl, wr = e[:, :1] / e.sum(1, keepdim=True), e[:, 1:] / e.sum(1, keepdim=True)
    expected = torch.cat([wl * maps["lidar"], wr * maps["radar"]], 1)
    assert out.shape == (2, 8, 6, 7)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    w = m.weights(maps)
    torch.testing.assert_close(w["lidar"] + w["radar"], torch.ones(2, 1, 6, 7))
    assert float(w["lidar"].detach().std()) > 1e-3  # really per pixel, not a constant split


def test_weights_sum_to_one_in_training_mode_too():
    m = _module(dropout=False).train()
    w = m.weights(_maps(seed=5))
    torch.testing.assert_close(w["lidar"] + w["radar"], torch.ones(2, 1, 6, 7))


def test_gate_rule_matches_hand_worked_draws(monkeypatch):
    # p1 <= P_drop and p2 <= P_L -> LiDAR dropped; p1 <= P_drop and p2 > P_L -> radar dropped
    cases = {(0.1, 0.1): (False, True), (0.1, 0.5): (True, False), (0.5, 0.1): (True, True),
             (0.2, 0.2): (False, True), (0.2, 0.21): (True, False), (0.9, 0.9): (True, True)}
    for (p1, p2), want in cases.items():
        monkeypatch.setattr(torch, "rand", lambda *a, _v=(p1, p2), **k: torch.tensor(_v, dtype=torch.float64))
        assert draw_modality_gate(0.2, 0.2) == want, (p1, p2)


def test_gate_empirical_rates_are_4_and_16_percent():
    g = torch.Generator().manual_seed(123)
    n = 40000
    draws = [draw_modality_gate(0.2, 0.2, g) for _ in range(n)]
    drop_l = sum(not kl for kl, _ in draws) / n
    drop_r = sum(not kr for _, kr in draws) / n
    assert not any(not kl and not kr for kl, kr in draws)  # never both
    assert abs(drop_l - 0.04) < 4 * math.sqrt(0.04 * 0.96 / n)
    assert abs(drop_r - 0.16) < 4 * math.sqrt(0.16 * 0.84 / n)


def test_module_gate_zeroes_the_dropped_map_once_per_batch():
    m = AdaptiveFusion({"lidar": 5, "radar": 3}, "lidar", af=False, dropout=True).train()
    m.generator = torch.Generator().manual_seed(0)
    maps = _maps()
    seen = {"lidar": 0, "radar": 0}
    n = 3000
    for _ in range(n):
        out = m(maps)
        kl, kr = m.last_keep
        lidar_part, radar_part = out[:, :5], out[:, 5:]
        # one decision for the whole batch: either every sample's map is zero or none is
        assert torch.equal(lidar_part, maps["lidar"]) == kl and (not kl) == bool((lidar_part == 0).all())
        assert torch.equal(radar_part, maps["radar"]) == kr and (not kr) == bool((radar_part == 0).all())
        seen["lidar"] += not kl
        seen["radar"] += not kr
    assert abs(seen["lidar"] / n - 0.04) < 4 * math.sqrt(0.04 * 0.96 / n)
    assert abs(seen["radar"] / n - 0.16) < 4 * math.sqrt(0.16 * 0.84 / n)


def test_gate_is_off_in_eval_mode_and_draws_nothing():
    m = _module(dropout=True).eval()
    maps = _maps()
    state = torch.get_rng_state()
    outs = [m(maps) for _ in range(200)]
    assert torch.equal(torch.get_rng_state(), state)  # no random draw at all
    assert m.last_keep == (True, True) and all(torch.equal(o, outs[0]) for o in outs)


def test_gate_uses_the_global_rng_so_seeded_runs_repeat():
    m = AdaptiveFusion({"lidar": 5, "radar": 3}, "lidar", af=False).train()
    maps = _maps()

    def run():
        torch.manual_seed(11)
        keeps = []
        for _ in range(100):
            m(maps)
            keeps.append(m.last_keep)
        return keeps

    a, b = run(), run()
    assert a == b and any(k != (True, True) for k in a)


def test_fusion_order_sets_the_channel_layout_and_lidar_branch_is_by_name():
    m = AdaptiveFusion({"radar": 3, "lidar": 5}, "lidar", af=False, dropout=False)
    maps = _maps()
    out = m(maps)
    assert m.order == ["radar", "lidar"] and m.out_channels == 8
    assert torch.equal(out[:, :3], maps["radar"]) and torch.equal(out[:, 3:], maps["lidar"])


def test_bad_configs_are_one_line_errors():
    with pytest.raises(SckdError, match="lidar_branch"):
        AdaptiveFusion({"a": 3, "b": 3}, "lidar")
    with pytest.raises(SckdError, match="lidar_branch"):
        AdaptiveFusion({"lidar": 3, "radar": 3, "x": 1}, "lidar")
    with pytest.raises(SckdError, match="p_drop"):
        from_dict(FusionConfig, {"type": "adaptive", "p_drop": 1.5}, "model.fusion")
    with pytest.raises(SckdError, match="af_kernel"):
        from_dict(FusionConfig, {"type": "adaptive", "af_kernel": 2}, "model.fusion")


@pytest.mark.parametrize("name,has_af,has_rd,fusion_type", [
    ("teacher_lidar", False, False, "none"), ("teacher_concat", False, False, "concat"),
    ("teacher_af", True, False, "adaptive"), ("teacher_rd", False, True, "adaptive"),
    ("teacher", True, True, "adaptive")])
def test_table5_teacher_configs_build(name, has_af, has_rd, fusion_type):
    from sckd.experiment.config import load_experiment
    from sckd.experiment.train import build_model

    exp = load_experiment(f"experiments/synth/{name}")
    assert exp.model.fusion.type == fusion_type
    det = build_model(exp)
    branches = sorted(det.encoders)
    assert branches == (["lidar"] if name == "teacher_lidar" else ["lidar", "radar"])
    if fusion_type == "adaptive":
        assert det.fusion.use_af == has_af and det.fusion.use_dropout == has_rd
        assert det.fusion.order[0] == "lidar"  # concat(W_L F_L, W_R F_R)
    c = sum(e.out_channels for e in det.encoders.values())
    assert det.fusion.out_channels == c
