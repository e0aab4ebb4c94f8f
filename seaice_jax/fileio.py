"""Writing files so that a reader never sees a half-written one: a temporary name, then a rename.

A write that fails removes its temporary file and raises `WriteError` (an OSError) whose message is
one line naming the final path and the cause: "disk full writing X" when the file system ran out of
space (ENOSPC / EDQUOT, or a library error such as NetCDF's "HDF error" on a file system with next to
no space left), else "cannot write X (reason)".
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
NEARLY_FULL_BYTES = 1 << 20  # a library error on a file system with less free space than this: disk full


class WriteError(OSError):
    """A file that could not be written; str() is the one-line message (names the path and the cause)."""

    def __init__(self, message: str, path: str, code: int | None = None):
        super().__init__(code or errno.EIO, message, path)
        self.message = message

    def __str__(self) -> str:
        return self.message


def free_bytes(path: str) -> int | None:
    """Bytes free for an unprivileged writer on the file system of `path` (or its nearest existing
    folder); None when that cannot be told."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        st = os.statvfs(probe)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def is_disk_full(error: BaseException, path: str | None = None) -> bool:
    """Whether `error` (raised while writing `path`) means the file system is full."""
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        return True
    if "No space left on device" in str(error) or "Disk quota exceeded" in str(error):
        return True
    if path is not None and isinstance(error, (OSError, RuntimeError)):
        free = free_bytes(path)
        return free is not None and free < NEARLY_FULL_BYTES
    return False


def write_error(error: BaseException, path: str) -> WriteError:
    """The one-line WriteError for `error` raised while writing `path` (call before freeing space)."""
    if isinstance(error, WriteError):
        return error
    if is_disk_full(error, path):
        return WriteError(f"disk full writing {path}", path, errno.ENOSPC)
    reason = getattr(error, "strerror", None) or " ".join(str(error).split()) or type(error).__name__
    return WriteError(f"cannot write {path} ({reason})", path, getattr(error, "errno", None))


def temporary_path(path: str, suffix: str = ".part") -> str:
    """A new empty file next to `path` (same file system, so the final rename is atomic)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=suffix, dir=folder)
    except OSError as e:
        raise write_error(e, path) from None
    os.close(fd)
    return tmp


def publish(tmp: str, path: str) -> None:
    """Rename `tmp` to `path` with the permissions of a plainly created file (mkstemp makes 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def write_atomically(write: Callable[[str], object], path: str, suffix: str = ".part") -> str:
    """Call `write(tmp)` on a temporary file next to `path`, then rename it to `path`.

    On any failure the temporary file is removed and `path` keeps whatever it held before; an OSError
    or a library's RuntimeError (NetCDF / HDF5) becomes a one-line `WriteError`.
    """
    tmp = temporary_path(path, suffix)
    try:
        write(tmp)
        publish(tmp, path)
    except BaseException as e:
        # The cause is told before the temporary file goes: removing it frees the space it filled.
        error = write_error(e, path) if isinstance(e, (OSError, RuntimeError)) else None
        if os.path.exists(tmp):
            os.unlink(tmp)
        if error is not None:
            raise error from None
        raise
    return path


def write_text(path: str, text: str) -> str:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    return write_atomically(write, path)


def write_json(path: str, obj, **kwargs) -> str:
    """JSON with indent 1 unless told otherwise; kwargs go to json.dumps (e.g. allow_nan=False)."""
    kwargs.setdefault("indent", 1)
    return write_text(path, json.dumps(obj, **kwargs) + "\n")


def save_figure(fig, path: str, **kwargs) -> str:
    """A matplotlib figure to PNG (or what `path` names)."""
    kwargs.setdefault("dpi", 100)
    return write_atomically(lambda tmp: fig.savefig(tmp, format=os.path.splitext(path)[1][1:] or "png", **kwargs),
                            path)
