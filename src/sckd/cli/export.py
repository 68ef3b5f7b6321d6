"""``sckd export CHECKPOINT --out FILE.onnx``: a radar PointPillars student as one ONNX file.

The graph holds point decoration, the pillar network, the scatter to the BEV grid, the 2D
backbone and the head; voxelization, box decoding and rotated NMS stay outside (run them with
``sckd predict FILE.onnx INPUT...``). The experiment config travels in the file's metadata.
Needs the deploy extra: ``pip install 'sckd[deploy]'``.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a radar student to ONNX", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a student or radar-only checkpoint (.pt)")
    p.add_argument("--out", required=True, metavar="FILE.onnx")
    p.add_argument("--no-check", action="store_true",
                   help="skip the PyTorch vs ONNX Runtime comparison on a test cloud")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sckd.deploy.onnx_export import export_onnx

    s = export_onnx(args.checkpoint, args.out, check=not args.no_check)
    check = "" if s.max_abs_diff is None else f"; PyTorch vs ONNX Runtime max |diff| {s.max_abs_diff:.2e}"
    print(f"{s.path} ({s.size_bytes / 1e6:.1f} MB){check}")
    return 0
