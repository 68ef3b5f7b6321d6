"""``sckd view ROOT --out FILE.rrd``: frames in 3D as a Rerun recording.

Radar points coloured by radial velocity, LiDAR grey, the GT boxes, and the boxes of each
``--model`` (a checkpoint or ``.onnx``, run on the frames) and each ``--pred`` folder (what
``sckd predict`` wrote) as named entities; the camera image where the dataset has one. One step
of the recording's ``frame`` timeline per frame. Open it with ``rerun FILE.rrd`` or ``--spawn``.
Needs the Rerun SDK: ``pip install 'sckd[viz]'``.

  sckd view WORLD --frames 00001 00002 --out world.rrd
  sckd view ASTYX_ROOT --split val --max-frames 3 --model RUN/checkpoints/best.pt --out astyx.rrd --spawn
"""

from __future__ import annotations

import argparse
import logging

from sckd.cli.train import positive_int
from sckd.errors import SckdError, warnings

log = logging.getLogger("sckd")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="write a 3D Rerun recording (.rrd) of frames with GT and predicted boxes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", metavar="ROOT", help="dataset root (VoD, KITTI layout, Astyx, a synthetic world)")
    p.add_argument("--dataset", default=None, help="vod | tj4d | synth | astyx | PATH.yaml (default: "
                   "recognised from the folder)")
    p.add_argument("--split", default="val", help="split the frames come from (default val)")
    p.add_argument("--frames", nargs="+", metavar="ID", help="these frame ids (default: the first of --split)")
    p.add_argument("--max-frames", type=positive_int, default=5, metavar="N",
                   help="without --frames: the first N frames of --split (default 5)")
    p.add_argument("--model", action="append", default=[], metavar="MODEL",
                   help="a checkpoint (.pt) or exported model (.onnx) to run on the frames (repeatable)")
    p.add_argument("--pred", action="append", default=[], metavar="DIR",
                   help="a folder written by sckd predict (repeatable)")
    p.add_argument("--min-score", type=float, default=0.0, metavar="S",
                   help="show predicted boxes scoring at least S (default: all)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="dataset config override, e.g. dataset.radar.tree=radar (repeatable)")
    p.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE", dest="model_overrides",
                   help="override the models' stored configs, e.g. model.post.score_threshold=0.05 (repeatable)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="PyTorch device for --model")
    p.add_argument("--out", required=True, metavar="FILE.rrd", help="the recording to write")
    p.add_argument("--spawn", action="store_true", help="open the Rerun viewer on it (when a display exists)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sckd.report.rerun_view import open_viewer, require_rerun, write_recording

    require_rerun()  # before any data is read: a missing extra fails at once
    from sckd.data.resolve import resolve_dataset
    from sckd.deploy.view import gather

    if not args.out.endswith(".rrd"):
        raise SckdError(f"--out {args.out}: a Rerun recording is written to a .rrd file")
    cfg = resolve_dataset(args.dataset or args.root, root=args.root, overrides=args.overrides)
    frames = gather(cfg, split=args.split, frames=args.frames, max_frames=args.max_frames, models=args.model,
                    preds=args.pred, min_score=args.min_score, device=args.device,
                    model_overrides=args.model_overrides)
    path = write_recording(frames, args.out, cfg.radar.features, cfg.classes, application=f"sckd {cfg.name}")
    sets = ", ".join(s.name for s in frames[0].box_sets) if frames else ""
    print(f"wrote {path}: {len(frames)} frame(s) of {cfg.name}"
          f"{' with GT' if frames and frames[0].frame.has_labels else ''}{', boxes of ' + sets if sets else ''}")
    if args.spawn:
        if open_viewer(path):
            print("opened the Rerun viewer")
        else:
            print(f"no display here: open it where there is one with `rerun {path}`")
    for line in warnings.summary():
        log.warning("warning: %s", line)
    return 0
