"""``sckd eval``: the official View-of-Delft metric on a folder of KITTI prediction files."""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

from sckd.errors import SckdError, warnings

log = logging.getLogger("sckd")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="evaluate KITTI prediction files with the official VoD metric",
        description="Evaluate a folder of KITTI prediction files (one <frame>.txt per frame) against a "
                    "split's labels: 3D / BEV AP and AOS per class, R11 (and R40), in the entire "
                    "annotated area and the driving corridor. A frame without a prediction file counts "
                    "as having no detections.")
    p.add_argument("--data", required=True, metavar="CONFIG_OR_ROOT",
                   help="a dataset root (VoD layout, or Astyx: the folder with dataset.json), or a dataset/experiment config (name or YAML)")
    p.add_argument("--root", help="dataset root when --data is a config without one")
    p.add_argument("--split", default="val", help="split to evaluate (default val)")
    p.add_argument("--pred", required=True, metavar="DIR", help="folder of <frame>.txt prediction files")
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON (official key names)")
    p.add_argument("--r40", action="store_true", help="also print AP|R40 rows")
    p.add_argument("--iou-mode", choices=["official", "exact"],
                   help="BEV overlap routine: the official tool's float32 one (default) or exact")
    p.add_argument("--range-difficulty", type=float, nargs="+", metavar="M",
                   help="extra regions by range, e.g. 30 50 80 (ZJUODset style)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="config override, e.g. eval.min_height_px=40 (repeatable)")
    p.set_defaults(func=run)


def _load(args: argparse.Namespace):
    from sckd.config import from_dict
    from sckd.data.resolve import resolve_dataset_tree
    from sckd.eval.config import EvalConfig

    dcfg, raw = resolve_dataset_tree(args.data, root=args.root, overrides=args.overrides,
                                     sections=("dataset", "eval"))
    if not dcfg.root:
        raise SckdError(f"{args.data}: no dataset root (give a root folder as --data, or --root)")
    ecfg = from_dict(EvalConfig, raw.get("eval") or {}, "eval")
    if args.iou_mode:
        ecfg.iou_mode = args.iou_mode
    if args.range_difficulty:
        ecfg.range_difficulty = list(args.range_difficulty)
        ecfg.validate("eval")
    return dcfg, ecfg


def run(args: argparse.Namespace) -> int:
    from sckd.eval.report import format_table
    from sckd.eval.sources import evaluate_folder

    dcfg, ecfg = _load(args)
    result = evaluate_folder(dcfg, args.split, args.pred, ecfg)
    if result.num_frames and len(result.missing_predictions) == result.num_frames:
        # Almost always the wrong folder or file naming; an AP of 0 would hide that.
        raise SckdError(f"{args.pred}: no prediction file for any of the {result.num_frames} frames "
                        f"of split '{args.split}' (expected <frame>.txt, e.g. "
                        f"{result.missing_predictions[0]}.txt)")
    print(format_table(result, r40=args.r40))
    if result.missing_predictions:
        log.warning("%d of %d frames have no prediction file in %s; they count as frames without "
                    "detections", len(result.missing_predictions), result.num_frames, args.pred)
    if args.json:
        out = result.to_official_json()
        out["meta"]["missing_prediction_frames"] = result.missing_predictions
        path = Path(args.json)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # NaN (possible only in degenerate sets, as in the official tool) is written as null.
            path.write_text(json.dumps(_no_nan(out), indent=2) + "\n")
        except OSError as e:
            raise SckdError(f"{path}: cannot write JSON ({e.strerror})") from None
        print(f"wrote {path}")
    for line in warnings.summary():
        log.warning("warning: %s", line)
    return 0


def _no_nan(obj):
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_no_nan(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj
