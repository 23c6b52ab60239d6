"""Checkpoint storage: named sections of JSON metadata and arrays in one file.

This module knows nothing of forecasting. Each component writes its own sections
(``{"meta": dict, "arrays": {name: ndarray}}``) with ``write`` and, after ``read``, checks
its own section's content with ``Fields``, which names the field in every refusal.

The file is a ZIP (every member stored, so ``np.load`` can open it too) holding
``header.json`` and one ``<section>/<array>.npy`` per array. The header declares every
array's dtype, shape and SHA-256 and carries a digest of itself. ``read`` trusts nothing it
has not checked: every size is known to be sane before anything is read or inflated, the
JSON is parsed with limits, no pickle is ever loaded, and a damaged, truncated, foreign or
edited file raises one ``CheckpointError`` (a one-line message), never another exception.

Writes are atomic (``outdir.write_atomically``): a crash or a failed run never leaves a
half-written or clobbered checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np

from . import __version__, limits
from .errors import LockstepError

FORMAT = "lockstep-checkpoint"
FORMAT_VERSION = 2

HEADER = "header.json"
MAX_HEADER_BYTES = 64 << 20
MAX_DEPTH = 32  # nesting of the header JSON; sections' meta is a few levels deep
MAX_INT_DIGITS = 40  # PCG64 states have 39 digits; int() of a long one takes quadratic time
MAX_NPY_HEADER = 64 << 10  # the .npy header of an array of at most MAX_NDIM axes is < 1 KiB
MAX_NDIM = 32
# zipfile turns every directory entry into Python objects (about 1 KiB each); 16 MiB of
# directory is some 150,000 arrays, far beyond any model's
MAX_DIRECTORY_BYTES = 16 << 20
READ_CHUNK = 16 << 20
NAME = re.compile(r"[A-Za-z0-9_.-]+")
DTYPE_KINDS = "biufcU"  # bool, integers, floats, complex, unicode: nothing that can pickle
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the same inputs give the same bytes


class CheckpointError(LockstepError):
    """The checkpoint is missing, corrupt or does not match this run."""


# --- writing ------------------------------------------------------------------------------


def write(path, sections: dict, lockstep_version: str | None = None) -> Path:
    """Atomically write ``sections`` ({name: {"meta": dict, "arrays": {name: ndarray}}})
    as one checkpoint file. Refuses (ValueError) names outside [A-Za-z0-9_.-], arrays that
    are not plain bool/number/unicode data, and meta that is not JSON within ``read``'s
    limits: what is written can always be read back."""
    from .outdir import write_atomically

    if not isinstance(sections, dict):
        raise ValueError("sections must be a dict {name: {'meta': ..., 'arrays': ...}}")
    decl, members = {}, []
    for sname in sorted(sections, key=str):  # str: a bad name is refused, not a TypeError
        sec = sections[sname]
        _check_name(sname, "section")
        if not (isinstance(sec, dict) and set(sec) == {"meta", "arrays"}
                and isinstance(sec["meta"], dict) and isinstance(sec["arrays"], dict)):
            raise ValueError(f"section {sname} must be a dict with a 'meta' dict and an "
                             "'arrays' dict")
        arrays = {}
        for aname in sorted(sec["arrays"], key=str):
            _check_name(aname, f"array of section {sname}")
            a = _plain(sec["arrays"][aname], f"{sname}/{aname}")
            arrays[aname] = {"dtype": a.dtype.str, "shape": list(a.shape),
                             "sha256": hashlib.sha256(a).hexdigest()}
            members.append((f"{sname}/{aname}.npy", a))
        try:
            meta = json.loads(json.dumps(sec["meta"], allow_nan=False))  # keys become strings
        except (TypeError, ValueError, RecursionError) as e:
            raise ValueError(f"section {sname}: meta is not JSON ({e})") from None
        decl[sname] = {"meta": meta, "arrays": arrays}
    version = lockstep_version or __version__
    if not (isinstance(version, str) and len(version) <= 100):
        raise ValueError("lockstep_version must be a string of at most 100 characters")
    header = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "lockstep_version": version, "sections": decl}
    header["digest"] = _digest(header)
    text = json.dumps(header, sort_keys=True, allow_nan=False).encode()
    if len(text) > MAX_HEADER_BYTES:
        raise ValueError(f"the checkpoint header would be {limits.fmt_bytes(len(text))}, over "
                         f"the limit of {limits.fmt_bytes(MAX_HEADER_BYTES)}; store the bulk "
                         "in arrays")
    try:
        _parse_json(text)  # the limits read applies (depth, integer digits)
    except ValueError as e:
        raise ValueError(f"the checkpoint header is beyond what read accepts ({e})") from None

    def fill(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(_member(HEADER), text)
            for name, a in members:
                with zf.open(_member(name), "w", force_zip64=a.nbytes > 1 << 30) as fh:
                    np.lib.format.write_array(fh, a, allow_pickle=False)

    return write_atomically(path, fill)


def _member(name):
    info = zipfile.ZipInfo(name, _FIXED_TIME)
    info.external_attr = 0o644 << 16  # what unzip gives the file, were it extracted
    return info


def _check_name(name, what):
    if not (isinstance(name, str) and NAME.fullmatch(name)):
        raise ValueError(f"{what} name {str(name)[:60]!r} must be made of letters, digits, "
                         "'_', '.' and '-'")


def _plain(a, where) -> np.ndarray:
    """``a`` as a C-ordered array of a dtype ``read`` accepts."""
    a = np.asarray(a)
    if not _plain_dtype(a.dtype) or a.ndim > MAX_NDIM:
        raise ValueError(f"array {where} has dtype {a.dtype} and {a.ndim} axes; a checkpoint "
                         f"holds bool, number or unicode arrays of at most {MAX_NDIM} axes")
    return np.array(a, order="C", copy=None)


def _plain_dtype(dt) -> bool:
    return (dt.kind in DTYPE_KINDS and dt.fields is None and dt.subdtype is None
            and dt.itemsize > 0)


def _digest(header) -> str:
    body = {k: v for k, v in header.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     allow_nan=False).encode()).hexdigest()


# --- reading ------------------------------------------------------------------------------


def read(path) -> dict:
    """Read and verify a checkpoint: {"lockstep_version": str, "sections": {name: {"meta":
    dict, "arrays": {name: ndarray}}}}. Every array's dtype, shape and SHA-256 match the
    header, and the header matches its digest; anything else raises ``CheckpointError``."""
    path = Path(path)
    with _open_regular(path) as fh:
        try:
            return _read(path, fh)
        except CheckpointError:
            raise
        except Exception as e:  # noqa: BLE001 - any parse failure means a damaged file
            raise CheckpointError(f"{path} is not a readable lockstep checkpoint "
                                  f"({type(e).__name__}); delete it or train again") from None


def _open_regular(path: Path):
    """Open ``path`` only if it is a regular file: O_NONBLOCK so that a FIFO (even one
    swapped in after a check) returns at once, then fstat says what was opened."""
    def missing(what):
        return CheckpointError(f"no checkpoint at {path} ({what}); train first or pass the "
                               "right --checkpoint")

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise missing("does not exist") from None
    except OSError as e:
        raise missing(f"cannot be read: {e.strerror or type(e).__name__}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise missing("is a directory" if stat.S_ISDIR(mode) else
                      "is not a regular file: a FIFO, socket or device")
    return os.fdopen(fd, "rb")


def _read(path, fh) -> dict:
    def damaged(msg):
        return CheckpointError(f"{path}{msg}; the file is damaged or was edited: delete it or "
                               "train again")

    _check_directory(path, fh)
    try:
        zf = zipfile.ZipFile(fh)
    except zipfile.BadZipFile:
        raise CheckpointError(f"{path} is not a lockstep checkpoint (not a ZIP file); pass the "
                              "right --checkpoint or train again") from None
    with zf:
        names = zf.namelist()
        if len(set(names)) != len(names):
            raise damaged(" holds a member twice")
        if HEADER not in names:
            if "meta.npy" in names:  # np.savez with a "meta" array: format 1
                raise CheckpointError(f"{path} has checkpoint format 1; this lockstep reads "
                                      f"format {FORMAT_VERSION}; train again")
            raise CheckpointError(f"{path} has no {HEADER}; it is not a lockstep checkpoint: "
                                  "pass the right --checkpoint or train again")
        header = _read_header(path, zf)
        if header.get("digest") != _digest(header):
            raise damaged(": the header's digest does not match")
        f = Fields(path, "header", {})
        f.dict(header, "", ("format", "format_version", "lockstep_version", "sections",
                            "digest"))
        version = f.str(header["lockstep_version"], "lockstep_version", 100)
        decl = _declarations(f, header["sections"])

        total = sum(nbytes for _, _, nbytes, _ in decl.values())
        avail = limits.available_memory()
        if total > avail // 2:
            raise CheckpointError(f"{path} declares {limits.fmt_bytes(total)} of arrays, more "
                                  f"than half the {limits.fmt_bytes(avail)} of memory available; "
                                  "free memory or load it on a larger machine")
        for member, (_, _, nbytes, _) in decl.items():
            if member not in names:
                raise damaged(f": array {member[:-4]} is declared but missing")
            size = zf.getinfo(member).file_size
            if not nbytes <= size <= nbytes + MAX_NPY_HEADER:
                raise damaged(f": member {member} holds {size} bytes where its declaration "
                              f"implies {nbytes} and a .npy header")
        for name in names:
            if name != HEADER and name not in decl:
                raise CheckpointError(f"{path} holds member {name[:100]} that no section "
                                      "declares; it is not a lockstep checkpoint")

        sections = {s: {"meta": v["meta"], "arrays": {}} for s, v in header["sections"].items()}
        for member, (dtype, shape, nbytes, sha) in decl.items():
            sname, aname = member[:-4].split("/", 1)
            a = _read_npy(path, zf, member, dtype, shape, nbytes, sha)
            sections[sname]["arrays"][aname] = a
    return {"lockstep_version": version, "sections": sections}


def _check_directory(path, fh):
    """Refuse a ZIP directory too large to parse, from the end records alone: the ones
    zipfile uses (the end record found as it finds it, a ZIP64 record where the locator
    says and where Python 3.11's zipfile assumes it is, just before the locator)."""
    size = fh.seek(0, os.SEEK_END)
    n = min(size, (1 << 16) + 22)
    fh.seek(size - n)
    tail = fh.read(n)
    end = b"PK\x05\x06"
    at = n - 22 if tail[-22:-18] == end and tail[-2:] == b"\0\0" else tail.rfind(end)
    if at < 0 or n - at < 22:
        return  # zipfile refuses it: not a ZIP file
    cds = [struct.unpack("<4s4H2LH", tail[at:at + 22])[5]]
    loc = size - n + at - 20
    if loc >= 0:
        fh.seek(loc)
        sig, _, rel, _ = struct.unpack("<4sLQL", fh.read(20))
        if sig == b"PK\x06\x07":
            for rec_at in (rel, loc - 56):
                if 0 <= rec_at <= size - 56:
                    fh.seek(rec_at)
                    rec = struct.unpack("<4sQ2H2L4Q", fh.read(56))
                    if rec[0] == b"PK\x06\x06":
                        cds.append(rec[8])
    if max(cds) > MAX_DIRECTORY_BYTES:
        raise CheckpointError(f"{path} has a ZIP directory of {limits.fmt_bytes(max(cds))}, "
                              f"over the limit of {limits.fmt_bytes(MAX_DIRECTORY_BYTES)}; it is "
                              "not a lockstep checkpoint")
    fh.seek(0)


def _read_header(path, zf) -> dict:
    info = zf.getinfo(HEADER)
    if info.file_size > MAX_HEADER_BYTES:
        raise CheckpointError(f"{path}: {HEADER} declares {limits.fmt_bytes(info.file_size)}, "
                              f"over the limit of {limits.fmt_bytes(MAX_HEADER_BYTES)}; it is "
                              "not a lockstep checkpoint")
    with zf.open(info) as m:
        text = m.read(info.file_size + 1)  # zipfile stops at the declared size
    try:
        header = _parse_json(text)
    except (ValueError, RecursionError) as e:
        why = (f"nesting deeper than {MAX_DEPTH}" if isinstance(e, RecursionError)
               else str(e).split("\n")[0][:200])
        raise CheckpointError(f"{path}: {HEADER} is not valid JSON within lockstep's limits "
                              f"({why}); delete it or train again") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a lockstep checkpoint (no format {FORMAT!r} in "
                              f"its {HEADER})")
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format "
                              f"{str(header.get('format_version'))[:20]}; this lockstep reads "
                              f"format {FORMAT_VERSION}; train again")
    return header


