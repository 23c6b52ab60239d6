"""Output folders: checked before work, one writer at a time, no debris.

``RunFolder(path)`` is what ``lockstep train`` holds for a whole run:
- it creates the folder (and missing parents), remembering what it created;
- it takes an advisory lock (``fcntl.flock`` on the folder itself, so no lock file is left
  behind) without waiting: a second run on the same folder gets ``OutputError`` at once,
  and ``--force`` does not break a live lock (the kernel drops it when its holder dies);
- holding the lock, it removes the temporary files a killed run left (``.<name>.*.tmp``,
  the names ``write_atomically`` gives them), then writes and removes a probe
  file, so an unwritable place (``/proc``, a read-only mount, a full disk) fails before
  any training;
- when the run fails, the folders it created are removed again if they are empty.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
import sys
import tempfile
from pathlib import Path

from .errors import OutputError, UsageError

# mkstemp's names for the files of a run: a dot, the target's name, a dot, 8 random
# characters, ".tmp" (and the plots' names before they ended in .tmp)
DEBRIS = re.compile(r"^\.(?:(?:checkpoint\.npz|losses\.png|forecast\.png|lockstep-probe)"
                    r"\.[a-z0-9_]{8}\.tmp|(?:losses|forecast)\.[a-z0-9_]{8}\.png)$")


def check_parent(path: Path, flag: str):
    """The file ``path`` can be written: an existing target that is not a regular file must
    be one lockstep writes to in place (a FIFO, a character device, an inherited descriptor
    such as /dev/stdout; see ``write_atomically``), else the nearest existing ancestor of
    its folder must be a writable folder."""
    if os.path.lexists(path) and target(path, flag).direct:
        return
    p = Path(os.path.abspath(path)).parent
    while not p.exists():
        if os.path.lexists(p):
            raise UsageError(f"{flag} {path}: {p} is a dangling symbolic link; fix the link or "
                             "choose another path")
        p = p.parent
    if not p.is_dir():
        raise UsageError(f"{flag} {path}: {p} is not a folder; choose another path")
    if not os.access(p, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {p} is not writable; choose another path")


def check_dir(path: Path, flag="--out"):
    """Fail now (before any work) if the folder ``path`` cannot be created or written."""
    path = Path(path)
    if os.path.lexists(path) and not path.exists():
        raise UsageError(f"{flag} {path} is a dangling symbolic link; fix the link or choose "
                         "another folder")
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} exists and is not a folder; choose a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"output folder {path} is not writable; choose another {flag}")
        return
    check_parent(path / "x", flag)


def sweep(folder: Path) -> list:
    """Remove temporary files of dead runs; the caller holds the folder's lock."""
    gone = []
    for e in os.scandir(folder):
        if DEBRIS.match(e.name) and e.is_file(follow_symlinks=False):
            try:
                os.unlink(e.path)
                gone.append(e.name)
            except FileNotFoundError:
                pass
    return gone


class RunFolder:
    def __init__(self, path, flag="--out"):
        self.path, self.flag = Path(path), flag
        self.created = []  # folders this run made, outermost first
        self.fd = None
        self.swept = []

    def __enter__(self):
        try:
            self._make()
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputError(f"another lockstep run is writing to {self.path}; wait for it "
                                  f"to finish or choose another {self.flag}") from None
            self.swept = sweep(self.path)
            fd, probe = tempfile.mkstemp(prefix=".lockstep-probe.", suffix=".tmp", dir=self.path)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            self._undo()
            raise OutputError(f"cannot write to {self.flag} {self.path}: "
                              f"{e.strerror or e}; choose another folder") from None
        except BaseException:
            self._undo()
            raise
        return self

    def _make(self):
        missing, p = [], Path(os.path.abspath(self.path))
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except FileExistsError:
                continue
            self.created.append(d)

    def _undo(self):
        """Release the lock; remove the folders this run created if nothing is in them."""
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None
        for d in reversed(self.created):
            try:
                os.rmdir(d)
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    raise
                break

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            os.close(self.fd)
            self.fd = None
        else:
            try:
                sweep(self.path)  # the writers clean up after themselves; this is belt and braces
            except OSError:
                pass
            self._undo()
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- the one writer -------------------------------------------------------------------------

_FD_LINK = re.compile(r"^/(?:proc/(?:self|thread-self|(\d+))/fd|dev/fd)/(\d+)$")
_STDIO = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


class Target:
    """Where a write to ``path`` goes. ``path``: the file a regular write replaces
    atomically (symbolic links followed, so a link stays a link); ``direct``: None for that,
    else how the file is written in place: ("fd", n) through a duplicate of this process's
    descriptor n (``--out /dev/stdout``), ("fifo", path) or ("chr", path)."""

    def __init__(self, path, direct=None):
        self.path, self.direct = Path(path), direct


def _kind(mode) -> str:
    return ("FIFO (named pipe)" if stat.S_ISFIFO(mode) else "character device" if
            stat.S_ISCHR(mode) else "block device" if stat.S_ISBLK(mode) else "socket" if
            stat.S_ISSOCK(mode) else "folder" if stat.S_ISDIR(mode) else "special file")


