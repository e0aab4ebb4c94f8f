"""SIGINT and SIGTERM: stop cleanly, say so in one line, exit 130 / 143.

Every entry point runs its `main` through `run_main`, which turns both signals into an `Interrupted`
exception (a BaseException, like KeyboardInterrupt, so no `except Exception` swallows it): whatever
was being written is removed again by its own cleanup (temporary names, `fileio.write_atomically`),
the launcher prints one line and exits with 128 + the signal number: 130 for SIGINT (Ctrl-C), 143 for
SIGTERM (how clusters preempt jobs).

The training loop asks `stop_requested(step)` after every step. From its first call on, a signal no
longer stops the process at once: it is noted, the loop finishes the step, writes its metrics, saves
a checkpoint with the data iterator at that step and raises `stopped_after(step, ...)`; rerunning the
same command resumes from there. Before the loop (data preparation, compilation) a signal stops at
once: nothing would be lost. A second SIGINT while the loop is finishing its step stops at once too
(the last checkpoint stays what it was). An exception raised from a signal handler can land inside a
library holding a lock that its cleanup then waits for; so a process still running GRACE_SECONDS
after it was interrupted (unwinding or shutting down) is ended with the same exit code, and a further
signal while it unwinds ends it at once.

Multi-host runs: a signal may reach one host only, and every host must stop at the same step. There
`stop_requested` is JAX's preemption sync point (`multihost_utils.reached_preemption_sync_point`,
which the coordination service starts with `jax.distributed.initialize` and which listens to
SIGTERM itself); a SIGINT is passed on to it as a SIGTERM of this process. Every host then saves at
the same step.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys

SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Interrupted(BaseException):  # noqa: N818 - named like KeyboardInterrupt, which it generalises
    """The process was asked to stop by a signal; str() is the one line to print."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum

    def __str__(self) -> str:
        return str(self.args[0])


class _State:
    def __init__(self):
        self.installed = False
        self.deferred = False  # True from the training loop's first stop_requested call on
        self.signum: int | None = None  # the first signal received
        self.sigints = 0
        self.multi = False  # multi-host: the preemption sync point decides
        self.raised = False  # an Interrupted was raised from the handler (the process is unwinding)
        self.printed = False  # run_main has printed the line
        self.watchdog = None  # the timer that ends a process whose unwinding hangs
        self.pending = None  # (signum, message) waiting for the main thread to leave UNSAFE_CODE


_state = _State()


def _name(signum: int | None) -> str:
    return SIGNAL_NAMES.get(signum, "SIGTERM") if signum else "SIGTERM"


GRACE_SECONDS = 30.0  # an interrupted process that has not ended this long after it unwound is ended


def _force_exit_after(signum: int, message: str, seconds: float = GRACE_SECONDS) -> None:
    """End the process with 128 + signum if it still runs `seconds` from now. An exception raised from
    a signal handler can land inside a library between taking a lock and entering the block that
    frees it (xarray's NetCDF locks: seen); its cleanup then waits for that lock forever. Exiting
    late beats hanging: the next run finds the lock file's holder gone and takes over."""
    import threading

    if _state.watchdog is not None:
        return

    def force():
        if not _state.printed:
            print(f"{message} (its cleanup hung; ended after {seconds:g} s)", file=sys.stderr, flush=True)
        os._exit(128 + signum)

    _state.watchdog = threading.Timer(seconds, force)
    _state.watchdog.daemon = True
    _state.watchdog.start()


def _exit_now(signum: int, message: str):
    if not _state.printed:
        print(f"{message} (again: ended at once)", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def _raise(signum: int, message: str):
    if _state.raised:  # a further signal while unwinding the first: end now
        _exit_now(signum, message)
    _state.raised = True
    _force_exit_after(signum, message)
    raise Interrupted(signum, message)


# Code whose Python-level locks an exception must not interrupt (xarray takes its NetCDF / HDF5 locks
# in plain Python, and its cleanup takes them again): a signal that finds one of these on the main
# thread's stack is raised a moment later, once the stack is clear of them.
UNSAFE_CODE = tuple(f"{os.sep}{name}{os.sep}" for name in ("xarray", "h5py", "h5netcdf", "netCDF4"))
RETRY_SECONDS = 0.05


def _in_unsafe_code(frame) -> bool:
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in UNSAFE_CODE):
            return True
        frame = frame.f_back
    return False


def _raise_when_safe(signum: int, message: str, frame) -> None:
    """Raise Interrupted now, or (inside UNSAFE_CODE) retry on SIGALRM every RETRY_SECONDS."""
    if _in_unsafe_code(frame) and not _state.raised:
        _state.pending = (signum, message)
        _force_exit_after(signum, message)  # however long the library call takes
        signal.signal(signal.SIGALRM, _retry)
        signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)
        return
    _state.pending = None
    _raise(signum, message)


