"""Conventions shared by every command-line entry point (launch/, data_prep/).

* One flag spelling: hyphens (`--patch-size`, `--batch-size`), the underscore form accepted too.
  argparse launchers register both names with `flag_names`; absl launchers (whose flags are defined
  with underscores) pass their argv through `absl_argv` before `app.run`.
* Failures the user can fix end in one line on stderr naming the file or flag and what is wrong,
  and a non-zero exit code (`fail`), never a traceback.
"""

from __future__ import annotations

import sys

EXIT_USAGE = 2  # bad flags (argparse's code)
EXIT_FAILED = 1  # the command ran and could not do (all of) its work


def flag_names(name: str) -> tuple[str, ...]:
    """('--patch-size', '--patch_size') for 'patch-size' or 'patch_size'; one name when they agree."""
    hyphen = "--" + name.lstrip("-").replace("_", "-")
    underscore = "--" + name.lstrip("-").replace("-", "_")
    return (hyphen,) if hyphen == underscore else (hyphen, underscore)


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
