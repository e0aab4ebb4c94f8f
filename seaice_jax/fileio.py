"""Writing files so that a reader never sees a half-written one: a temporary name, then a rename."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable


def temporary_path(path: str, suffix: str = ".part") -> str:
    """A new empty file next to `path` (same file system, so the final rename is atomic)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=suffix, dir=folder)
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

    On any failure the temporary file is removed and `path` keeps whatever it held before.
    """
    tmp = temporary_path(path, suffix)
    try:
        write(tmp)
        publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
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