def _retry(alarm, frame):
    del alarm
    if _state.pending is not None:
        _raise_when_safe(*_state.pending, frame)


def _handler(signum, frame):
    first = _state.signum is None
    _state.signum = _state.signum or signum
    if signum == signal.SIGINT:
        _state.sigints += 1
    if _state.pending is not None:  # a further signal while the first waits for a safe point: end now
        _exit_now(signum, _state.pending[1])
    if not _state.deferred:
        _raise_when_safe(signum, f"interrupted by {_name(signum)}", frame)
        return
    if signum == signal.SIGINT and _state.sigints > 1:
        _raise_when_safe(signum, "interrupted by a second SIGINT: stopped at once, without saving this step "
                                 "(the last checkpoint is where a rerun resumes)", frame)
        return
    if _state.multi and first and signum == signal.SIGINT:
        os.kill(os.getpid(), signal.SIGTERM)  # to JAX's preemption notifier: every host stops at one step


def _jax_preemption_service() -> bool:
    """Whether this is a multi-host run with JAX's preemption sync manager (which handles SIGTERM)."""
    if "jax" not in sys.modules:
        return False
    from jax._src import distributed

    return distributed.global_state.client is not None and distributed.global_state.preemption_sync_manager is not None


@contextlib.contextmanager
def handled():
    """Install the handlers (main thread only); restore the previous ones on exit."""
    previous = {}
    _state.__init__()
    _state.installed = True
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _handler)
        previous[signal.SIGALRM] = signal.getsignal(signal.SIGALRM) or signal.SIG_DFL
    except ValueError:  # not the main thread: leave signals as they are
        _state.installed = False
    try:
        yield _state
    finally:
        if previous:
            signal.setitimer(signal.ITIMER_REAL, 0)  # a retry still armed
        for signum, old in previous.items():
            signal.signal(signum, old)
        _state.installed = False


def stop_requested(step: int) -> bool:
    """Called by the training loop after every step (on every host): whether to save and stop now."""
    if not _state.installed:
        return False
    if not _state.deferred:
        _state.deferred = True
        # Multi-host: `jax.distributed.initialize` (after `handled` began) put JAX's SIGTERM notifier in
        # place of our handler at the C level, so SIGTERM reaches the sync point; SIGINT is passed on.
        _state.multi = _jax_preemption_service()
    if _state.multi:
        from jax.experimental import multihost_utils

        return bool(multihost_utils.reached_preemption_sync_point(step))
    return _state.signum is not None


def ignore_stop_signals(worker_index: int = 0, worker_count: int = 0) -> None:
    """grain's `worker_init_fn`: a data worker ignores SIGINT and SIGTERM. A Ctrl-C at a terminal
    reaches the whole process group; a worker that died of it would print a traceback and leave the
    main process waiting for its data. The main process stops the workers itself (grain's stop event,
    then SIGKILL) once it has saved."""
    del worker_index, worker_count
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def stopped_after(step: int, num_steps: int, checkpoint: str) -> Interrupted:
    """The exception the training loop raises once the interrupted step is saved."""
    signum = _state.signum or signal.SIGTERM
    return Interrupted(signum, f"interrupted by {_name(signum)}: stopped after step {step} of {num_steps}, "
                               f"checkpoint saved ({checkpoint}); rerun the same command to resume")


def finished_line() -> Interrupted | None:
    """A signal that arrived after the loop's last step (the run finished and saved everything)."""
    if _state.signum is None:
        return None
    return Interrupted(_state.signum, f"interrupted by {_name(_state.signum)} as the run was finishing: "
                                      "every step is done and saved")


def run_main(main, *args, quiet: bool = False) -> int:
    """`main(*args)` with SIGINT / SIGTERM handled: an interrupt is one line on stderr and exit code
    130 / 143 (`cli.EXIT_SIGINT` / `cli.EXIT_SIGTERM`), never a traceback. `quiet`: print nothing
    (for processes other than multi-host process 0)."""
    with handled():
        try:
            code = main(*args)
            late = finished_line() if _state.deferred else None
            if late is not None:
                raise late
            return code
        except Interrupted as e:
            if not quiet:
                print(str(e), file=sys.stderr, flush=True)
            _state.printed = True
            _force_exit_after(e.signum, str(e))  # the interpreter's shutdown must not hang either
            return e.exit_code
        except KeyboardInterrupt:  # a SIGINT before the handlers were in place
            if not quiet:
                print("interrupted by SIGINT", file=sys.stderr, flush=True)
            return 128 + signal.SIGINT
        finally:
            # The interpreter's shutdown runs one last full garbage collection over every object the
            # process made (JAX, Flax, xarray, pandas: ~200 000 after their imports): about 0.9 s on the
            # 2-core machine, a tenth of a warm `infer.py`. Frozen objects are not scanned; memory is
            # the OS's to reclaim at exit anyway, and refcounted objects are still freed.
            gc.freeze()