def _parse_json(text: bytes):
    """JSON without NaN/Infinity (nor 1e999, which Python reads as inf), integers of at most
    MAX_INT_DIGITS digits, nesting of at most MAX_DEPTH (too deep for the parser's
    recursion raises RecursionError)."""
    def refuse_constant(name):
        raise ValueError(f"{name} is not JSON")

    def bounded_int(s):
        if len(s.lstrip("-")) > MAX_INT_DIGITS:
            raise ValueError(f"an integer of {len(s)} digits")
        return int(s)

    def finite_float(s):
        v = float(s)
        if not math.isfinite(v):
            raise ValueError(f"{s[:20]} is not a finite number")
        return v

    tree = json.loads(text, parse_constant=refuse_constant, parse_int=bounded_int,
                      parse_float=finite_float)
    stack = [(tree, 1)]
    while stack:
        t, d = stack.pop()
        if d > MAX_DEPTH:
            raise ValueError(f"nesting deeper than {MAX_DEPTH}")
        if isinstance(t, dict):
            stack.extend((v, d + 1) for v in t.values())
        elif isinstance(t, list):
            stack.extend((v, d + 1) for v in t)
    return tree


def _declarations(f, secs) -> dict:
    """{member: (dtype, shape, nbytes, sha256)} from the header's sections, each checked."""
    if not isinstance(secs, dict):
        f.fail("sections", "must be an object")
    out = {}
    for sname, sec in secs.items():
        field = f"sections.{str(sname)[:60]}"
        if not NAME.fullmatch(sname):
            f.fail(field, "is not a section name")
        f.dict(sec, field, ("meta", "arrays"))
        if not isinstance(sec["meta"], dict):
            f.fail(f"{field}.meta", "must be an object")
        if not isinstance(sec["arrays"], dict):
            f.fail(f"{field}.arrays", "must be an object")
        for aname, d in sec["arrays"].items():
            af = f"{field}.arrays.{str(aname)[:60]}"
            if not NAME.fullmatch(aname):
                f.fail(af, "is not an array name")
            f.dict(d, af, ("dtype", "shape", "sha256"))
            dtype = _declared_dtype(f, d["dtype"], f"{af}.dtype")
            shape = d["shape"]
            if not (isinstance(shape, list) and len(shape) <= MAX_NDIM
                    and all(_is_int(n) and n >= 0 for n in shape)):
                f.fail(f"{af}.shape", f"must be a list of at most {MAX_NDIM} non-negative "
                       "integers")
            sha = f.str(d["sha256"], f"{af}.sha256", 64)
            if not re.fullmatch(r"[0-9a-f]{64}", sha):
                f.fail(f"{af}.sha256", "must be 64 hex digits")
            out[f"{sname}/{aname}.npy"] = (dtype, tuple(shape),
                                           math.prod(shape) * dtype.itemsize, sha)
    return out


