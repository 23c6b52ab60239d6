"""Checkpoint storage (lockstep.checkpoint): sections round-trip bit for bit, and every
damaged, foreign, edited or hostile file is refused with one CheckpointError line, without
reading or inflating more than its declarations allow."""

import dataclasses
import hashlib
import io
import json
import os
import resource
import signal
import tempfile
import time
import zipfile
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockstep import checkpoint as ck
from lockstep.checkpoint import CheckpointError, Fields
from lockstep.errors import LockstepError


def sample_sections():
    rng = np.random.default_rng(7)
    return {
        "model": {"meta": {"hidden": 8, "lr": 0.001, "names": ["a", "b"],
                           "nested": {"deep": [1, {"x": None, "y": True}]},
                           "rng": ck.rng_state(np.random.default_rng(3))},
                  "arrays": {"W": rng.standard_normal((4, 3)).astype(np.float32),
                             "b": rng.standard_normal(4),
                             "steps": np.arange(5, dtype=np.int64),
                             "mask": np.array([True, False, True]),
                             "labels": np.array(["2020-01", "2020-02", "ünïcode"]),
                             "scalar": np.float64(-0.0),
                             "empty": np.zeros((0, 3), np.float32)}},
        "data.v1": {"meta": {}, "arrays": {"y": rng.standard_normal(64)}},
    }


