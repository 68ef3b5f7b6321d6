"""``sckd predict MODEL [INPUT...] --out DIR [--plot]``: detections for a split, frames or files.

MODEL is a checkpoint written by ``sckd train`` (``RUN/checkpoints/best.pt``) or an ONNX file
written by ``sckd export`` (run with onnxruntime: ``pip install 'sckd[deploy]'``).
INPUT is a dataset root (the frames of ``--split``, or ``--frames ID...``) or bare radar point
files (``.bin`` float32 rows or ``.npy``, columns as the model's ``dataset.radar.features``).
Without INPUT: ``--data``, else the dataset root stored with the model.

Dataset frames give KITTI files (camera frame; ``sckd eval`` reads the folder); bare files give
``<id>.txt`` lines ``class x y z l w h heading score`` in the radar frame (metres, radians) and
the same in ``<id>.json``. ``--plot`` adds a bird's-eye ``<id>.png`` per frame.
"""

from __future__ import annotations

import argparse

from sckd.cli.train import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="detect objects in a split, frames or bare radar files",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="a checkpoint (.pt) or an exported model (.onnx)")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="dataset roots or .bin/.npy radar files")
    p.add_argument("--data", metavar="ROOT_OR_CFG", help="dataset root, or a config with a dataset "
                   "section (default: the root stored with the model)")
    p.add_argument("--split", default="val", help="split of a dataset root (default: val)")
    p.add_argument("--frames", nargs="+", metavar="ID", help="these frame ids of the dataset root")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the prediction files")
    p.add_argument("--plot", action="store_true", help="also write a bird's-eye PNG per frame")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override the stored config, e.g. --set model.post.score_threshold=0.05")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="PyTorch device (an .onnx model runs on the CPU)")
    p.add_argument("--threads", type=positive_int, help="ONNX Runtime threads (default: all cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sckd.deploy.predict import load_predictor, predict_inputs

    predictor = load_predictor(args.model, data=args.data, overrides=args.overrides, device=args.device,
                               threads=args.threads)
    classes = predictor.exp.dataset.classes
    frames = detections = 0
    for r in predict_inputs(predictor, args.inputs, args.out, split=args.split, frames=args.frames,
                            plot=args.plot):
        print(r.line(classes), flush=True)
        frames += 1
        detections += len(r.detections)
    print(f"{frames} frames, {detections} detections -> {args.out}")
    return 0
