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
import tempfile
from pathlib import Path

from .errors import OutputError, UsageError

# mkstemp's names for the files of a run: a dot, the target's name, a dot, 8 random
# characters, ".tmp" (and the plots' names before they ended in .tmp)
DEBRIS = re.compile(r"^\.(?:(?:checkpoint\.npz|losses\.png|forecast\.png|lockstep-probe)"
                    r"\.[a-z0-9_]{8}\.tmp|(?:losses|forecast)\.[a-z0-9_]{8}\.png)$")


def check_parent(path: Path, flag: str):
    """The nearest existing ancestor of ``path``'s folder must be a writable folder."""
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


def write_atomically(path, write, mode="wb"):
    """Write a file atomically: ``write(f)`` fills a temporary file beside ``path`` (named
    ``.<name>.XXXXXXXX.tmp``, so the next run sweeps it), then fsync, rename over ``path``
    and fsync of the folder. A failed write leaves neither half a file nor a clobbered one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8",
                                                             "newline": ""})) as f:
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
    return path


def write_text(path, text: str):
    """A text file, written atomically (``write_atomically``)."""
    return write_atomically(path, lambda f: f.write(text), "w")
