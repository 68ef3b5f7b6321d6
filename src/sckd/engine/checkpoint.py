"""Training checkpoints: a typed :class:`Checkpoint`, atomic writes, safe loads, RNG state,
model signatures.

On disk a checkpoint is a plain dict of tensors and plain data (``torch.load(...,
weights_only=True)`` reads it, no code is unpickled): ``format`` ``"sckd-ckpt-2"`` plus the
fields of :class:`Checkpoint`, the experiment config as a nested dict. Checkpoints of the
first format (config as YAML text, ``"sckd-ckpt-1"``) still load: their config is parsed
and, since their signature was computed another way, their weights are checked by strict
loading alone.

Files are written to a temporary file in the target's folder, fsync'ed and renamed over the
target, so a crash never leaves a truncated checkpoint under a final name. On load, the zip
container's own CRC-32 of every entry is checked (torch does not), which catches changed bytes
in files of every format, and weights with inf/NaN are refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from sckd.atomic import write_atomic
from sckd.config import to_dict
from sckd.errors import SckdError

FORMAT = "sckd-ckpt-2"
LEGACY_FORMAT = "sckd-ckpt-1"
STEP_RE = re.compile(r"^step_(\d+)\.pt$")


@dataclass
class BestMetric:
    metric: str = ""
    value: float | None = None
    epoch: int | None = None


@dataclass
class Checkpoint:
    """One saved model: weights, the experiment config it was trained with, and (for resuming)
    the optimiser, schedule, scaler, counters and RNG states."""

    model: dict[str, torch.Tensor]
    config: Any
    """The resolved experiment config: a config dataclass when the trainer writes it (saved as its
    dict), the dict when :func:`load_checkpoint` reads it back (this layer knows no experiment
    type); ``sckd.experiment.config.load_experiment_checkpoint`` reads it typed."""
    signature: str = ""
    """:func:`model_signature` of the model that wrote it; "" = unknown (a first-format file)."""
    epoch: int = 0
    """Epoch the run is in (0-based; == epochs once training finished)."""
    step: int = 0
    """Optimiser steps done in total."""
    step_in_epoch: int = 0
    iters_per_epoch: int = 0
    world_size: int = 1
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    best: BestMetric = field(default_factory=BestMetric)
    metrics: dict[str, float] = field(default_factory=dict)
    rng: list[dict[str, Any]] = field(default_factory=list)
    """One entry per rank: python / numpy / torch (/ cuda) generator states."""
    exported_from: str = ""
    """``distillation`` for the student handed out by a distillation run."""

    @property
    def has_training_state(self) -> bool:
        return self.optimizer is not None and self.scheduler is not None and self.iters_per_epoch > 0

    def to_file_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["best"] = dataclasses.asdict(self.best)
        out["config"] = to_dict(self.config) if dataclasses.is_dataclass(self.config) else self.config
        return {"format": FORMAT, **out}

    @classmethod
    def from_file_dict(cls, data: Any, path: Path) -> Checkpoint:
        fmt = data.get("format") if isinstance(data, dict) else None
        if fmt not in (FORMAT, LEGACY_FORMAT):
            newer = isinstance(fmt, str) and fmt.startswith("sckd-ckpt-")
            raise SckdError(f"{path}: " + (f"checkpoint format {fmt!r} is newer than this sckd reads ({FORMAT!r}); "
                                            "update sckd" if newer else f"not an sckd checkpoint (expected format {FORMAT!r})"))
        data = dict(data)
        data.pop("format")
        if fmt == LEGACY_FORMAT:
            data = _from_legacy(data, path)
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known and v is not None}
        best = kwargs.get("best") if isinstance(kwargs.get("best"), dict) else {}
        kwargs["best"] = BestMetric(**{k: best[k] for k in ("metric", "value", "epoch") if k in best})
        if not isinstance(kwargs.get("model"), dict):
            raise SckdError(f"{path}: checkpoint holds no model weights")
        if not isinstance(kwargs.get("config"), dict):
            kwargs["config"] = {}
        return cls(**kwargs)


def _from_legacy(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """A first-format checkpoint's fields in today's form: config YAML text -> dict, and no
    signature (it hashed YAML text; the weights are still checked by strict loading)."""
    text = data.get("config") or ""
    try:
        config = yaml.safe_load(text) if text else {}
    except yaml.YAMLError:
        raise SckdError(f"{path}: stored config is not valid YAML") from None
    return {**data, "config": config if isinstance(config, dict) else {}, "signature": ""}


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write ``ckpt`` to ``path`` durably (temporary file, fsync, rename)."""
    return atomic_torch_save(ckpt.to_file_dict(), path)


