"""Conventions shared by every command-line entry point (launch/, data_prep/).

* One flag spelling: hyphens (`--patch-size`, `--batch-size`), the underscore form accepted too.
  argparse launchers register both names with `flag_names`; absl launchers (whose flags are defined
  with underscores) pass their argv through `absl_argv` before `app.run`.
* Failures the user can fix end in one line on stderr naming the file or flag and what is wrong,
  and a non-zero exit code (`fail`), never a traceback. `ArgumentParser` gives argparse launchers
  both spellings of every flag and one-line usage errors; `whole` / `real` are argparse types that
  check a number's range (`--tile must be a whole number >= 1, got 0`).
* An interrupt (SIGINT / SIGTERM) exits with 128 + the signal number: 130 / 143 (seaice_jax.interrupts).
"""

from __future__ import annotations

import argparse
import math
import re
import sys

EXIT_USAGE = 2  # bad flags (argparse's code)
EXIT_FAILED = 1  # the command ran and could not do (all of) its work
EXIT_SIGINT = 130  # stopped by SIGINT (Ctrl-C): 128 + 2
EXIT_SIGTERM = 143  # stopped by SIGTERM (a cluster's preemption): 128 + 15


def flag_names(name: str) -> tuple[str, ...]:
    """('--patch-size', '--patch_size') for 'patch-size' or 'patch_size'; one name when they agree."""
    hyphen = "--" + name.lstrip("-").replace("_", "-")
    underscore = "--" + name.lstrip("-").replace("-", "_")
    return (hyphen,) if hyphen == underscore else (hyphen, underscore)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the project's conventions: every `--long-option` is registered under both its
    hyphen and underscore spelling (the hyphen one first, so `dest` is the underscore name), and a
    usage error is one line on stderr (`error: --tile must be a whole number >= 1, got 0`), exit 2."""

    def add_argument(self, *names, **kwargs):
        spelled = []
        for name in names:
            both = flag_names(name) if name.startswith("--") else (name,)
            spelled += [n for n in both if n not in spelled]
        return super().add_argument(*spelled, **kwargs)

    def error(self, message: str):
        # 'argument --tile/--tile_x: must be ...' -> '--tile must be ...'; argparse's own texts keep a colon
        match = re.match(r"argument (--[\w-]+)(?:/--[\w-]+)*: (.*)", message, re.S)
        if match:
            flag, text = match.groups()
            message = f"{flag} {text}" if text.startswith("must be") else f"{flag}: {text}"
        sys.exit(fail(message, EXIT_USAGE))


def whole(minimum: int | None = None, maximum: int | None = None):
    """argparse type: an int in [minimum, maximum] ('must be a whole number >= 1, got 0' otherwise)."""
    def parse(text: str) -> int:
        bounds = _bounds(minimum, maximum)
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number{bounds}, got {text!r}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be a whole number{bounds}, got {value}")
        return value

    parse.__name__ = "whole number"
    return parse


def real(minimum: float | None = None, *, above: float | None = None, maximum: float | None = None):
    """argparse type: a finite float >= minimum (or > above) and <= maximum."""
    bounds = (f" > {above:g}" if above is not None else "") + _bounds(minimum, maximum, fmt="g")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number{bounds}, got {text!r}") from None
        if (not math.isfinite(value) or (minimum is not None and value < minimum)
                or (above is not None and value <= above) or (maximum is not None and value > maximum)):
            raise argparse.ArgumentTypeError(f"must be a number{bounds}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def _bounds(minimum, maximum, fmt: str = "d") -> str:
    parts = [f">= {minimum:{fmt}}"] if minimum is not None else []
    parts += [f"<= {maximum:{fmt}}"] if maximum is not None else []
    return " " + " and ".join(parts) if parts else ""


def check_number(value, flag: str, minimum=None, *, above=None, maximum=None, integer: bool = False) -> None:
    """ValueError('--tile must be a whole number >= 1, got 0') unless `value` lies in range (for numbers
    that come from a config or an API rather than argparse)."""
    kind = "a whole number" if integer else "a number"
    bounds = (f" > {above:g}" if above is not None else "") + _bounds(minimum, maximum, fmt="d" if integer else "g")
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (not integer or float(value).is_integer())
    ok = ok and not ((minimum is not None and value < minimum) or (above is not None and value <= above)
                     or (maximum is not None and value > maximum))
    if not ok:
        raise ValueError(f"{flag} must be {kind}{bounds}, got {value!r}")


def absl_argv(argv: list[str]) -> list[str]:
    """argv with `--some-flag[=v]` spelled `--some_flag[=v]` (absl names); `--config.*` untouched.

    Only the flag name changes, never a value (`--out=my-file.png` stays), and only tokens that
    start with `--` (a value passed as the next token is left as it is).
    """
    out = []
    for token in argv:
        if token.startswith("--") and not token.startswith("--config"):
            name, eq, value = token[2:].partition("=")
            token = "--" + name.replace("-", "_") + eq + value
        out.append(token)
    return out


def fail(message: str, code: int = EXIT_FAILED) -> int:
    """Print `error: <message>` as one line on stderr and return the exit code."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    return code


def config_override_message(argv: list[str], error: Exception) -> str:
    """The one line for a `--config.a.b=v` override that names no field (ml_collections' KeyError /
    AttributeError, whose text ends in 'Did you mean "x" instead of "y"?')."""
    import re

    text = str(error).encode().decode("unicode_escape")  # the hint arrives as a repr with '\n' escaped
    wrong = re.search(r"'([^'\\]+)'", text)
    hint = re.search(r'Did you mean "([^"]+)"', text)
    names = [t[2:].split("=")[0].split(".")[1:] for t in argv if t.startswith("--config.")]
    parts = next((n for n in names if wrong and wrong.group(1) in n), None)
    if parts is None:
        return f"a --config override names no config field: {' '.join(text.split())}"
    msg = f"--config.{'.'.join(parts)}: the config has no field {'.'.join(parts)}"
    if hint:
        fixed = [hint.group(1) if p == wrong.group(1) else p for p in parts]
        msg += f"; did you mean {'.'.join(fixed)}?"
    return msg


def parse_absl_flags(argv: list[str]) -> list[str]:
    """`app.run(main, flags_parser=cli.parse_absl_flags)`: both flag spellings; a bad flag, flag value
    or `--config.*` override ends in one line on stderr and exit code 2 instead of a traceback."""
    from absl import flags

    try:
        return flags.FLAGS(absl_argv(argv))
    except flags.Error as e:
        sys.exit(fail(e, EXIT_USAGE))
    except (AttributeError, KeyError) as e:  # ml_collections: an override naming no config field
        sys.exit(fail(config_override_message(argv, e), EXIT_USAGE))
    except (TypeError, ValueError) as e:  # ml_collections: a value of the wrong type for its field
        sys.exit(fail(e, EXIT_USAGE))


def own_logs_only(record) -> bool:
    """A logging filter: warnings and errors from anywhere, INFO and below only from seaice_jax."""
    import logging
    import os

    return record.levelno >= logging.WARNING or f"{os.sep}seaice_jax{os.sep}" in record.pathname


def quiet_logs() -> None:
    """Other libraries' INFO logs (Orbax: ~40 lines a checkpoint; JAX's backend probing) off unless the
    command line asks for them with `--verbosity` (0 = INFO): the step lines stay readable. Call in
    `main`, after `app.run` has installed absl's log handler."""
    from absl import flags, logging

    if not flags.FLAGS["verbosity"].present:
        logging.get_absl_handler().addFilter(own_logs_only)
