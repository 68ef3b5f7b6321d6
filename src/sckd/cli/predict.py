"""``sckd predict CHECKPOINT --data ROOT --split val --out DIR``: KITTI-format prediction files.

The checkpoint's stored config rebuilds the model; ``--data`` gives the dataset root (or a YAML
file with a ``dataset:`` section). One ``<frame>.txt`` per frame of the split is written to
``DIR`` (``sckd eval`` reads that folder).
"""

from __future__ import annotations

import argparse

from sckd.cli.train import _non_negative_int, _positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="write KITTI prediction files for a split",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint written by sckd train (e.g. RUN/checkpoints/best.pt)")
    p.add_argument("--data", metavar="ROOT_OR_CFG", help="dataset root, or a config with a dataset "
                   "section (default: the root stored in the checkpoint)")
    p.add_argument("--split", default="val", help="split to predict (default: val)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the prediction files")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override the stored config, e.g. --set model.post.score_threshold=0.05")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--workers", type=_non_negative_int)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sckd.engine.predict import predict_checkpoint

    s = predict_checkpoint(args.checkpoint, args.out, data=args.data, split=args.split,
                           overrides=args.overrides, device=args.device, batch_size=args.batch_size,
                           workers=args.workers)
    print(f"{s.frames} frames, {s.detections} detections -> {s.out_dir}")
    return 0
