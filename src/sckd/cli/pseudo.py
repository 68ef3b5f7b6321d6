"""``sckd pseudo-labels TEACHER_CHECKPOINT --data ROOT [--split train]``: precision and recall
of the teacher's pseudo-labels against ground truth per class at several sigmas, and the sigma
with the best F1 per class -- what to put in ``distill.ssod.sigma`` (one value or one per class).
``--errors SIGMA``: also, by ground range, how many labeled objects have a box above SIGMA at all,
how many at the metric's IoU, and how the others are off (centre, heading, height); what each box
above SIGMA lies on; and the recall by how many points of each sensor lie inside the labeled box.
"""

from __future__ import annotations

import argparse
import math

from sckd.cli.train import non_negative_int, positive_int

DEFAULT_SIGMAS = "0.05,0.1,0.15,0.2,0.25,0.3,0.4,0.5"


def _sigmas(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pseudo-labels", help="how a teacher's pseudo-labels score against GT, per sigma",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="the teacher's checkpoint (written by sckd train)")
    p.add_argument("--data", metavar="ROOT_OR_CFG", help="dataset root or config (default: stored root)")
    p.add_argument("--split", default="train", help="a labeled split (default: train)")
    p.add_argument("--sigmas", type=_sigmas, default=_sigmas(DEFAULT_SIGMAS), metavar="S1,S2,...",
                   help=f"score thresholds to try (default: {DEFAULT_SIGMAS})")
    p.add_argument("--errors", type=float, metavar="SIGMA", help="also show where the boxes above SIGMA "
                   "miss the labeled objects, by ground range (e.g. the student's distill.ssod.sigma)")
    p.add_argument("--min-precision", type=float, default=0.6, metavar="P", help="also print the best recall "
                   "at a precision of at least P over every score threshold, not only --sigmas (default: 0.6)")
    p.add_argument("--every", type=positive_int, default=1, metavar="N", help="use every N-th frame")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--workers", type=non_negative_int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override the stored config, e.g. --set dataset.astyx.fold=1 (as sckd predict)")
    p.set_defaults(func=run)


def _fmt(v: float) -> str:
    return "  -  " if math.isnan(v) else f"{v:5.2f}"


def _share(v: float) -> str:
    return "   -" if math.isnan(v) else f"{v:4.2f}"


def _metres(v: float) -> str:
    return "      -" if math.isnan(v) else f"{v:5.1f} m"


def error_lines(errors: dict[str, list[dict]], sigma: float) -> list[str]:
    """The ``--errors`` table: one block per class, one line per ground-range bin."""
    out = [f"where the boxes above sigma {sigma:g} miss (per labeled object, the box overlapping it most in BEV):",
           "class        range       objects  found  BEV ok  3D ok  centre err  turned >20deg  |dz|"]
    for name, rows in errors.items():
        for r in rows:
            lo, hi = r["range_m"]
            span = f"{lo:g}-{hi:g} m" if hi is not None else (f">= {lo:g} m" if lo > 0 else "all")
            ce = "     -" if math.isnan(r["centre_error_m"]) else f"{r['centre_error_m']:4.2f} m"
            dz = "     -" if math.isnan(r["abs_dz_m"]) else f"{r['abs_dz_m']:4.2f} m"
            out.append(f"{name[:12]:<12} {span:<11} {r['gt']:7d}   {_share(r['found'])}    {_share(r['bev_ok'])}   "
                       f"{_share(r['3d_ok'])}      {ce}           {_share(r['turned'])}  {dz}")
    out.append("found: BEV IoU > 0.1; BEV / 3D ok: at the class's evaluation IoU; centre error, turned and |dz| "
               "over the found ones (heading modulo 180 deg)")
    return out


def fate_lines(fates: dict[str, list[dict]], sigma: float) -> list[str]:
    """The precision side of ``--errors``: what each box above sigma lies on."""
    out = [f"what the boxes above sigma {sigma:g} lie on (per box):",
           "class        lies on                  boxes  share  median range  centre in image"]
    for name, rows in fates.items():
        for r in rows:
            out.append(f"{name[:12]:<12} {r['fate']:<22} {r['boxes']:6d}   {_share(r['share'])}       "
                       f"{_metres(r['median_range_m'])}             {_share(r['in_image'])}")
    out.append("match: 3D IoU above the class's threshold (greedy by score, as precision counts it); on its class, "
               "off: BEV IoU > 0.1 with a box of its class (misplaced, or a second box); on another class: "
               "a labeled box of any other class, evaluated or not")
    return out


