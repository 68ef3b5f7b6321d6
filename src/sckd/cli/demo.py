"""``sckd demo``: the main job on a synthetic world, on a laptop CPU, no download.

    sckd demo                       # ~/.cache/sckd/demo; rerun the same command to continue
    sckd demo --out /tmp/d --quick  # a tiny world and short schedules (about 2 minutes)

Stages: synthetic world (train / val / unlabeled) -> train the LiDAR + radar teacher -> train
the GT-only radar baseline -> distill the SCKD student from the frozen teacher -> predict and
evaluate all three on val with the VoD metric -> figures and ``report.md``. The table shows
3D AP|R11 per class and mAP in the entire annotated area (EAA) and the driving corridor (DC),
and the student's gain over the baseline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train teacher, radar baseline and SCKD student on a synthetic "
                       "world and report (no download)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(Path.home() / ".cache" / "sckd" / "demo"),
                   help="output folder (default ~/.cache/sckd/demo); rerunning continues where it stopped")
    p.add_argument("--quick", action="store_true", help="tiny world, 2 epochs: a smoke test in about 2 minutes")
    p.add_argument("--config", help="demo plan (default: demo/default.yaml, with --quick demo/quick.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override the demo plan, e.g. demo.world.frames=300 (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sckd.config import check_override_sections
    from sckd.report.tables import fmt_duration, format_text_table
    from sckd.workflows.demo import Demo, load_demo_config
    from sckd.workflows.pipeline import StageInterrupted

    t0 = time.perf_counter()
    check_override_sections(args.overrides, ("demo",))
    name = args.config or ("demo/quick.yaml" if args.quick else "demo/default.yaml")
    demo = Demo(Path(args.out).expanduser().resolve(), load_demo_config(name, args.overrides))
    print(f"sckd demo -> {demo.out} ({name}); rerun the same command to continue after an interruption")
    try:
        result = demo.run()
    except StageInterrupted as e:
        print(f"stopped: {e}; rerun the same command to continue")
        return 130
    demo.write_report(result)
    rows, gains = demo.table_rows()
    print()
    print("3D AP|R11 (%) on the synthetic world's val split (VoD metric)")
    print(format_text_table(rows, demo.classes(), gains))
    print()
    notes = demo.summary_notes(result)
    for note in notes[:1] + notes[2:]:  # the second note explains the report's table only
        print(note)
    print(f"This invocation: {fmt_duration(time.perf_counter() - t0)}. "
          f"Report: {demo.out / 'report.md'}; checkpoints: {demo.out / 'checkpoints'}")
    return 0
