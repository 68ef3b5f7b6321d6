"""Compare sckd's VoD metric with the official tool on random prediction sets.

    python benchmarks/compare_official.py --official /path/to/view-of-delft-dataset [--frames 300]

``--official`` is a checkout of tudelft-iv/view-of-delft-dataset (only ``vod/evaluation`` and
``vod/common`` are imported; numba and numpy are needed, nothing else of its environment).
Every set is evaluated by both tools (prediction files exist for every frame, so the
official tool sees the same frames) and the largest absolute difference per key is printed.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_sets import KINDS, make_eval_set  # noqa: E402

from sckd.eval import EvalConfig, evaluate_label_dirs  # noqa: E402


def load_official(path: Path):
    """The official ``Evaluation`` class, imported without the devkit's visualisation deps."""
    pkg = types.ModuleType("vod")
    pkg.__path__ = [str(path / "vod")]
    sys.modules["vod"] = pkg
    from vod.common.file_handling import get_frame_list_from_folder

    pkg.get_frame_list_from_folder = get_frame_list_from_folder
    from vod.evaluation.evaluate import Evaluation

    return Evaluation


def run_official(evaluation_cls, gt_dir: Path, pred_dir: Path) -> tuple[dict, float]:
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        res = evaluation_cls(test_annotation_file=str(gt_dir)).evaluate(result_path=str(pred_dir),
                                                                          current_class=[0, 1, 2])
    return res, time.perf_counter() - t


def compare(official: dict, ours: dict) -> dict[str, float]:
    diffs = {}
    for region in ("entire_area", "roi"):
        for key, val in official[region].items():
            diffs[f"{region}/{key}"] = abs(float(val) - float(ours[region][key]))
    return diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", required=True, type=Path, help="checkout of view-of-delft-dataset")
    ap.add_argument("--frames", type=int, default=300, help="frames per set (default 300)")
    ap.add_argument("--seeds", type=int, default=2, help="random sets per kind (default 2)")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    args = ap.parse_args()
    evaluation_cls = load_official(args.official.resolve())
    cfg = EvalConfig()
    worst: dict[str, float] = {}
    print(f"{'set':<16} {'max |diff|':>10}  {'worst key':<32} {'EAA mAP':>8} {'official':>8}  t_ours  t_official")
    for kind in args.kinds:
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as tmp:
                s = make_eval_set(tmp, args.frames, seed, kind)
                res_off, t_off = run_official(evaluation_cls, s.gt_dir, s.pred_dir)
                t = time.perf_counter()
                ours = evaluate_label_dirs(s.gt_dir, s.pred_dir, s.frame_ids, cfg, other_classes=list(
                    {"rider", "bicycle", "truck", "moped_scooter", "bicycle_rack", "vehicle_other",
                     "human_depiction", "DontCare"}))
                t_ours = time.perf_counter() - t
            d = compare(res_off, ours.to_official_json())
            key = max(d, key=lambda k: d[k])
            for k, v in d.items():
                worst[k] = max(worst.get(k, 0.0), v)
            off_map = sum(res_off["entire_area"][f"{c}_3d_all"] for c in ("Car", "Pedestrian", "Cyclist")) / 3
            print(f"{kind + '/' + str(seed):<16} {d[key]:>10.2e}  {key:<32} {ours.mAP:>8.3f} {off_map:>8.3f}"
                  f"  {t_ours:5.2f}s  {t_off:6.2f}s")
    print("\nlargest |difference| per key over all sets:")
    for k in sorted(worst):
        print(f"  {k:<34} {worst[k]:.2e}")
    print(f"overall max |difference|: {max(worst.values()):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
