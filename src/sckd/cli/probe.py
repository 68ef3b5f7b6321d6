"""``sckd probe CHECKPOINT... --data ROOT``: a linear probe of box occupancy from each BEV map
(every encoder branch, and the fused map) of each model -- does the teacher's LiDAR map know
where the objects are better than a radar map does? ROC-AUC and AP on the validation split."""

from __future__ import annotations

import argparse
import json

from sckd.cli.train import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="linear probe of box occupancy from each model's BEV maps",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="checkpoints (a teacher, radar students, ...)")
    p.add_argument("--data", metavar="ROOT_OR_CFG", help="dataset root or config (default: stored root)")
    p.add_argument("--train-split", default="train", help="split the probe is fitted on (default train)")
    p.add_argument("--val-split", default="val", help="split it is scored on (default val)")
    p.add_argument("--negatives", type=positive_int, default=200, help="empty cells drawn per frame (default 200)")
    p.add_argument("--every", type=positive_int, default=1, metavar="N", help="use every N-th frame")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from sckd.atomic import write_text_atomic
    from sckd.experiment.probe import probe

    rows = probe(args.checkpoints, data=args.data, train_split=args.train_split, val_split=args.val_split,
                 negatives=args.negatives, every=args.every)
    print(f"linear probe of box occupancy: fitted on '{args.train_split}', scored on '{args.val_split}'")
    print(f"{'model':<16} {'map':<8} {'C':>4} {'train cells':>11} {'val +/-':>13} {'AUC':>6} {'AP':>6}")
    for r in rows:
        print(f"{r.model:<16} {r.map:<8} {r.channels:>4} {r.train_cells:>11} "
              f"{f'{r.val_positives}/{r.val_negatives}':>13} {r.auc:6.3f} {r.ap:6.3f}")
    if args.json:
        write_text_atomic(args.json, json.dumps([asdict(r) for r in rows], indent=1), "probe result")
    return 0
