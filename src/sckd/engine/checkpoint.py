"""Training checkpoints: atomic writes, safe loads, RNG state, model signatures.

A checkpoint is a plain dict (loadable with ``torch.load(..., weights_only=True)``):

    format          "sckd-ckpt-1"
    model           model.state_dict()
    optimizer       optimizer.state_dict()            (absent in exported weights)
    scheduler       OneCycle.state_dict()
    scaler          GradScaler.state_dict() or None
    epoch           epoch the run is in (0-based; == epochs once training finished)
    step            optimiser steps done in total
    step_in_epoch   steps done inside ``epoch``
    iters_per_epoch steps per epoch of the run that wrote it
    best            {"metric": name, "value": float | None, "epoch": int | None}
    rng             one entry per rank: python / numpy / torch (/ cuda) generator states
    config          the resolved experiment config as YAML text
    signature       model_signature(...) of the model that wrote it

Files are written to a temporary file in the target's folder, fsync'ed and renamed over the
target, so a crash never leaves a truncated checkpoint under a final name.
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sckd.atomic import write_atomic
from sckd.errors import SckdError

FORMAT = "sckd-ckpt-1"
STEP_RE = re.compile(r"^step_(\d+)\.pt$")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` through :func:`sckd.atomic.write_atomic` (durable)."""
    return write_atomic(path, lambda f: torch.save(obj, f), "checkpoint", mkdirs=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (weights only: no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise SckdError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling problem is a bad file for the user
        text = str(e)
        if "Weights only load failed" in text:  # torch's advice to retry unsafely is not for us
            found = re.search(r"GLOBAL (\S+)", text)
            raise SckdError(f"{path}: not a readable checkpoint (it holds pickled Python objects"
                            f"{', e.g. ' + found.group(1) if found else ''}, which could run code when "
                            "loaded; sckd loads only tensors and plain data)") from None
        first = text.splitlines()[0].split(". ")[0].rstrip(".") if text else ""
        raise SckdError(f"{path}: not a readable checkpoint (truncated, corrupt or not a torch file; "
                        f"{type(e).__name__}: {first})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise SckdError(f"{path}: not an sckd checkpoint (expected format {FORMAT!r})")
    return ckpt


def model_signature(model: nn.Module, model_config_yaml: str = "") -> str:
    """A short hash of the model class, its state-dict layout (names, shapes, dtypes) and its
    config section: two checkpoints are interchangeable exactly when their signatures match."""
    h = hashlib.sha256()
    h.update(f"{type(model).__module__}.{type(model).__qualname__}\n".encode())
    for k, v in model.state_dict().items():
        h.update(f"{k}:{tuple(v.shape)}:{v.dtype}\n".encode())
    h.update(model_config_yaml.encode())
    return h.hexdigest()[:16]


def check_signature(ckpt: dict[str, Any], expected: str, path: str | Path) -> None:
    got = ckpt.get("signature")
    if got != expected:
        raise SckdError(f"{path}: checkpoint is from another model or model config (signature "
                        f"{got} != {expected}); use the config it was trained with")


# ---------------------------------------------------------------------------------- RNG state

def capture_rng() -> dict[str, Any]:
    """States of the python, numpy and torch (CPU and, if initialised, CUDA) generators."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    random.setstate(_as_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _as_tuples(x: Any) -> Any:
    """``random.setstate`` wants tuples; be lenient if a list came back."""
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


# ------------------------------------------------------------------------ files of a run dir

def step_checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.pt"


def list_step_checkpoints(ckpt_dir: str | Path) -> list[Path]:
    """Periodic checkpoints of a run, oldest first."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := STEP_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    found = list_step_checkpoints(ckpt_dir)
    return found[-1] if found else None


def prune_checkpoints(ckpt_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest periodic checkpoints; returns the deleted paths."""
    found = list_step_checkpoints(ckpt_dir)
    doomed = found[:-keep] if keep > 0 else found
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed
