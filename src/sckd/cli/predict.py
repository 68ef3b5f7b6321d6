"""``sckd predict MODEL [INPUT...] --out DIR [--plot]``: detections for a split, frames or files.

MODEL is a checkpoint written by ``sckd train`` (``RUN/checkpoints/best.pt``): a radar detector,
an SCKD student, a LiDAR + radar teacher or a LiDAR-only detector; or an ONNX file written by
``sckd export`` (run with onnxruntime: ``pip install 'sckd[deploy]'``).
INPUT is a dataset root (the frames of ``--split``, or ``--frames ID...``) or bare radar point
files (``.bin`` float32 rows or ``.npy``, columns as the model's ``dataset.radar.features``).
Without INPUT: ``--data``, else the dataset root stored with the model.

A model that reads LiDAR reads a dataset root's LiDAR tree as training does (moved into the
radar frame by each frame's calibration). Bare radar files then need their LiDAR clouds,
``--lidar FILE`` once per radar file in the same order (``.bin``/``.npy``, columns as
``dataset.lidar.features``, e.g. x y z reflectance), in the radar frame or moved there by

  --lidar-to-radar T.txt                  a 4x4 or 3x4 rigid matrix, p_radar = T @ [p_lidar, 1]
                                          (12 or 16 numbers row major, an optional 'KEY:' prefix,
                                          '#' comments; or a .npy array)
  --radar-calib R.txt --lidar-calib L.txt KITTI calib files whose Tr_velo_to_cam maps each sensor
                                          to the camera (VoD: radar/ and lidar/training/calib/),
                                          T = inv(Tr_radar) @ Tr_lidar

A LiDAR-only model also takes ``--lidar`` files with no INPUT. A radar-only model ignores
``--lidar`` (with a warning).

  sckd predict teacher.pt /data/view_of_delft --split val --out preds --plot
  sckd predict teacher.pt 00042.bin --lidar lidar_00042.bin --lidar-to-radar T.txt --out preds

Dataset frames give KITTI files (camera frame; ``sckd eval`` reads the folder); bare files give
``<id>.txt`` lines ``class x y z l w h heading score`` in the radar frame (metres, radians) and
the same in ``<id>.json``. ``--plot`` adds a bird's-eye ``<id>.png`` per frame (LiDAR in grey
when the model reads it). One line per frame: points read, detections, milliseconds.
"""

from __future__ import annotations

import argparse

from sckd.cli.train import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="detect objects in a split, frames or bare radar (+ LiDAR) files",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="a checkpoint (.pt) or an exported model (.onnx)")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="dataset roots or .bin/.npy radar files")
    p.add_argument("--data", metavar="ROOT_OR_CFG", help="dataset root, or a config with a dataset "
                   "section (default: the root stored with the model)")
    p.add_argument("--split", default="val", help="split of a dataset root (default: val)")
    p.add_argument("--frames", nargs="+", metavar="ID", help="these frame ids of the dataset root")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the prediction files")
    p.add_argument("--plot", action="store_true", help="also write a bird's-eye PNG per frame")
    lidar = p.add_argument_group("LiDAR for bare radar files (models that read LiDAR: teachers, LiDAR-only)")
    lidar.add_argument("--lidar", action="append", metavar="FILE",
                       help="the .bin/.npy LiDAR cloud of a bare radar INPUT (repeat it for several, in "
                       "the INPUT order)")
    lidar.add_argument("--lidar-to-radar", metavar="MATRIX",
                       help="text or .npy file with the 4x4 / 3x4 LiDAR -> radar matrix (default: the "
                       "clouds are in the radar frame)")
    lidar.add_argument("--radar-calib", metavar="FILE", help="radar KITTI calib file (with --lidar-calib)")
    lidar.add_argument("--lidar-calib", metavar="FILE", help="LiDAR KITTI calib file (with --radar-calib)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override the stored config, e.g. --set model.post.score_threshold=0.05")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="PyTorch device (an .onnx model runs on the CPU)")
    p.add_argument("--threads", type=positive_int, help="ONNX Runtime threads (default: all cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sckd.deploy.lidar_input import LidarFiles
    from sckd.deploy.predict import load_predictor, predict_inputs

    # the LiDAR arguments are checked before the model is loaded: a typo fails at once
    lidar = LidarFiles.from_args(args.lidar, args.lidar_to_radar, args.radar_calib, args.lidar_calib)
    predictor = load_predictor(args.model, data=args.data, overrides=args.overrides, device=args.device,
                               threads=args.threads)
    classes = predictor.exp.dataset.classes
    frames = detections = 0
    seconds = 0.0
    for r in predict_inputs(predictor, args.inputs, args.out, split=args.split, frames=args.frames,
                            plot=args.plot, lidar=lidar):
        print(r.line(classes), flush=True)
        frames += 1
        detections += len(r.detections)
        seconds += r.seconds
    mean = f", {1000 * seconds / frames:.1f} ms/frame" if frames else ""
    print(f"{frames} frames, {detections} detections{mean} -> {args.out}")
    return 0
