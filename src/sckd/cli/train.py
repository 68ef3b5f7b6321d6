"""``sckd train CONFIG``: train a detector from an experiment config.

    sckd train experiments/synth/pointpillars_radar --data /data/synth --epochs 2
    sckd train CONFIG --out ~/runs/a          # continues automatically if ~/runs/a has checkpoints
    sckd train CONFIG --resume                # continue the newest run of this experiment
    sckd train CONFIG --resume RUN_DIR_OR_CKPT
    torchrun --nproc_per_node=2 -m sckd train CONFIG ...   # DDP, same arguments

The resolved config, ``train.log``, TensorBoard scalars (``tb/``) and checkpoints go to the run
directory (default ``~/.cache/sckd/runs/<experiment>-<timestamp>``, never the source tree).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sckd.errors import SckdError


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a detector (single process or under torchrun)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="experiment config (path or name under configs/, e.g. "
                   "experiments/synth/pointpillars_radar)")
    p.add_argument("--out", metavar="DIR", help="run directory (default: a new folder under "
                   "~/.cache/sckd/runs); an existing one with checkpoints is continued")
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="PATH",
                   help="continue from a checkpoint or run directory; without PATH: the --out "
                   "directory or the newest run of this experiment")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config value, e.g. --set train.lr=0.003 (repeatable)")
    p.add_argument("--data", metavar="ROOT", help="dataset root (sets dataset.root)")
    p.add_argument("--epochs", type=positive_int, help="sets train.epochs")
    p.add_argument("--batch-size", type=positive_int, help="frames per step per process (train.batch_size)")
    p.add_argument("--workers", type=non_negative_int, help="data-loading workers (train.workers)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="sets train.device")
    p.add_argument("--max-steps", type=positive_int, help="stop after N steps (train.max_steps), "
                   "with a checkpoint to continue from")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.set_defaults(func=run)


def cli_overrides(args: argparse.Namespace) -> list[str]:
    """The config overrides the flags stand for (applied after --set, so flags win).
    ``--data`` is set on the loaded config directly (a path is not YAML)."""
    out = list(args.overrides)
    for flag, key in (("epochs", "epochs"), ("batch_size", "batch_size"), ("workers", "workers"),
                      ("device", "device"), ("max_steps", "max_steps")):
        v = getattr(args, flag)
        if v is not None:
            out.append(f"train.{key}={v}")
    if args.no_progress:
        out.append("train.progress=false")
    return out


def choose_run_dir(args: argparse.Namespace, name: str) -> tuple[Path, Path | None]:
    """(run directory, explicit checkpoint or run folder to resume from)."""
    from sckd.engine.rundir import latest_run_dir, new_run_dir

    out = Path(args.out).expanduser().resolve() if args.out else None
    if args.resume is None:
        return out or new_run_dir(name), None
    if args.resume == "":
        if out is not None:
            return out, None  # auto-resume from its checkpoints (none: starts fresh)
        latest = latest_run_dir(name)
        if latest is None:
            raise SckdError(f"--resume: no earlier run of '{name}' found; give a PATH or --out")
        return latest, latest
    src = Path(args.resume).expanduser().resolve()
    if not src.exists():
        raise SckdError(f"{src}: --resume path not found")
    if out is not None:
        return out, src
    if src.is_dir():
        return src, src
    # a checkpoint file: continue in its run folder when it sits in one
    if src.parent.name == "checkpoints" and (src.parent.parent / "config.yaml").is_file():
        return src.parent.parent, src
    return new_run_dir(name), src


def run(args: argparse.Namespace) -> int:
    from sckd.engine.distributed import broadcast_object, cleanup, init_distributed
    from sckd.data.resolve import resolve_dataset
    from sckd.experiment.config import load_experiment
    from sckd.experiment.train import train_experiment

    exp = load_experiment(args.config, cli_overrides(args))
    if args.data:
        if not Path(args.data).expanduser().is_dir():
            raise SckdError(f"{args.data}: --data is not a directory")
        exp.dataset = resolve_dataset(args.data, base=exp.dataset)
    if not exp.dataset.root:
        raise SckdError(f"{args.config}: config key 'dataset.root' is empty; pass --data ROOT")
    env = init_distributed(exp.train.device)
    try:
        if not env.is_main:
            logging.getLogger("sckd").setLevel(logging.WARNING)
        # rank 0 decides (timestamps differ between processes) and tells the others
        choice: tuple = ("", None)
        if env.is_main:
            try:
                choice = ("ok", choose_run_dir(args, exp.name))
            except SckdError as e:
                choice = ("error", str(e))
        status, value = broadcast_object(env, choice)
        if status == "error":
            raise SckdError(value)
        run_dir, resume = value
        result = train_experiment(exp, run_dir=run_dir, env=env, resume=resume)
    finally:
        cleanup()
    if env.is_main:
        where = result.last_checkpoint or run_dir
        print(f"{'stopped' if result.stopped_early else 'finished'}: {where}")
    return 0