def _declared_dtype(f, s, field):
    if isinstance(s, str) and len(s) <= 32:
        try:
            dt = np.dtype(s)
        except Exception:  # noqa: BLE001 - numpy raises several types for a bad spec
            dt = None
        if dt is not None and _plain_dtype(dt) and dt.str == s:
            return dt
    f.fail(field, "must be a bool, number or unicode dtype such as '<f8'")


def _read_npy(path, zf, member, dtype, shape, nbytes, sha):
    """One array, checked against its declaration: its .npy header is parsed by numpy
    (no pickle: only the header is numpy's to read), its data is read in chunks straight
    into the array and hashed on the way."""
    where = member[:-4]
    with zf.open(member) as m:
        major, _ = np.lib.format.read_magic(m)
        if major not in (1, 2):
            raise ValueError(f"npy format {major}")
        size_field = m.read(2 if major == 1 else 4)
        hlen = struct.unpack("<H" if major == 1 else "<I", size_field)[0]
        if hlen > MAX_NPY_HEADER:
            raise ValueError("npy header too long")
        head = io.BytesIO(size_field + m.read(hlen))
        parse = (np.lib.format.read_array_header_1_0 if major == 1
                 else np.lib.format.read_array_header_2_0)
        got_shape, fortran, got_dtype = parse(head, max_header_size=MAX_NPY_HEADER)
        if got_shape != shape or fortran or got_dtype.str != dtype.str:
            raise CheckpointError(f"{path}: array {where} is {got_dtype} {got_shape} where the "
                                  f"header declares {dtype} {shape}; the file is damaged or was "
                                  "edited: delete it or train again")
        a = np.empty(shape, dtype)
        buf, h = a.reshape(-1).view(np.uint8), hashlib.sha256()
        for off in range(0, nbytes, READ_CHUNK):
            chunk = m.read(min(READ_CHUNK, nbytes - off))
            if len(chunk) != min(READ_CHUNK, nbytes - off):
                raise ValueError("truncated array data")
            buf[off:off + len(chunk)] = np.frombuffer(chunk, np.uint8)
            h.update(chunk)
        if m.read(1):  # also makes zipfile check the member's CRC
            raise ValueError("data after the array")
    if h.hexdigest() != sha:
        raise CheckpointError(f"{path}: array {where} does not match its SHA-256; the file is "
                              "damaged or was edited: delete it or train again")
    return a


