"""The error types every front end shares, and the one-line reporter.

Every problem a user can fix (bad input, a foreign or damaged checkpoint, an unwritable or
busy output folder, too little memory for the requested sizes) is a ``LockstepError``:
its message is one line that names the problem and the fix. The CLI prints it as
``lockstep: error: <message>`` and exits with code 2. The two output helpers every command
uses (``err`` for logs, ``say`` for results) live here too, so that no module imports from
``cli``.
"""

from __future__ import annotations

import sys


class LockstepError(ValueError):
    """A problem the user can fix; ``str(e)`` is one line naming it and the fix (a message
    that quotes a cell or a name with a newline in it is folded to one line here)."""

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str):
            args = (one_line(args[0]),)
        super().__init__(*args)


class UsageError(LockstepError):
    """Bad command-line input."""


class OutputError(LockstepError):
    """An output folder or file cannot be written (busy, unwritable, disk full)."""


def one_line(msg) -> str:
    """``msg`` as a single line: newlines and runs of blanks become one space, and a very
    long message (say, one quoting a huge CSV cell) is cut to a readable length."""
    s = " ".join(str(msg).split())
    return s if len(s) <= 1000 else s[:997] + "..."


def err(msg):
    """A log line: stderr."""
    print(msg, file=sys.stderr, flush=True)


def say(args, msg):
    """A result line for people: stdout, or stderr when stdout carries --json."""
    print(msg, file=sys.stderr if getattr(args, "json", False) else sys.stdout, flush=True)


def report(msg, prefix="lockstep: error: ", file=None):
    print(prefix + one_line(msg), file=file or sys.stderr, flush=True)


def os_error_line(e: OSError, what="") -> str:
    """One line for an OSError (disk full, permission, I/O error), with the file it hit."""
    where = f" {e.filename}" if getattr(e, "filename", None) else ""
    why = e.strerror or type(e).__name__
    head = f"{what}: " if what else ""
    return f"{head}cannot write or read{where}: {why}; free space, fix permissions or choose " \
           "another path"
