"""``sckd export``: a radar PointPillars student -> one ONNX file that carries its own config.

The graph is :class:`~sckd.deploy.network.PillarNetwork` (dynamic point and pillar counts,
opset 18 for ``ScatterElements`` with ``max`` reduction, the pillar max). The experiment config
and the model signature travel in the file's metadata, so ``sckd predict FILE.onnx`` needs
nothing else: it rebuilds voxelization, anchors, decoding and NMS from that config.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import math
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from sckd.atomic import write_bytes_atomic
from sckd.data.dataset import RadarDataset, collate
from sckd.deploy.network import INPUT_NAMES, ONNX_FORMAT, PillarNetwork
from sckd.deploy.onnx_runtime import OnnxNetwork
from sckd.deploy.quantize import quantize_int8
from sckd.engine import checkpoint as ck
from sckd.errors import SckdError
from sckd.experiment.predict import load_trained_model

log = logging.getLogger("sckd")

OPSET = 18


@dataclass
class ExportSummary:
    path: Path
    size_bytes: int
    max_abs_diff: float | None
    """Largest |PyTorch - ONNX Runtime| over the head outputs on a test cloud (None without
    onnxruntime; for an int8 model it measures the quantization error)."""


def example_cloud(net: PillarNetwork, pillars: int = 48, per_pillar: int = 3, seed: int = 0) -> torch.Tensor:
    """A small batch-0 cloud inside the range, several points per pillar (export needs the
    point count to differ from the pillar count so the two stay separate dynamic sizes)."""
    g = torch.Generator().manual_seed(seed)
    r = torch.tensor(net.encoder.pc_range, dtype=torch.float32)
    centres = r[:3] + torch.rand(pillars, 3, generator=g) * (r[3:] - r[:3]) * 0.98
    xyz = (centres.repeat_interleave(per_pillar, 0)
           + 0.01 * torch.randn(pillars * per_pillar, 3, generator=g)).clamp(r[:3], r[3:] - 1e-3)
    extra = torch.randn(len(xyz), len(net.features) - 3, generator=g)
    return torch.cat([torch.zeros(len(xyz), 1), xyz, extra], dim=1)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _require(module: str) -> None:
    if not _has(module):
        raise SckdError(f"export: the Python package '{module}' is not installed; "
                        "install the deploy extra: pip install 'sckd[deploy]'")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter and its graph optimiser log every pass at INFO; our CLI logs INFO to the
    console, so their loggers are held at ERROR for the export."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript",
                                              "onnx_ir", "torch._dynamo", "torch.fx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


def export_onnx(checkpoint: str | Path, out: str | Path, *, check: bool = True, int8: bool = False,
                data: str | None = None, calib_frames: int = 64) -> ExportSummary:
    """Export the student; ``int8``: then quantize it statically (see :mod:`sckd.deploy.quantize`)
    with ``calib_frames`` frames spread over the train split of ``data`` (default: the stored
    dataset root)."""
    _require("onnx")
    _require("onnxscript")
    checkpoint, out = Path(checkpoint), Path(out).expanduser()
    ckpt = ck.load_checkpoint(checkpoint)
    exp, model = load_trained_model(checkpoint, data, need_root=int8)
    net = PillarNetwork(model.eval(), exp.dataset.radar.features).eval()
    inputs = net.prepare(example_cloud(net))
    n, v = torch.export.Dim("points", min=2), torch.export.Dim("pillars", min=1)
    with warnings.catch_warnings(), torch.no_grad(), _quiet_exporter():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                net, inputs, dynamo=True, opset_version=OPSET, verbose=False,
                input_names=list(INPUT_NAMES), output_names=list(net.output_names),
                dynamic_shapes={"points": {0: n}, "inverse": {0: n}, "coords": {0: v}})
        except Exception as e:  # noqa: BLE001 - the exporter's many failure types, said in one line
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise SckdError(f"{checkpoint}: ONNX export failed ({type(e).__name__}: {first})") from None
    proto = program.model_proto
    meta = {"sckd.format": ONNX_FORMAT, "sckd.config": yaml.safe_dump(ckpt.config, sort_keys=False),
            "sckd.signature": ckpt.signature,
            "sckd.source": checkpoint.name}
    del proto.metadata_props[:]
    for k, val in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, str(val)
    buf = io.BytesIO()
    import onnx

    onnx.save_model(proto, buf)
    blob = buf.getvalue()
    if int8:  # the float model goes to a temporary file: OUT only ever holds the int8 one
        ds = RadarDataset(exp.dataset, "train", with_lidar=False, labeled=False)
        every = max(1, len(ds) // max(1, calib_frames))
        calibration = (net.prepare(collate([ds.load(i)]).radar) for i in range(0, len(ds), every))
        with tempfile.TemporaryDirectory() as tmp:
            quantize_int8(write_bytes_atomic(Path(tmp) / "float.onnx", blob, "ONNX model"), out, calibration)
        blob = out.read_bytes()
    else:
        write_bytes_atomic(out, blob, "ONNX model", mkdirs=True)
    diff = None
    if check and _has("onnxruntime"):
        with torch.no_grad():
            ref = net(*inputs)
        got = OnnxNetwork(out)(*inputs)
        diffs = [float((a - b).abs().max()) for a, b in zip(ref, got)]
        diff = max(diffs)  # (max() skips a NaN that is not first: checked on the list)
        if not all(math.isfinite(d) for d in diffs):
            out.unlink(missing_ok=True)  # a model that computes inf/NaN is not handed out
            raise SckdError(f"{checkpoint}: ONNX self-check failed: PyTorch vs ONNX Runtime max |diff| is "
                            f"{next(d for d in diffs if not math.isfinite(d))} (inf/NaN outputs on a test "
                            f"cloud), so {out} was removed; check the checkpoint's weights")
    log.info("exported %s -> %s (%.1f MB%s)", checkpoint, out, len(blob) / 1e6, ", int8" if int8 else "")
    return ExportSummary(out, len(blob), diff)
