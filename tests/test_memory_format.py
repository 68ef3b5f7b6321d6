"""train.channels_last / the NHWC deploy route on any model: 2D convs only, teacher included."""

import pytest
import torch
from torch import nn

from sckd.engine.memory_format import to_channels_last
from sckd.experiment.config import load_experiment
from sckd.models import build_detector


def _cloud(n_feat: int, n: int = 300, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(n, 3, generator=g) * torch.tensor([50.0, 50.0, 4.0]) + torch.tensor([0.5, -25.0, -2.5])
    return torch.cat([torch.zeros(n, 1), xyz, torch.randn(n, n_feat - 3, generator=g)], 1)


def test_second_model_gets_nhwc_2d_convs_and_the_same_outputs(one_torch_thread):
    exp = load_experiment("experiments/synth/second_radar")
    torch.manual_seed(0)
    det = build_detector(exp.model, exp.dataset).eval()
    with pytest.raises(RuntimeError, match="rank 4"):  # why the helper exists: 5-D sparse weights
        build_detector(exp.model, exp.dataset).to(memory_format=torch.channels_last)
    pts = _cloud(len(exp.dataset.radar.features))
    with torch.no_grad():
        ref = det.encoders["radar"](pts, 1)
        ref_out = det.head_forward(det.fusion({"radar": ref}))
        to_channels_last(det)
        bev = det.encoders["radar"](pts, 1)
        out = det.head_forward(det.fusion({"radar": bev}))
    convs = [m for m in det.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert any(not m.weight.is_contiguous() for m in convs)
    sparse = [p for p in det.parameters() if p.dim() == 5]
    assert sparse and all(p.is_contiguous() for p in sparse)
    torch.testing.assert_close(out.cls_preds, ref_out.cls_preds, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.box_preds, ref_out.box_preds, rtol=1e-4, atol=1e-4)


def test_unregistered_module_attributes_are_converted_too():
    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 8, 3)
            object.__setattr__(self, "teacher", nn.Sequential(nn.Conv2d(4, 4, 3)))  # as the distiller does

    h = to_channels_last(Holder())
    assert "teacher.0.weight" not in h.state_dict()
    assert not h.conv.weight.is_contiguous() and not h.teacher[0].weight.is_contiguous()
    assert h.teacher[0].weight.is_contiguous(memory_format=torch.channels_last)
