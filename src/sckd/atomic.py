"""The one way sckd writes a file: readers see the old content or the new, never half of it.

A temporary file in the same folder, then ``os.replace``. ``durable=True`` (checkpoints, run
configs, markers, manifests) also fsyncs the file and its folder, so the rename survives a power
cut; bulk outputs that can be made again (prediction and label files, dataset caches, synthetic
worlds) skip the fsyncs, which would cost milliseconds per file.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from sckd.errors import SckdError


_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
         errno.EFBIG: "file too large for this filesystem or the file size limit (ulimit -f)"}


def _reason(e: OSError) -> str:
    """What went wrong, with what to do about a full disk (the old file is still intact)."""
    if e.errno in _FULL:
        return f"{_FULL[e.errno]}; free some space and rerun (any earlier version of the file is intact)"
    return str(e.strerror or e)


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None], what: str = "file",
                 durable: bool = True, mkdirs: bool = False) -> Path:
    """``write(f)`` fills the file, mode 0644 (not mkstemp's 0600). ``mkdirs``: create missing
    parent folders (else a missing folder is the usual one-line error)."""
    path = Path(path)
    try:
        if mkdirs:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise SckdError(f"{path}: cannot write {what} ({_reason(e)})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
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
            raise SckdError(f"{path}: cannot write {what} ({_reason(e)})") from None
        raise
    if durable:
        try:  # make the rename itself durable
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass  # some filesystems cannot fsync a folder; the file itself is synced
    return path


def write_bytes_atomic(path: str | Path, data: bytes, what: str = "file", durable: bool = True,
                       mkdirs: bool = False) -> Path:
    return write_atomic(path, lambda f: f.write(data), what, durable, mkdirs)


def write_text_atomic(path: str | Path, text: str, what: str = "file", durable: bool = True,
                      mkdirs: bool = False) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), what, durable, mkdirs)


def copy_atomic(src: str | Path, dst: str | Path, what: str = "file") -> Path:
    """Copy ``src`` to ``dst`` (durable)."""
    def copy(f: BinaryIO) -> None:
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f, length=1 << 20)

    return write_atomic(dst, copy, what)
