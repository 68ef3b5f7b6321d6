"""Run directories: where a training run keeps its config, logs, TensorBoard files and checkpoints.

Layout of a run directory::

    config.yaml          the resolved experiment config
    train.log            the log of every (re)start, appended
    tb/                  TensorBoard event files
    checkpoints/         step_XXXXXXXX.pt (latest few), best.pt, final.pt

The default is ``$SCKD_RUNS`` or ``~/.cache/sckd/runs``, one ``<experiment>-<timestamp>``
folder per run. Runs never go inside the source tree: an ``--out`` there is refused.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from sckd.errors import SckdError

_PKG_DIR = Path(__file__).resolve().parent.parent  # src/sckd


def runs_root() -> Path:
    env = os.environ.get("SCKD_RUNS")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sckd" / "runs"


def source_tree() -> Path | None:
    """The repository checkout the package runs from (editable installs), else None."""
    for parent in _PKG_DIR.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "sckd").is_dir():
            return parent
    return None


def check_outside_source(path: Path) -> None:
    path = path.expanduser().resolve()
    roots = [_PKG_DIR] + ([src] if (src := source_tree()) else [])
    for root in roots:
        if path == root or root in path.parents:
            raise SckdError(f"{path}: run directories must live outside the source tree ({root}); "
                            f"pick another --out or leave it out to use {runs_root()}")


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "run"


def new_run_dir(experiment: str, root: Path | None = None) -> Path:
    """A fresh ``<root>/<experiment>-<YYYYmmdd-HHMMSS>`` (suffixed if it exists)."""
    root = root or runs_root()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = root / f"{safe_name(experiment)}-{stamp}"
    path, i = base, 1
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    return path


def latest_run_dir(experiment: str, root: Path | None = None) -> Path | None:
    """The newest run folder of ``experiment`` under the runs root (by name = timestamp)."""
    root = root or runs_root()
    if not root.is_dir():
        return None
    pat = re.compile(re.escape(safe_name(experiment)) + r"-\d{8}-\d{6}(-\d+)?$")
    found = sorted((p for p in root.iterdir() if p.is_dir() and pat.match(p.name)),
                   key=lambda p: (p.name[: len(safe_name(experiment)) + 16], p.stat().st_mtime))
    return found[-1] if found else None


def prepare_run_dir(path: Path) -> Path:
    """Create the run folder (and its checkpoints/ and tb/) after checking where it is."""
    path = path.expanduser().resolve()
    check_outside_source(path)
    if path.exists() and not path.is_dir():
        raise SckdError(f"{path}: --out exists and is not a directory")
    try:
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
        (path / "tb").mkdir(exist_ok=True)
    except OSError as e:
        raise SckdError(f"{path}: cannot create the run directory ({e.strerror})") from None
    # Half-written temp files of a run that was killed while saving (never read: the atomic
    # rename did not happen); they would otherwise pile up across restarts.
    for stale in (path / "checkpoints").glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    return path


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"
