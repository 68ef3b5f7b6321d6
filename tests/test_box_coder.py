import math

import torch

from sckd.ops.box_coder import add_sin_difference, decode_boxes, encode_boxes


def test_encode_hand_worked():
    anchor = torch.tensor([[10.0, 2.0, -1.0, 3.0, 4.0, 2.0, 0.0]])  # diagonal 5
    box = torch.tensor([[13.0, -2.0, 0.0, 6.0, 4.0, 1.0, 0.5]])
    t = encode_boxes(box, anchor)
    expected = torch.tensor([[0.6, -0.8, 0.5, math.log(2.0), 0.0, math.log(0.5), 0.5]])
    torch.testing.assert_close(t, expected)


def test_roundtrip_random():
    g = torch.Generator().manual_seed(0)
    anchors = torch.cat([torch.randn(50, 3, generator=g) * 10, torch.rand(50, 3, generator=g) * 3 + 0.3,
                         torch.rand(50, 1, generator=g) * 3], 1)
    boxes = torch.cat([torch.randn(50, 3, generator=g) * 10, torch.rand(50, 3, generator=g) * 3 + 0.3,
                       (torch.rand(50, 1, generator=g) - 0.5) * 6], 1)
    torch.testing.assert_close(decode_boxes(encode_boxes(boxes, anchors), anchors), boxes, atol=1e-4, rtol=1e-5)


def test_sin_difference_is_sine_of_angle_difference():
    pred = torch.tensor([[0.1, 0, 0, 0, 0, 0, 1.0], [0, 0, 0, 0, 0, 0, 0.3 + math.pi]])
    tgt = torch.tensor([[0.0, 0, 0, 0, 0, 0, 0.4], [0, 0, 0, 0, 0, 0, 0.3]])
    p, t = add_sin_difference(pred, tgt)
    torch.testing.assert_close(p[:, :6], pred[:, :6])
    torch.testing.assert_close(t[:, :6], tgt[:, :6])
    torch.testing.assert_close(p[:, 6] - t[:, 6], torch.tensor([math.sin(0.6), 0.0]), atol=1e-6, rtol=0)
