"""``sckd reproduce TABLE``: train, evaluate and tabulate one of the SCKD paper's experiment sets.

    sckd reproduce table3                         # on a synthetic world made in OUT/world
    sckd reproduce table1 --data my_vod.yaml      # on View-of-Delft (dataset config with its root)
    sckd reproduce table1 --data /data/vod        # or the VoD root folder itself
    sckd reproduce table5 --set train.epochs=4    # override every run's config
    sckd reproduce astyx --data ASTYX_ROOT        # real radar + LiDAR, 3 splits, mean +- std
    sckd reproduce cross --data ASTYX_ROOT --transfer WORLD   # trained on Astyx, also scored on a world
    sckd reproduce study --data ASTYX_ROOT --out OUT --report  # the table of what is finished so far
    sckd reproduce study ... --report --save KEEP  # + markers, results, needed checkpoints: resume elsewhere

Tables: table1 (baseline vs. SCKD), table3 (ablation of the distillation terms), table4 (1/4
of the labels), table5 (teacher variants), astyx (teacher, baseline, student, SSOD and the
label-scarce rows on Astyx HiRes2019, each on 3 splits); on Astyx or the synthetic world, 3
splits / seeds each: study (the ablation rows), candidates (feature-term settings), sigma (the
pseudo-label threshold), cross (models on the radar features both sets have, with --transfer
to score them on the other set). The runs use experiments/<family>/ configs; on VoD they follow
the paper's 80-epoch schedule (a GPU job). The table (``OUT/TABLE.md``, ``.txt``, ``.json``,
e.g. ``study.md``) and every run, checkpoint and prediction folder go to ``--out``; rerun the
same command to continue after an interruption.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sckd.errors import SckdError


def register(sub: argparse._SubParsersAction) -> None:
    from sckd.config import CONFIG_ROOT

    # every configs/reproduce/<name>.yaml is a table (the engine is not imported for help text)
    TABLES = sorted(p.stem for p in (CONFIG_ROOT / "reproduce").glob("*.yaml"))
    p = sub.add_parser("reproduce", help="run one of the paper's experiment sets and write its table",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", choices=TABLES)
    p.add_argument("--data", metavar="CONFIG", help="dataset config (with dataset.root) or root folder; "
                   "default: a synthetic world made in OUT/world")
    p.add_argument("--out", help="output folder (default ~/.cache/sckd/reproduce/<table>-<data>)")
    p.add_argument("--transfer", metavar="DATA", help="also score every radar model on this other dataset "
                   "(a folder or config; study-like tables), read with the features the model uses")
    p.add_argument("--report", action="store_true", help="write the table of the runs finished so far and "
                   "stop (runs nothing; rows with fewer splits done say how many)")
    p.add_argument("--save", metavar="DIR", help="with --report: also copy the finished stages' markers and "
                   "results (a few KB each), and the checkpoints of finished trainings that a stage still "
                   "to run reads (a teacher of untrained students), to DIR; copied back into an OUT on "
                   "another machine (cp -r DIR/. OUT/), the same command trains only what is left")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override every run's experiment config, e.g. train.epochs=4 (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sckd.workflows.pipeline import StageInterrupted
    from sckd.workflows.reproduce import Reproduction, choose_data

    family = choose_data(args.data).family
    out = Path(args.out).expanduser().resolve() if args.out else \
        Path.home() / ".cache" / "sckd" / "reproduce" / f"{args.table}-{family}"
    rep = Reproduction(out, args.table, args.data, args.overrides, transfer=args.transfer)
    if args.report:
        if not out.is_dir():
            raise SckdError(f"{out}: no such folder; --report reads the runs of an earlier "
                            f"`sckd reproduce {args.table} --out {out}`")
        result, n = rep.finished()
        path, text = rep.write(result)
        print(f"{text}\n\n{len(result.records)} of {n} stages finished; wrote {path}")
        if args.save:
            k = rep.save_state(Path(args.save).expanduser())
            print(f"saved {k} marker, result and checkpoint files to {args.save} (cp -r {args.save}/. {out}/ to resume there)")
        return 0
    if args.save:
        raise SckdError("--save: goes with --report (it copies the finished stages' markers and results)")
    print(f"sckd reproduce {args.table} -> {out} ({family}); rerun the same command to continue")
    try:
        result = rep.run()
    except StageInterrupted as e:
        print(f"stopped: {e}; rerun the same command to continue")
        return 130
    path, text = rep.write(result)
    print()
    print(text)
    print(f"\nwrote {path}")
    return 0
