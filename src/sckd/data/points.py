"""Reading and writing point clouds stored as raw float32 ``.bin`` files (N x F, row-major)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sckd.atomic import write_bytes_atomic
from sckd.errors import SckdError, warnings


def read_points(path: str | Path, features: list[str], what: str = "point cloud") -> np.ndarray:
    """A bare point file -> (N, F) float32: ``.bin`` (float32 rows) or ``.npy`` (a 2-D numeric
    array), with ``F = len(features)`` columns in that order; the same checks as :func:`read_bin`
    and errors that name the expected layout."""
    path = Path(path)
    layout = f"{len(features)} columns: {' '.join(features)}"
    if path.suffix == ".bin":
        return read_bin(path, len(features), what, layout=layout)
    if path.suffix != ".npy":
        raise SckdError(f"{path}: not a point file (expected .bin float32 rows or .npy, {layout})")
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise SckdError(f"{path}: {what} file is missing") from None
    except (OSError, ValueError) as e:
        raise SckdError(f"{path}: not a readable .npy array ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        raise SckdError(f"{path}: expected a 2-D numeric array ({layout}), got "
                        f"{getattr(arr, 'dtype', type(arr))} of shape {getattr(arr, 'shape', '?')}")
    if arr.shape[1] != len(features):
        raise SckdError(f"{path}: {arr.shape[1]} columns, expected {layout}")
    return _finite_rows(arr.astype(np.float32), path, what)


def read_bin(path: str | Path, n_features: int, what: str = "point cloud", layout: str = "") -> np.ndarray:
    """Read a ``.bin`` cloud of ``n_features`` float32 columns -> (N, F) float32.

    A size that is not a multiple of ``4 * n_features`` bytes raises :class:`SckdError` naming
    the file and both sizes (usually a wrong feature list in the dataset config). Rows with
    NaN/inf are dropped with a counted warning; an empty cloud is kept as (0, F) with a counted
    warning (a real VoD frame can have no radar return).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SckdError(f"{path}: {what} file is missing") from None
    except OSError as e:
        raise SckdError(f"{path}: cannot read {what} ({e.strerror})") from None
    row = 4 * n_features
    if len(raw) % row:
        expected = f"expected {layout}" if layout else "check the dataset's feature list"
        raise SckdError(f"{path}: size {len(raw)} bytes is not a multiple of {row} "
                        f"({n_features} float32 features per point); {expected}")
    return _finite_rows(np.frombuffer(raw, dtype="<f4").reshape(-1, n_features).astype(np.float32), path, what)


def _finite_rows(pts: np.ndarray, path: Path, what: str) -> np.ndarray:
    if len(pts) == 0:
        warnings.warn(f"empty {what} kept as 0 points", str(path))
        return pts
    finite = np.isfinite(pts).all(axis=1)
    if not finite.all():
        warnings.warn(f"{what} rows with NaN/inf dropped", f"{int((~finite).sum())} of {len(pts)} in {path}")
        pts = pts[finite]
    return pts


def write_bin(path: str | Path, points: np.ndarray) -> None:
    """Write (N, F) points as little-endian float32 (atomic, not fsynced: a cache can be rebuilt)."""
    write_bytes_atomic(path, np.ascontiguousarray(np.asarray(points, dtype="<f4")).tobytes(), "points",
                       durable=False)


def as_features(points: np.ndarray, stored: list[str], wanted: list[str]) -> np.ndarray:
    """(N, len(stored)) -> (N, len(wanted)): columns picked by name; a name ``stored`` lacks
    becomes a column of zeros (a model trained on another dataset that does not read it)."""
    if stored == wanted:
        return points
    out = np.zeros((len(points), len(wanted)), dtype=np.float32)
    for j, name in enumerate(wanted):
        if name in stored:
            out[:, j] = points[:, stored.index(name)]
    return out
