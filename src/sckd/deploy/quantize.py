"""Static int8 quantization of an exported student (ONNX Runtime, QDQ format).

Only the convolutions are quantized (weights per output channel, activations per tensor): they
hold nearly all of the student's arithmetic; the pillar network's scatter and max and the small
linears stay float32. Activation ranges are calibrated on training frames (min/max over
``frames``), run through the float model. The result carries the float model's metadata, so
``sckd predict FILE.onnx`` runs it unchanged.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from sckd.atomic import write_bytes_atomic
from sckd.deploy.network import INPUT_NAMES
from sckd.errors import SckdError


def quantize_int8(float_onnx: str | Path, out: str | Path,
                  calibration: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> Path:
    """``calibration``: network inputs (points, inverse, coords) of training frames."""
    try:
        import onnx
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                              QuantType, quantize_static)
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise SckdError("int8 export needs onnx and onnxruntime: pip install 'sckd[deploy]'") from None

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it: Iterator = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {n: t.numpy() for n, t in zip(INPUT_NAMES, x)}

    float_onnx, out = Path(float_onnx), Path(out)
    meta = {p.key: p.value for p in onnx.load(str(float_onnx), load_external_data=False).metadata_props}
    with tempfile.TemporaryDirectory() as tmp:
        pre, q = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        # no graph optimisation here: it folds the zero BEV canvas (which the scatter fills) into
        # a constant (H x W x C floats, 3.3 MB at 160 x 160 x 32), which made the int8 file larger
        # than the float one; ONNX Runtime optimises the graph when it loads it anyway
        quant_pre_process(str(float_onnx), str(pre), skip_optimization=True, skip_symbolic_shape=True)
        quantize_static(str(pre), str(q), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
        model = onnx.load(str(q))
    del model.metadata_props[:]
    for k, v in {**meta, "sckd.quantization": "int8 QDQ, Conv only, per-channel weights, min/max calibration"}.items():
        e = model.metadata_props.add()
        e.key, e.value = k, v
    write_bytes_atomic(out, model.SerializeToString(), "ONNX model", mkdirs=True)
    return out