def points_lines(by_points: dict[str, dict[str, list[dict]]], sigma: float) -> list[str]:
    """Which labeled objects a sensor sees at all: recall by the points inside their box."""
    out = [f"recall above sigma {sigma:g} by the points of each sensor inside the labeled box (per labeled object):",
           "class        sensor  points   objects  share  median range  recall"]
    for name, sensors in by_points.items():
        for sensor, rows in sensors.items():
            for r in rows:
                lo, hi = r["points"]
                span = f"{lo}" if hi == lo + 1 else (f"{lo}-{hi - 1}" if hi is not None else f">= {lo}")
                out.append(f"{name[:12]:<12} {sensor:<7} {span:<8} {r['objects']:7d}   {_share(r['share'])}       "
                           f"{_metres(r['median_range_m'])}    {_share(r['recall'])}")
    out.append("an object with no point of a sensor inside is invisible to that sensor; the recall of a bin counts "
               "its objects matched as in the table above")
    return out


def run(args: argparse.Namespace) -> int:
    from sckd.experiment.pseudo_stats import pseudo_label_quality

    rep = pseudo_label_quality(args.checkpoint, args.sigmas, data=args.data, split=args.split, every=args.every,
                               device=args.device, workers=args.workers, errors_sigma=args.errors,
                               overrides=args.overrides, min_precision=args.min_precision)
    print(f"teacher pseudo-labels on {rep.frames} frames of '{args.split}' (precision / recall per class)")
    print("sigma  boxes/frame | " + " | ".join(f"{c[:10]:>13}" for c in rep.classes))
    for r in rep.rows:
        cells = " | ".join(f"{_fmt(p)} / {_fmt(rc)}" for p, rc in zip(r["precision"], r["recall"]))
        print(f"{r['sigma']:5.2f}  {r['boxes_per_frame']:11.1f} | {cells}")
    print(f"best F1 per class: distill.ssod.sigma=[{', '.join(f'{s:g}' for s in rep.best_f1_sigma)}]  "
          f"({', '.join(rep.classes)})")

    def best(b: dict) -> str:
        if math.isnan(b["lowest_score"]):
            return "-" if math.isnan(b["recall"]) else "none"
        return f"{b['recall']:.3f} (sigma just below {b['lowest_score']:.3f})"

    floor = min(args.sigmas + ([args.errors] if args.errors is not None else []))  # what the model kept
    print(f"best recall at precision >= {args.min_precision:g} over every threshold above {floor:g}: "
          + ", ".join(f"{c} {best(b)}" for c, b in zip(rep.classes, rep.best_recall)))
    if 0 < rep.sigma_choice_frames != rep.frames:  # a model trained on part of the labels
        print(f"the same on the {rep.sigma_choice_frames} frames whose labels it trained on (where a student's "
              "sigma may be chosen): " + ", ".join(f"{c} {best(b)}" for c, b in zip(rep.classes, rep.sigma_choice)))

    def about(n: int, o: int, img: float) -> str:
        notes = ([] if math.isnan(img) else [f"{img:.2f} centred in the camera image"]) + (
            [f"{o} centred outside dataset.point_cloud_range: no anchor reaches them, each counted as a miss"] if o else [])
        return f"{n}" + (f" ({'; '.join(notes)})" if notes else "")

    print("labeled objects: " + ", ".join(f"{c} {about(n, o, img)}" for c, n, o, img in
                                          zip(rep.classes, rep.labeled, rep.outside_range, rep.labeled_in_image)))
    if args.errors is not None:
        print("\n" + "\n".join(error_lines(rep.errors, args.errors)))
        print("\n" + "\n".join(fate_lines(rep.fates, args.errors)))
        print("\n" + "\n".join(points_lines(rep.by_points, args.errors)))
    return 0
