"""Time sckd's VoD metric on a 1296-frame prediction set (the size of VoD val).

    python benchmarks/bench_eval.py [--frames 1296] [--official /path/to/view-of-delft-dataset]

Builds a synthetic VoD-layout split (GT with jittered / dropped / duplicated / renamed
predictions and false positives, see ``eval_sets.py``), then times ``evaluate_folder`` (reading
every label and prediction file included) in a fresh process state ("first call": numba
kernels loaded from the on-disk cache, or compiled when there is none) and again ("repeat").
With ``--official`` the official tool runs on the same files and the ratio is printed
(its first call includes numba compilation, which it cannot cache), then both again as whole
processes (``sckd eval`` on the folder vs a Python process running the official tool): the
user's view, where start-up and imports count. Targets: < 10 s on 2 cores; whole process
20x faster than the official tool (issue 14: ``sckd eval`` imports no torch).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_sets import make_eval_set  # noqa: E402


OFFICIAL_PROCESS = """
import sys
from pathlib import Path
sys.path.insert(0, {bench!r})
from compare_official import load_official, run_official
run_official(load_official(Path({official!r})), Path({gt!r}), Path({pred!r}))
"""


def _process_seconds(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1296)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--official", type=Path, help="checkout of view-of-delft-dataset to time beside ours")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        s = make_eval_set(tmp, args.frames, args.seed, "jitter", vod_root=True)
        n_gt = sum(len(p.read_text().splitlines()) for p in s.gt_dir.glob("*.txt"))
        n_dt = sum(len(p.read_text().splitlines()) for p in s.pred_dir.glob("*.txt"))
        print(f"built {args.frames} frames ({n_gt} GT objects, {n_dt} detections) in {time.perf_counter() - t:.1f} s")

        t = time.perf_counter()
        from sckd.data.resolve import resolve_dataset
        from sckd.eval import EvalConfig, evaluate_folder
        from sckd.eval.report import format_table

        t_import = time.perf_counter() - t
        dcfg = resolve_dataset("vod", root=tmp)
        times = []
        for _ in range(2):
            t = time.perf_counter()
            res = evaluate_folder(dcfg, "val", s.pred_dir, EvalConfig())
            times.append(time.perf_counter() - t)
        print(format_table(res))
        print(f"sckd: import {t_import:.2f} s, first call {times[0]:.2f} s, repeat {times[1]:.2f} s")

        if args.official:
            from compare_official import compare, load_official, run_official

            evaluation_cls = load_official(args.official.resolve())
            res_off, t_off1 = run_official(evaluation_cls, s.gt_dir, s.pred_dir)
            _, t_off2 = run_official(evaluation_cls, s.gt_dir, s.pred_dir)
            diff = max(compare(res_off, res.to_official_json()).values())
            print(f"official: first call {t_off1:.2f} s, repeat {t_off2:.2f} s; max |AP difference| {diff:.2e}")
            print(f"speed-up: first call x{t_off1 / times[0]:.1f}, repeat x{t_off2 / times[1]:.1f}")
            # Whole processes, as a user runs them: interpreter start, imports, reading, metric.
            ours = [sys.executable, "-m", "sckd", "-q", "eval", "--data", tmp, "--pred", str(s.pred_dir)]
            official = [sys.executable, "-c", OFFICIAL_PROCESS.format(bench=str(Path(__file__).resolve().parent),
                        official=str(args.official.resolve()), gt=str(s.gt_dir), pred=str(s.pred_dir))]
            t_ours = [_process_seconds(ours) for _ in range(3)]
            t_off = [_process_seconds(official) for _ in range(2)]
            print(f"whole process: sckd eval {min(t_ours):.2f} s (best of 3), official {min(t_off):.2f} s "
                  f"(best of 2): x{min(t_off) / min(t_ours):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
