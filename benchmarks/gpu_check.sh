#!/usr/bin/env bash
# CUDA checks for a machine with a GPU (never needed by `make test`):
#   bash benchmarks/gpu_check.sh            # from the repository root, sckd installed
# 1. the tests that need CUDA (voxelizer on the device, DDP on NCCL, ...) and the on-device NMS
#    route against the CPU one;
# 2. training steps of the paper-size configs (teacher, GT baseline), timed; the SCKD student's
#    step needs a trained teacher checkpoint and is not in this script yet;
# 3. single-frame student inference (PointPillars and SECOND at the VoD grid), timed;
# with the nvidia-smi line of the device.
set -euo pipefail
PY=${PY:-python}
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

echo "== 1. CUDA tests"
$PY -m pytest -q -p no:cacheprovider tests/test_voxelize.py tests/test_engine_ddp.py tests/test_nms.py -k "cuda or CUDA or nms or ddp"
$PY benchmarks/nms_device_check.py

echo "== 2. training steps (paper-size VoD configs, random VoD-layout data)"
$PY benchmarks/bench_train.py experiments/vod/teacher experiments/vod/second_radar_gt \
    --device cuda --steps 10 --warmup 3 --batch-size 4

echo "== 3. student inference"
$PY benchmarks/bench_models.py experiments/vod/pointpillars_radar experiments/vod/second_radar --device cuda --runs 20 --warmup 5
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv,noheader
