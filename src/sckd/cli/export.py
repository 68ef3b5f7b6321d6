"""``sckd export CHECKPOINT --out FILE.onnx``: a radar PointPillars student as one ONNX file.

The graph holds point decoration, the pillar network, the scatter to the BEV grid, the 2D
backbone and the head; voxelization, box decoding and rotated NMS stay outside (run them with
``sckd predict FILE.onnx INPUT...``). The experiment config travels in the file's metadata.
Teachers and LiDAR-only models (they read LiDAR) and SECOND models (sparse convs) are not
exported: ``sckd predict CHECKPOINT ...`` runs them in PyTorch.
``--int8`` quantizes the convolutions statically (ONNX Runtime, QDQ), calibrated on training
frames. Needs the deploy extra: ``pip install 'sckd[deploy]'``.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a radar PointPillars model (a student) to ONNX", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a student or radar-only checkpoint (.pt)")
    p.add_argument("--out", required=True, metavar="FILE.onnx")
    p.add_argument("--int8", action="store_true", help="quantize the convolutions to int8 (static, "
                   "calibrated on training frames of the dataset)")
    p.add_argument("--data", metavar="ROOT", help="dataset root for --int8 calibration (default: the stored root)")
    p.add_argument("--calib-frames", type=int, default=64, metavar="N", help="calibration frames (default 64)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the PyTorch vs ONNX Runtime comparison on a test cloud")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sckd.deploy.onnx_export import export_onnx
    from sckd.errors import SckdError
    from sckd.experiment.config import load_experiment_checkpoint
    from sckd.experiment.predict import export_refusal

    # said before any exporter is needed: the model family decides, not the installed packages
    if why := export_refusal(load_experiment_checkpoint(args.checkpoint).config):
        raise SckdError(f"{args.checkpoint}: {why}; run it with sckd predict {args.checkpoint} ROOT")
    s = export_onnx(args.checkpoint, args.out, check=not args.no_check, int8=args.int8, data=args.data,
                    calib_frames=args.calib_frames)
    check = "" if s.max_abs_diff is None else f"; PyTorch vs ONNX Runtime max |diff| {s.max_abs_diff:.2e}"
    print(f"{s.path} ({s.size_bytes / 1e6:.1f} MB){check}")
    return 0