# --- validating a section's content ---------------------------------------------------------


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _span(lo, hi):
    return f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"


class Fields:
    """The checks a component runs on its own section after ``read``; every refusal is one
    ``CheckpointError`` naming ``<section>.<field>``. Each check returns the value."""

    def __init__(self, path, section: str, arrays: dict):
        self.path, self.section, self.arrays = path, section, arrays

    def fail(self, field, msg):
        name = f"{self.section}.{field}" if field else self.section
        raise CheckpointError(f"{self.path}: field {name} {msg}; the file is damaged or not "
                              "lockstep's: delete it or train again")

    def dict(self, v, field, keys, optional=()):
        """An object with every key of ``keys``, any of ``optional`` and nothing else."""
        if not isinstance(v, dict):
            self.fail(field, f"must be an object, got {type(v).__name__}")
        for k in keys:
            if k not in v:
                self.fail(f"{field}.{k}" if field else k, "is missing")
        for k in v:
            if k not in keys and k not in optional:
                self.fail(f"{field}.{str(k)[:40]}" if field else str(k)[:40],
                          "is not a known field")
        return v

    def int(self, v, field, lo=None, hi=None):
        if not _is_int(v):
            self.fail(field, f"must be an integer, got {type(v).__name__}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(field, f"must be in {_span(lo, hi)}, got {v}")
        return v

    def float(self, v, field, lo=None, hi=None, finite=True):
        """A number (JSON writes 1.0 as 1.0 but a Python int as 1: both pass) as a float."""
        if not _number(v):
            self.fail(field, f"must be a number, got {type(v).__name__}")
        v = float(v)
        if finite and not math.isfinite(v):
            self.fail(field, "must be finite")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(field, f"must be in {_span(lo, hi)}, got {v}")
        return v

    def bool(self, v, field):
        if not isinstance(v, bool):
            self.fail(field, "must be true or false")
        return v

    def str(self, v, field, max_len=4096):
        if not isinstance(v, str) or len(v) > max_len:
            self.fail(field, f"must be a string of at most {max_len} characters")
        return v

    def choice(self, v, field, choices):
        # type and value: True must not pass for 1, nor 1 for 1.0
        if not any(type(v) is type(c) and v == c for c in choices):
            self.fail(field, f"must be one of {', '.join(map(repr, choices))}, got "
                      f"{str(v)[:40]}")
        return v

    def array(self, name, field=None, dtype=None, shape=None, kind="f", finite=True, ndim=None):
        """This section's array ``name`` (a 0-d one as a numpy scalar). ``kind``: the dtype
        kinds allowed ("f", "iu", ...) unless ``dtype`` is given; ``shape``: None entries
        match any length."""
        field = field or name
        if name not in self.arrays:
            self.fail(field, f"needs the array {str(name)[:60]}, which is not in the file")
        a = self.arrays[name]
        if a.dtype != np.dtype(dtype) if dtype is not None else a.dtype.kind not in kind:
            self.fail(field, f"must be a {np.dtype(dtype) if dtype is not None else kind} "
                      f"array, got {a.dtype}")
        if ndim is not None and a.ndim != ndim:
            self.fail(field, f"must have {ndim} axes, got shape {a.shape}")
        if shape is not None and (len(shape) != a.ndim or any(
                s is not None and s != n for s, n in zip(shape, a.shape))):
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            self.fail(field, f"must have shape {want}, got {a.shape}")
        if finite and a.dtype.kind in "fc" and not np.isfinite(a).all():
            self.fail(field, "holds non-finite values (NaN or inf)")
        return a[()] if a.ndim == 0 else a

    def dataclass(self, cls, v, field, optional=()):
        """``cls(**v)`` with exactly ``cls``'s fields (those in ``optional`` may be absent);
        the class's own validation failing is a refusal naming ``field``."""
        names = [f.name for f in dataclasses.fields(cls)]
        self.dict(v, field, [n for n in names if n not in optional], optional)
        try:
            return cls(**v)
        except (TypeError, ValueError) as e:  # LockstepError is a ValueError
            self.fail(field, f"is invalid: {e}")


# --- parameter trees ------------------------------------------------------------------------


def pack(prefix: str, tree, arrays: dict):
    """A nested structure of dicts, lists, arrays and JSON scalars as JSON: each array (or
    numpy scalar) goes to ``arrays["<prefix>.<key>.<index>..."]`` and is replaced by the
    string "@<that name>". Keys must be names without '.' so the joined names are unique."""
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            if not (isinstance(k, str) and NAME.fullmatch(k) and "." not in k):
                raise ValueError(f"key {str(k)[:60]!r} under {prefix} must be made of letters, "
                                 "digits, '_' and '-'")
            out[k] = pack(f"{prefix}.{k}", v, arrays)
        return out
    if isinstance(tree, (list, tuple)):
        return [pack(f"{prefix}.{i}", v, arrays) for i, v in enumerate(tree)]
    if isinstance(tree, (np.ndarray, np.generic)):
        _check_name(prefix, "array")
        if prefix in arrays:
            raise ValueError(f"array name {prefix} is used twice")
        arrays[prefix] = np.asarray(tree)
        return "@" + prefix
    if isinstance(tree, str) and tree.startswith("@"):
        raise ValueError(f"the string {tree[:60]!r} under {prefix} would read back as an "
                         "array reference")
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise ValueError(f"{prefix} is a {type(tree).__name__}; pack takes dicts, lists, arrays "
                     "and JSON scalars")


def unpack(struct, arrays: dict, fields: Fields, field: str):
    """The inverse of ``pack`` (lists come back as lists, 0-d arrays as numpy scalars); a
    reference to an array the section lacks is refused naming ``field``."""
    if isinstance(struct, dict):
        return {k: unpack(v, arrays, fields, f"{field}.{k}") for k, v in struct.items()}
    if isinstance(struct, list):
        return [unpack(v, arrays, fields, f"{field}.{i}") for i, v in enumerate(struct)]
    if isinstance(struct, str) and struct.startswith("@"):
        a = arrays.get(struct[1:])
        if a is None:
            fields.fail(field, f"refers to the array {struct[1:61]}, which is not in the file")
        return a[()] if a.ndim == 0 else a
    return struct


# --- random number generator state ----------------------------------------------------------


def rng_state(rng: np.random.Generator) -> dict:
    """The PCG64 state as JSON (its integers exceed 64 bits; JSON keeps them exact)."""
    return rng.bit_generator.state


def rng_from_state(state: dict) -> np.random.Generator:
    bg = np.random.PCG64()
    bg.state = state
    return np.random.Generator(bg)


def check_rng_state(fields: Fields, v, field):
    """A PCG64 state as ``rng_state`` writes it, each part checked."""
    fields.dict(v, field, ("bit_generator", "state", "has_uint32", "uinteger"))
    if v["bit_generator"] != "PCG64":
        fields.fail(f"{field}.bit_generator", "must be PCG64")
    s = fields.dict(v["state"], f"{field}.state", ("state", "inc"))
    for k in ("state", "inc"):
        fields.int(s[k], f"{field}.state.{k}", 0, (1 << 128) - 1)
    fields.int(v["has_uint32"], f"{field}.has_uint32", 0, 1)
    fields.int(v["uinteger"], f"{field}.uinteger", 0, (1 << 32) - 1)
    try:
        rng_from_state(v)
    except (ValueError, TypeError) as e:
        fields.fail(field, f"is not a PCG64 state ({e})")
    return v