class _KeepWriteError:
    """The file torch.save writes to, remembering the OSError of a failed write: torch's writer
    turns it into a RuntimeError without the reason (a full disk read 'unexpected pos')."""

    def __init__(self, f: Any) -> None:
        self._f, self.error = f, None

    def write(self, data: Any) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` through :func:`sckd.atomic.write_atomic` (durable); a failed
    write is reported as the OSError it was (``no space left on device``), naming the file."""
    def write(f: Any) -> None:
        sink = _KeepWriteError(f)
        try:
            torch.save(obj, sink)
        except RuntimeError:
            if sink.error is None:
                raise
        if sink.error is not None:
            raise sink.error

    return write_atomic(path, write, "checkpoint", mkdirs=True)


_NOT_TORCH = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
              b"%PDF": "a PDF document", b"\x1f\x8b": "a gzip archive", b"\x7fELF": "a program"}


def _check_file(path: Path) -> None:
    """Refuse, before unpickling, a file of another kind and a checkpoint whose bytes changed
    after it was written (torch's reader does not check the zip entries' CRC-32)."""
    with open(path, "rb") as f:
        head = f.read(8)
    kind = next((k for magic, k in _NOT_TORCH.items() if head.startswith(magic)), None)
    if kind:
        raise SckdError(f"{path}: not a readable checkpoint (it is {kind}, not a torch file)")
    if not head.startswith(b"PK\x03\x04"):
        return  # torch's reader says what is wrong (or it is the legacy non-zip format)
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError):
        return  # truncated: torch's reader says so
    if bad is not None:
        raise SckdError(f"{path}: checkpoint is corrupt (its entry {bad} fails the CRC-32 check: the bytes "
                        "changed after it was written); use another checkpoint of the run or train again")


def check_finite(model: dict[str, Any], path: str | Path) -> None:
    """Weights with an inf or NaN would predict, teach or train on garbage."""
    for k, v in model.items():
        if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise SckdError(f"{path}: weight '{k}' holds non-finite values (inf/NaN); the file is corrupt "
                            "or its training diverged; use an earlier checkpoint of the run")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint` (weights only: no code is unpickled).
    Every use (prediction, export, a teacher, resuming) reads through here, so a file whose
    zip entries fail their CRC or whose weights are not finite is refused for all of them."""
    path = Path(path)
    if not path.is_file():
        raise SckdError(f"{path}: checkpoint not found")
    _check_file(path)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
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
    ckpt = Checkpoint.from_file_dict(data, path)
    check_finite(ckpt.model, path)
    return ckpt


def weights_digest(ckpt: Checkpoint) -> str:
    """sha256 over the weights (names, dtypes, shapes, values), not the file: the same model
    whatever else its file holds (optimiser state or not), another one after any retraining
    that ends elsewhere (another CPU's digits). Short (16 hex digits), for provenance records."""
    h = hashlib.sha256()
    for name in sorted(ckpt.model):
        t = ckpt.model[name]
        if not isinstance(t, torch.Tensor):
            continue
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _canonical(x: Any) -> Any:
    """Numbers as floats (a config read from YAML says 1 where a default says 1.0)."""
    if isinstance(x, dict):
        return {str(k): _canonical(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_canonical(v) for v in x]
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    return x


def model_signature(model: nn.Module, model_config: dict[str, Any] | None = None) -> str:
    """A short hash of the model class, its state-dict layout (names, shapes, dtypes) and the
    config entries that fix what the weights mean: two checkpoints are interchangeable exactly
    when their signatures match."""
    h = hashlib.sha256()
    h.update(f"{type(model).__module__}.{type(model).__qualname__}\n".encode())
    for k, v in model.state_dict().items():
        h.update(f"{k}:{tuple(v.shape)}:{v.dtype}\n".encode())
    h.update(json.dumps(_canonical(model_config or {}), sort_keys=True).encode())
    return h.hexdigest()[:16]


def check_signature(ckpt: Checkpoint, expected: str, path: str | Path) -> None:
    """A first-format checkpoint (no signature) passes; its weights load strictly."""
    if ckpt.signature and ckpt.signature != expected:
        raise SckdError(f"{path}: checkpoint is from another model or model config (signature "
                        f"{ckpt.signature} != {expected}); use the config it was trained with")


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
