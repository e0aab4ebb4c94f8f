"""Output paths of the command-line entry points, checked before any work so that a run that cannot
write fails at once in one line (`OutputError`) and leaves nothing behind.

* `check_output_file(path)`: `path` is not a folder, and its folder either exists and is writable or
  can be made (no part of it is a file, the nearest existing folder is writable). Nothing is created.
* `check_output_folder(path)`: the same for a folder.
* `remove_if_empty(path)`: removes a folder a failed run created and left empty.
"""

from __future__ import annotations

import os


class OutputError(ValueError):
    """An output path that cannot be written; the message names the flag and the path on one line."""


def _check_folder(folder: str, what: str, shown: str) -> None:
    folder = os.path.abspath(folder)
    probe = folder
    while not os.path.exists(probe):  # nearest existing ancestor
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise OutputError(f"{what} {shown}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {shown}: folder {probe} is not writable")


def check_output_folder(path: str, what: str = "output") -> None:
    """OutputError unless `path` is, or can be made, a writable folder."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"{what} {path}: is a file, not a folder")
    _check_folder(path, what, path)


def check_output_file(path: str, what: str = "output") -> None:
    """OutputError unless a file can be written at `path` (see the module docstring)."""
    if os.path.isdir(path):
        raise OutputError(f"{what} {path}: is a folder, not a file")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise OutputError(f"{what} {path}: file is not writable")
    _check_folder(os.path.dirname(os.path.abspath(path)), what, path)


def missing_folders(path: str) -> list[str]:
    """The folders above `path` that do not exist yet, outermost first (what writing it would create)."""
    out = []
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        out.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return out[::-1]


def remove_if_empty(path: str) -> None:
    """Remove the folder `path` if it exists and is empty (nothing else)."""
    try:
        os.rmdir(path)
    except OSError:
        pass