def target(path, flag="--out") -> Target:
    """Resolve ``path`` for writing without following it blindly: a descriptor of this
    process (/dev/stdout, /proc/self/fd/N, /dev/fd/N) is written through that descriptor;
    a FIFO or a character device in place; a regular file (through any symbolic links) is
    replaced atomically; a block device, a socket, a folder, a dangling link or a file of
    another process (/proc/<pid>/fd/N) is refused with a UsageError."""
    p = os.path.abspath(path)
    for _ in range(40):  # follow the links by hand, to see a descriptor link on the way
        m = _FD_LINK.match(p)
        if p in _STDIO or (m and m.group(1) in (None, str(os.getpid()))):
            n = _STDIO[p] if p in _STDIO else int(m.group(2))
            if n == 0:
                raise UsageError(f"{flag} {path} is standard input; name a file to write")
            try:
                mode = os.fstat(n).st_mode
            except OSError:
                raise UsageError(f"{flag} {path}: descriptor {n} is not open; name a "
                                 "file") from None
            if stat.S_ISBLK(mode) or stat.S_ISDIR(mode):
                raise UsageError(f"{flag} {path} is a {_kind(mode)}; name a file")
            return Target(p, ("fd", n))
        if m:
            raise UsageError(f"{flag} {path} is a descriptor of another process; name a file")
        if not os.path.islink(p):
            break
        p = os.path.normpath(os.path.join(os.path.dirname(p), os.readlink(p)))
    else:
        raise UsageError(f"{flag} {path}: too many levels of symbolic links; fix the link")
    real = os.path.realpath(path)
    if os.path.lexists(path) and not os.path.exists(path):
        raise UsageError(f"{flag} {path} is a dangling symbolic link; fix the link or choose "
                         "another path")
    kernel = real.startswith(("/proc/", "/sys/", "/dev/")) and not real.startswith("/dev/shm/")
    try:
        mode = os.stat(real).st_mode
    except (FileNotFoundError, NotADirectoryError):  # check_parent names a file on the way
        if kernel:
            raise UsageError(f"{flag} {path}: {real} does not exist, and lockstep makes no "
                             "files among the kernel's or the devices'; name another path") from None
        return Target(real)
    except OSError as e:
        raise UsageError(f"{flag} {path}: {e.strerror}; choose another path") from None
    if stat.S_ISREG(mode):
        if kernel:
            raise UsageError(f"{flag} {path} is a file of the kernel or the devices; name "
                             "another path")
        return Target(real)
    if stat.S_ISFIFO(mode):
        return Target(real, ("fifo", real))
    if stat.S_ISCHR(mode):
        return Target(real, ("chr", real))
    if stat.S_ISDIR(mode):
        raise UsageError(f"{flag} {path} is a folder; name a file in it")
    raise UsageError(f"{flag} {path} is a {_kind(mode)}; lockstep writes regular files, FIFOs "
                     "and character devices only: choose a file")


def open_direct(t: Target, flag="--out") -> int:
    """A descriptor open for writing on a ``direct`` target, opened as a shell's ``>``
    would but without creating or truncating anything: a FIFO without a reader is refused
    at once (an OutputError) instead of waiting for one."""
    how, what = t.direct
    if how == "fd":
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except (OSError, ValueError):
                pass
        return os.dup(what)
    if how == "fifo":
        try:
            fd = os.open(what, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if e.errno == errno.ENXIO:
                raise OutputError(f"{flag} {what} is a FIFO (named pipe) that nobody reads; "
                                  "start its reader first or name a regular file") from None
            raise
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return fd
    return os.open(what, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)


def _fdopen(fd, mode):
    return os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""}))


def write_atomically(path, write, mode="wb", fd=None, flag="--out"):
    """Write a file atomically: ``write(f)`` fills a temporary file beside ``path`` (named
    ``.<name>.XXXXXXXX.tmp``, so the next run sweeps it), then fsync, rename over ``path``
    and fsync of the folder. A failed write leaves neither half a file nor a clobbered one.

    A target that is not a regular file is never renamed over (``target``): a FIFO, a
    character device (/dev/null) or a descriptor of this process (/dev/stdout) is written in
    place, through ``fd`` when the caller opened it beforehand (``open_direct``); anything
    else is refused. A symbolic link to a regular file stays a link: its target is
    replaced."""
    t = target(path, flag)
    if t.direct:
        fd = open_direct(t, flag) if fd is None else fd
        try:
            with _fdopen(fd, mode) as f:
                write(f)
        except OSError as e:
            if e.filename is None and e.errno is not None:
                e.filename = str(path)
            raise
        return Path(path)
    given, path = Path(path), t.path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with _fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:
            e.filename = str(path)  # disk full, quota, I/O error: say which file
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return given


def write_text(path, text: str, fd=None, flag="--out"):
    """A text file, written atomically (``write_atomically``)."""
    return write_atomically(path, lambda f: f.write(text), "w", fd=fd, flag=flag)
