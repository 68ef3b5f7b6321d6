"""On-device rotated NMS keeps the same boxes as the CPU route (needs CUDA; benchmarks/gpu_check.sh)."""
import numpy as np, torch
from sckd.ops.nms import batched_nms_bev
rng = np.random.default_rng(0)
b = np.zeros((3000, 7)); b[:, :2] = rng.uniform(-40, 40, (3000, 2)); b[:, 3:6] = rng.uniform(0.5, 4.5, (3000, 3))
b[:, 6] = rng.uniform(-np.pi, np.pi, 3000)
boxes, scores, labels = torch.tensor(b), torch.tensor(rng.uniform(0, 1, 3000)), torch.tensor(rng.integers(0, 3, 3000))
cpu = batched_nms_bev(boxes, scores, labels, [0.1, 0.01, 0.5])
gpu = batched_nms_bev(boxes.cuda(), scores.cuda(), labels.cuda(), [0.1, 0.01, 0.5])
assert gpu.device.type == "cuda" and gpu.cpu().tolist() == cpu.tolist(), "device NMS differs from the CPU route"
print(f"on-device NMS: same {len(cpu)} boxes kept as the CPU route")