def same_array(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture
def good(tmp_path):
    return ck.write(tmp_path / "checkpoint.npz", sample_sections())


def members(path):
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def rezip(path, mem, deflate=()):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in mem.items():
            z.writestr(zipfile.ZipInfo(name), data,
                       zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED)
    return path


def with_digest(h):
    body = {k: v for k, v in h.items() if k != "digest"}
    h["digest"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                                 .encode()).hexdigest()
    return json.dumps(h).encode()


def npy(a, allow_pickle=False):
    f = io.BytesIO()
    np.lib.format.write_array(f, a, allow_pickle=allow_pickle)
    return f.getvalue()


def refused(path, *words):
    with pytest.raises(CheckpointError) as ei:
        ck.read(path)
    msg = str(ei.value)
    assert "\n" not in msg and ei.value.__cause__ is None
    for w in words:
        assert w in msg, msg
    return msg


@contextmanager
def alarm(seconds):
    def hang(*_):
        raise AssertionError(f"took more than {seconds} s")
    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --- round trips ----------------------------------------------------------------------------


def test_round_trip_bit_identical(good):
    got = ck.read(good)
    want = sample_sections()
    assert set(got["sections"]) == set(want) and isinstance(got["lockstep_version"], str)
    for s, sec in want.items():
        assert got["sections"][s]["meta"] == sec["meta"]
        arrays = got["sections"][s]["arrays"]
        assert set(arrays) == set(sec["arrays"])
        for n, a in sec["arrays"].items():
            assert same_array(arrays[n], np.asarray(a)), n
    rng = ck.rng_from_state(got["sections"]["model"]["meta"]["rng"])
    assert rng.random() == np.random.default_rng(3).random()
    with np.load(good) as z:  # still a .npz
        assert same_array(z["model/W"], want["model"]["arrays"]["W"])


def test_same_input_same_bytes(tmp_path):
    a = ck.write(tmp_path / "a.npz", sample_sections(), lockstep_version="9.9")
    b = ck.write(tmp_path / "b.npz", sample_sections(), lockstep_version="9.9")
    assert a.read_bytes() == b.read_bytes()
    assert ck.read(a)["lockstep_version"] == "9.9"


def test_pack_unpack(tmp_path):
    tree = {"params": {"W_ih": np.ones((4, 2)), "b": np.zeros(4, np.float32)},
            "moments": [np.arange(3), {"v": np.float32(0.5)}],
            "step": 12, "name": "adam", "none": None}
    arrays = {}
    meta = ck.pack("opt", tree, arrays)
    assert sorted(arrays) == ["opt.moments.0", "opt.moments.1.v", "opt.params.W_ih",
                              "opt.params.b"]
    assert meta["params"]["b"] == "@opt.params.b" and meta["step"] == 12
    p = ck.write(tmp_path / "c.npz", {"opt": {"meta": {"tree": meta}, "arrays": arrays}})
    sec = ck.read(p)["sections"]["opt"]
    back = ck.unpack(sec["meta"]["tree"], sec["arrays"], Fields(p, "opt", sec["arrays"]), "tree")
    assert back["step"] == 12 and back["name"] == "adam" and back["none"] is None
    assert same_array(back["params"]["W_ih"], tree["params"]["W_ih"])
    assert same_array(back["moments"][0], tree["moments"][0])
    assert back["moments"][1]["v"] == np.float32(0.5) and back["moments"][1]["v"].dtype == "f4"
    missing = r"field opt\.tree\.params\.W_ih .*opt\.params\.W_ih,"
    with pytest.raises(CheckpointError, match=missing):
        ck.unpack(meta, {}, Fields(p, "opt", {}), "tree")
    for bad in ({"a.b": np.ones(1)}, {"s": "@x"}, {"o": object()}):
        with pytest.raises(ValueError):
            ck.pack("p", bad, {})
    with pytest.raises(ValueError, match="twice"):
        ck.pack("p", {"x": np.ones(1)}, {"p.x": np.ones(1)})


def test_ten_thousand_arrays(tmp_path):
    arrays = {f"s{i}": np.full(3, i, np.float32) for i in range(10_000)}
    t = time.perf_counter()
    p = ck.write(tmp_path / "many.npz", {"series": {"meta": {"n": 10_000}, "arrays": arrays}})
    got = ck.read(p)["sections"]["series"]["arrays"]
    assert time.perf_counter() - t < 10
    assert len(got) == 10_000 and same_array(got["s9999"], arrays["s9999"])


def test_write_refusals(tmp_path):
    p = tmp_path / "x.npz"
    deep = deeper = 0
    for i in range(10_000):  # past read's depth limit, and past json's recursion limit
        deep = [deep] if i < 40 else deep
        deeper = [deeper]
    bad = [{"a/b": {"meta": {}, "arrays": {}}},
           {"a": {"meta": {}, "arrays": {"x y": np.ones(1)}}},
           {"a": {"meta": {}, "arrays": {"o": np.array([None, 1], dtype=object)}}},
           {"a": {"meta": {}, "arrays": {"r": np.zeros(2, dtype=[("x", "f8")])}}},
           {"a": {"meta": {"v": float("nan")}, "arrays": {}}},
           {"a": {"meta": {"v": object()}, "arrays": {}}},
           {"a": {"meta": {"v": 10 ** 50}, "arrays": {}}},
           {"a": {"meta": {}}},
           {1: {"meta": {}, "arrays": {}}},
           {"a": {"meta": {"v": deep}, "arrays": {}}},
           {"a": {"meta": {"v": deeper}, "arrays": {}}},
           []]
    for sections in bad:
        with pytest.raises(ValueError):
            ck.write(p, sections)
    assert not p.exists() and os.listdir(tmp_path) == []


# --- refusals -------------------------------------------------------------------------------


def test_not_a_file(tmp_path):
    refused(tmp_path / "nope.npz", "no checkpoint at", "does not exist", "--checkpoint")
    refused(tmp_path, "is a directory")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with alarm(5):
        refused(fifo, "not a regular file")
    refused("/dev/zero", "not a regular file")


def test_not_a_zip(tmp_path):
    p = tmp_path / "c.npz"
    p.write_text("time,value\n1,2\n")
    refused(p, "not a ZIP file")
    p.write_bytes(b"")
    refused(p, "not a ZIP file")


def test_missing_header_and_format_1(tmp_path, good):
    mem = members(good)
    del mem["header.json"]
    refused(rezip(tmp_path / "a.npz", mem), "no header.json")
    np.savez(tmp_path / "old.npz", meta=np.array('{"format_version": 1}'), x=np.ones(2))
    msg = refused(tmp_path / "old.npz", "format 1", "train again")
    assert "format 2" in msg


def test_format_version_1_header(tmp_path, good):
    mem = members(good)
    h = json.loads(mem["header.json"])
    h["format_version"] = 1
    mem["header.json"] = with_digest(h)
    refused(rezip(tmp_path / "a.npz", mem), "checkpoint format 1", "reads format 2",
            "train again")
    h["format"] = "something-else"
    mem["header.json"] = with_digest(h)
    refused(rezip(tmp_path / "b.npz", mem), "not a lockstep checkpoint")


def test_header_edited(tmp_path, good):
    mem = members(good)
    h = json.loads(mem["header.json"])
    h["sections"]["model"]["meta"]["hidden"] = 9  # keeps the old digest
    mem["header.json"] = json.dumps(h).encode()
    refused(rezip(tmp_path / "a.npz", mem), "digest does not match", "delete it or train again")


def test_array_bytes_changed(tmp_path, good):
    mem = members(good)
    b = bytearray(mem["model/W.npy"])
    b[-1] ^= 0x40  # zipfile recomputes the CRC; only the header's SHA-256 can tell
    mem["model/W.npy"] = bytes(b)
    refused(rezip(tmp_path / "a.npz", mem), "model/W", "SHA-256")


def test_extra_missing_resized_duplicate_members(tmp_path, good):
    mem = members(good)
    refused(rezip(tmp_path / "a.npz", {**mem, "evil.npy": npy(np.ones(2))}),
            "evil.npy", "no section declares")
    short = dict(mem)
    del short["data.v1/y.npy"]
    refused(rezip(tmp_path / "b.npz", short), "data.v1/y", "missing")
    refused(rezip(tmp_path / "c.npz", {**mem, "data.v1/y.npy": npy(np.ones(32))}),
            "data.v1/y.npy", "holds 384 bytes", "implies 512")
    refused(rezip(tmp_path / "c.npz", {**mem, "data.v1/y.npy": npy(np.ones(65))}),
            "data.v1/y", "(65,)", "declares")  # within the size window: numpy's header says
    refused(rezip(tmp_path / "d.npz", {**mem, "data.v1/y.npy": npy(np.ones((8, 8)))}),
            "data.v1/y", "declares")  # same size, other shape
    refused(rezip(tmp_path / "e.npz", {**mem, "data.v1/y.npy": npy(np.ones(64, "<i8"))}),
            "data.v1/y", "declares")  # same size, other dtype
    with zipfile.ZipFile(good, "a") as z, pytest.warns(UserWarning, match="Duplicate"):
        z.writestr("model/b.npy", mem["model/b.npy"])
    refused(good, "twice")


def test_deflate_bomb_refused_from_directory(tmp_path, good):
    """A member that declares (and would inflate to) 200 MB while the header declares 64
    float64: refused from the ZIP directory, nothing inflated."""
    mem = members(good)
    p = tmp_path / "bomb.npz"
    with zipfile.ZipFile(p, "w") as z:
        for name, data in mem.items():
            if name != "data.v1/y.npy":
                z.writestr(name, data)
        info = zipfile.ZipInfo("data.v1/y.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        zeros = bytes(1 << 20)
        with z.open(info, "w") as m:
            m.write(mem["data.v1/y.npy"][:128])
            for _ in range(200):
                m.write(zeros)
    assert p.stat().st_size < 2 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    refused(p, "data.v1/y.npy", "holds")
    assert time.perf_counter() - t < 0.5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 << 10  # KiB


def test_declared_sizes(tmp_path, good, monkeypatch):
    mem = members(good)
    h = json.loads(mem["header.json"])
    h["sections"]["data.v1"]["arrays"]["y"]["shape"] = [1 << 50]
    mem2 = {**mem, "header.json": with_digest(h)}
    refused(rezip(tmp_path / "a.npz", mem2), "declares", "PiB of arrays", "memory available")
    monkeypatch.setattr(ck.limits, "available_memory", lambda: 1000)
    refused(good, "more than half the 1000 B")
    monkeypatch.undo()
    monkeypatch.setattr(ck, "MAX_HEADER_BYTES", 100)
    refused(good, "header.json declares")
    monkeypatch.setattr(ck, "MAX_DIRECTORY_BYTES", 100)
    refused(good, "ZIP directory")


@pytest.mark.parametrize("text,why", [
    ('{"format": "lockstep-checkpoint", "x": NaN}', "NaN"),
    ('{"format": "lockstep-checkpoint", "x": -1e999}', "not a finite number"),
    ('{"format": "lockstep-checkpoint", "x": ' + "7" * 1000 + "}", "digits"),
    ("[" * 10_000 + "]" * 10_000, "nesting deeper than 32"),
    ("[" * 40 + "]" * 40, "nesting"),
    ('{"format": ', "Expecting value"),
])
def test_hostile_json(tmp_path, good, text, why):
    mem = {**members(good), "header.json": text.encode()}
    refused(rezip(tmp_path / "a.npz", mem), "header.json is not valid JSON", why)


@pytest.mark.parametrize("field,value,words", [
    ("dtype", "|O", ["arrays.y.dtype"]),
    ("dtype", "[('x', '<f8')]", ["arrays.y.dtype"]),
    ("dtype", "float64", ["arrays.y.dtype"]),  # not the canonical '<f8'
    ("shape", [-1], ["arrays.y.shape"]),
    ("shape", [True], ["arrays.y.shape"]),
    ("sha256", "zz", ["arrays.y.sha256"]),
    ("extra", 1, ["arrays.y.extra", "not a known field"]),
])
def test_bad_declarations(tmp_path, good, field, value, words):
    mem = members(good)
    h = json.loads(mem["header.json"])
    h["sections"]["data.v1"]["arrays"]["y"][field] = value
    mem["header.json"] = with_digest(h)
    refused(rezip(tmp_path / "a.npz", mem), "field header.sections.data.v1", *words)


class Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_object_member_never_unpickled(tmp_path, good):
    marker = str(tmp_path / "unpickled")
    obj = np.array([Boom(marker), 1, 2, 3, 4, 5, 6, 7], dtype=object)
    mem = members(good)
    for dtype in ("<f8", "|O"):  # declared as the data it replaces, and as what it is
        h = json.loads(mem["header.json"])
        h["sections"]["data.v1"]["arrays"]["y"] = {"dtype": dtype, "shape": [8],
                                                   "sha256": "0" * 64}
        m = {**mem, "header.json": with_digest(h), "data.v1/y.npy": npy(obj, True)}
        refused(rezip(tmp_path / "a.npz", m), "data.v1")
    assert not os.path.exists(marker)


# --- Fields ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Conf:
    size: int
    name: str = "x"

    def __post_init__(self):
        if self.size < 1:
            raise LockstepError("size must be positive")


def test_fields_name_section_and_field(tmp_path):
    arrays = {"w": np.ones((2, 3)), "i": np.arange(3), "nan": np.array([1.0, np.nan]),
              "s": np.float64(2.0)}
    f = Fields(tmp_path / "c.npz", "model", arrays)

    def bad(call, field, *words):
        with pytest.raises(CheckpointError) as ei:
            call()
        msg = str(ei.value)
        assert f"field model.{field} " in msg and "\n" not in msg, msg
        assert "delete it or train again" in msg
        for w in words:
            assert w in msg, msg

    bad(lambda: f.dict([], "cfg", ("a",)), "cfg", "must be an object")
    bad(lambda: f.dict({}, "cfg", ("a",)), "cfg.a", "missing")
    bad(lambda: f.dict({"a": 1, "z": 2}, "cfg", ("a",)), "cfg.z", "not a known field")
    assert f.dict({"a": 1, "o": 2}, "cfg", ("a",), optional=("o",)) == {"a": 1, "o": 2}
    bad(lambda: f.int(1.0, "n"), "n", "integer")
    bad(lambda: f.int(True, "n"), "n", "integer")
    bad(lambda: f.int(5, "n", 0, 4), "n", "[0, 4]")
    assert f.int(4, "n", 0, 4) == 4
    bad(lambda: f.float("1", "lr"), "lr", "number")
    bad(lambda: f.float(float("inf"), "lr"), "lr", "finite")
    bad(lambda: f.float(2.0, "lr", hi=1), "lr", "[-inf, 1]")
    assert f.float(1, "lr") == 1.0 and f.float(float("inf"), "lr", finite=False) == np.inf
    bad(lambda: f.bool(1, "flag"), "flag", "true or false")
    assert f.bool(False, "flag") is False
    bad(lambda: f.str(3, "name"), "name", "string")
    bad(lambda: f.str("abcd", "name", 3), "name", "at most 3")
    bad(lambda: f.choice(True, "opt", (1, 2)), "opt", "one of 1, 2")
    bad(lambda: f.choice("sgd2", "opt", ("sgd", "adam")), "opt", "'sgd', 'adam'")
    assert f.choice("adam", "opt", ("sgd", "adam")) == "adam"
    bad(lambda: f.array("gone"), "gone", "not in the file")
    bad(lambda: f.array("w", "params.W", dtype=np.float32), "params.W", "float32")
    bad(lambda: f.array("i"), "i", "must be a f array")
    assert f.array("i", kind="iu").dtype == np.int64
    assert f.array("i", dtype=np.int64).shape == (3,)
    bad(lambda: f.array("w", shape=(2, 4)), "w", "(2, 4)")
    bad(lambda: f.array("w", shape=(None,)), "w", "(any)")
    assert f.array("w", shape=(None, 3)).shape == (2, 3)
    bad(lambda: f.array("w", ndim=1), "w", "1 axes")
    bad(lambda: f.array("nan"), "nan", "non-finite")
    assert f.array("nan", finite=False).shape == (2,)
    assert f.array("s", shape=()) == 2.0 and np.ndim(f.array("s")) == 0
    bad(lambda: f.dataclass(Conf, {"size": 0, "name": "a"}, "conf"), "conf",
        "size must be positive")
    bad(lambda: f.dataclass(Conf, {"size": 1}, "conf"), "conf.name", "missing")
    bad(lambda: f.dataclass(Conf, {"size": "3", "name": "a"}, "conf"), "conf", "invalid")
    assert f.dataclass(Conf, {"size": 2}, "conf", optional=("name",)) == Conf(2)
    with pytest.raises(CheckpointError, match=r": field model is wrong; "):
        f.fail("", "is wrong")  # the section itself

    state = ck.rng_state(np.random.default_rng(1))
    assert ck.check_rng_state(f, state, "rng") is state
    bad(lambda: ck.check_rng_state(f, {**state, "bit_generator": "MT19937"}, "rng"),
        "rng.bit_generator", "PCG64")
    bad(lambda: ck.check_rng_state(f, {**state, "state": {"state": -1, "inc": 1}}, "rng"),
        "rng.state.state")
    bad(lambda: ck.check_rng_state(f, {**state, "has_uint32": 2}, "rng"), "rng.has_uint32")


# --- fuzz -----------------------------------------------------------------------------------


def _fuzz_file():
    with tempfile.TemporaryDirectory() as d:
        p = ck.write(os.path.join(d, "c.npz"), sample_sections())
        data = p.read_bytes()
    y = sample_sections()["data.v1"]["arrays"]["y"].tobytes()
    at = data.index(y)
    return data, range(at, at + len(y))


FUZZ, Y_DATA = _fuzz_file()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flips=st.lists(st.tuples(st.integers(0, len(FUZZ) - 1), st.integers(1, 255)),
                      min_size=1, max_size=3),
       cut=st.one_of(st.none(), st.integers(0, len(FUZZ) - 1)),
       in_y=st.booleans(), y_at=st.integers(0, len(Y_DATA) - 1))
def test_fuzz_flips_and_truncations(flips, cut, in_y, y_at):
    data = bytearray(FUZZ)
    if in_y:  # always test the array data itself: only the SHA-256 can catch some of these
        flips = flips + [(Y_DATA[y_at], 0x01)]
    for i, x in flips:
        data[i] ^= x
    if cut is not None:
        data = data[:cut]
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "c.npz")
        with open(p, "wb") as f:
            f.write(data)
        try:
            got = ck.read(p)
        except CheckpointError as e:
            assert "\n" not in str(e)
            return
    assert not in_y and cut is None, "a changed or cut file was read"
    want = sample_sections()
    for s, sec in want.items():
        assert got["sections"][s]["meta"] == sec["meta"]
        for n, a in sec["arrays"].items():
            assert same_array(got["sections"][s]["arrays"][n], np.asarray(a))
