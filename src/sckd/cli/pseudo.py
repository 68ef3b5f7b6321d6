"""``sckd pseudo-labels TEACHER_CHECKPOINT --data ROOT [--split train]``: precision and recall
of the teacher's pseudo-labels against ground truth per class at several sigmas, and the sigma
with the best F1 per class -- what to put in ``distill.ssod.sigma`` (one value or one per class).
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
    p.add_argument("--every", type=positive_int, default=1, metavar="N", help="use every N-th frame")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--workers", type=non_negative_int, default=0)
    p.set_defaults(func=run)


def _fmt(v: float) -> str:
    return "  -  " if math.isnan(v) else f"{v:5.2f}"


def run(args: argparse.Namespace) -> int:
    from sckd.experiment.pseudo_stats import pseudo_label_quality

    names, rows, best, n = pseudo_label_quality(args.checkpoint, args.sigmas, data=args.data,
                                                split=args.split, every=args.every,
                                                device=args.device, workers=args.workers)
    print(f"teacher pseudo-labels on {n} frames of '{args.split}' (precision / recall per class)")
    print("sigma  boxes/frame | " + " | ".join(f"{c[:10]:>13}" for c in names))
    for r in rows:
        cells = " | ".join(f"{_fmt(p)} / {_fmt(rc)}" for p, rc in zip(r["precision"], r["recall"]))
        print(f"{r['sigma']:5.2f}  {r['boxes_per_frame']:11.1f} | {cells}")
    print(f"best F1 per class: distill.ssod.sigma=[{', '.join(f'{s:g}' for s in best)}]  ({', '.join(names)})")
    return 0
