"""One training run per workdir: a lock file held for the run's whole life.

`WORKDIR/lock` holds one JSON line naming its holder (host, pid, start time) and is locked with
`flock` for as long as that process lives; the kernel drops the flock when the process dies, however
it dies. So:
  * a second run on a workdir in use is refused at once, in one line naming the holder
    (`WorkdirLockedError`), before it writes anything;
  * a lock file left by a process that is gone (killed with SIGKILL, a crashed host) holds no flock:
    the next run takes it over and says so in one line;
  * a run that ends (normally or by an exception) removes the file again, so a finished workdir holds
    no lock.
The file is removed while still locked, and a run that locked a file checks that it is still the one
under that name (else it retries): two runs can never both believe they hold the lock.

Multi-host runs take the lock on process 0 only (the workdir is shared); the other processes learn
the outcome from process 0 through the coordination service's key-value store (no device collective,
so nothing is compiled or connected for it) and stop with it.

`locked_workdir` wraps `train.train_and_evaluate` (and so every sweep point); `held` is the context
manager under it. `created_by_this_run(workdir)` tells the training loop whether this run made the
workdir (then a first run that fails is removed again, see `train.removed_if_failed`).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import functools
import json
import os
import socket
import sys

from seaice_jax.fileio import WriteError

LOCK_NAME = "lock"

_created: set[str] = set()  # absolute workdirs whose folder this process made when it locked them


class WorkdirLockedError(RuntimeError):
    """The workdir is in use by another run; the message names it and the holder."""


def lock_path(workdir: str) -> str:
    return os.path.join(workdir, LOCK_NAME)


def created_by_this_run(workdir: str) -> bool:
    """Whether the run holding the lock of `workdir` in this process created the folder."""
    return os.path.abspath(workdir) in _created


def _holder_text(info: dict) -> str:
    return (f"host {info.get('host', '?')}, pid {info.get('pid', '?')}, since "
            f"{info.get('since', '?')}")


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode(errors="replace").strip()
        info = json.loads(text) if text else {}
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _make_folder(workdir: str) -> bool:
    """Create `workdir` (and its parents); True when this call made the workdir itself."""
    parent = os.path.dirname(os.path.abspath(workdir))
    try:
        os.makedirs(parent, exist_ok=True)
        os.mkdir(workdir)
        return True
    except FileExistsError:
        if not os.path.isdir(workdir):
            raise WriteError(f"--workdir {workdir}: is a file, not a folder", workdir, errno.ENOTDIR) from None
        return False
    except OSError as e:
        raise WriteError(f"--workdir {workdir}: cannot create the folder ({e.strerror})", workdir, e.errno) from None


class WorkdirLock:
    """The lock of one workdir, held by this process (see the module docstring)."""

    def __init__(self, workdir: str, *, note=None):
        self.workdir = workdir
        self.path = lock_path(workdir)
        self.note = note or (lambda line: print(line, file=sys.stderr, flush=True))
        self.fd: int | None = None
        self.created = False
        self.taken_over: dict | None = None

    def acquire(self) -> WorkdirLock:
        self.created = _make_folder(self.workdir)
        for _ in range(100):  # retried only when the file was removed between open and flock
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                self._undo_folder()
                raise WriteError(f"--workdir {self.workdir}: cannot create {self.path} ({e.strerror})", self.path,
                                 e.errno) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_holder(fd)
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                raise WorkdirLockedError(
                    f"--workdir {self.workdir}: in use by another run ({_holder_text(holder)}); "
                    f"wait for it to end or use another --workdir (lock: {self.path})") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed the file after we opened it: try the new one
                os.close(fd)
                continue
            self.fd = fd
            break
        else:
            raise WorkdirLockedError(f"--workdir {self.workdir}: could not take the lock {self.path}")
        left = _read_holder(self.fd)
        if left:  # a file with a holder but no flock: that process is gone
            self.taken_over = left
            self.note(f"note: {self.workdir}: took over the lock left by a run that is gone "
                      f"({_holder_text(left)})")
        me = {"host": socket.gethostname(), "pid": os.getpid(),
              "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "command": " ".join(sys.argv)[:500]}
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        os.write(self.fd, (json.dumps(me) + "\n").encode())
        os.fsync(self.fd)
        if self.created:
            _created.add(os.path.abspath(self.workdir))
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):  # a failed first run may have removed the workdir
            os.unlink(self.path)
        os.close(self.fd)  # drops the flock
        self.fd = None
        _created.discard(os.path.abspath(self.workdir))
        self._undo_folder()

    def _undo_folder(self) -> None:
        """A workdir this lock created and nothing else filled goes again (a refused config)."""
        if self.created:
            with contextlib.suppress(OSError):
                os.rmdir(self.workdir)


@contextlib.contextmanager
def held(workdir: str, *, note=None, multi_host: bool = True):
    """Hold the lock of `workdir` (process 0 of a multi-host run; the others follow its outcome).
    `multi_host=False`: this process alone, JAX untouched (the sweep's parent starts no backend)."""
    if multi_host:
        import jax

        multi, first = jax.process_count() > 1, jax.process_index() == 0
    else:
        multi, first = False, True
    lock, error = None, None
    if first:
        try:
            lock = WorkdirLock(workdir, note=note).acquire()
        except (WorkdirLockedError, OSError) as e:
            error = e
    if multi:
        error = _shared_outcome(workdir, error, first)
    if error is not None:
        raise error
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()


_calls = [0]  # held() calls in this process: every process makes them in the same order


def _shared_outcome(workdir: str, error: BaseException | None, first: bool) -> BaseException | None:
    """Process 0's lock outcome, on every process (JAX's distributed key-value store)."""
    from jax._src import distributed

    client = distributed.global_state.client
    if client is None:
        return error
    _calls[0] += 1
    key = f"seaice_jax/workdir_lock/{_calls[0]}"
    if first:
        client.key_value_set(key, "ok" if error is None else f"error:{error}")
        return error
    text = client.blocking_key_value_get(key, 30 * 60 * 1000)
    return None if text == "ok" else WorkdirLockedError(f"{text[len('error:'):]} (process 0)")


def locked_workdir(train_fn, multi_host: bool = True):
    """Decorator of `train_and_evaluate(config, workdir, ...)` (and `run_sweep(sweep, workdir, ...)`
    with `multi_host=False`): the whole call holds the lock of its workdir."""

    @functools.wraps(train_fn)
    def wrapper(config, workdir: str, *args, **kwargs):
        with held(workdir, multi_host=multi_host):
            return train_fn(config, workdir, *args, **kwargs)

    return wrapper


def locked_folder(fn):
    """`locked_workdir` for one process that must not start JAX (the sweep's parent)."""
    return locked_workdir(fn, multi_host=False)
