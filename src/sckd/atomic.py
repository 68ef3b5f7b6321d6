"""Writing a file so that readers see the old content or the new, never half of it:
a temp file in the same folder, fsync, ``os.replace``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sckd.errors import SckdError


def write_bytes_atomic(path: str | Path, data: bytes, what: str = "file") -> Path:
    """Write ``data`` to ``path`` (parents created; mode 0644, not mkstemp's 0600)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise SckdError(f"{path}: cannot write {what} ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise SckdError(f"{path}: cannot write {what} ({e.strerror})") from None
        raise
    return path


def write_text_atomic(path: str | Path, text: str, what: str = "file") -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), what)
