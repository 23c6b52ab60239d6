"""Exhaustive float32 accuracy sweep of the canonical exp, log, sigmoid and tanh.

    python bench/ulp_sweep.py [--funcs exp,log,...] [--workers N] [--chunk LOG2] \
        [--range LO:HI] [--impl cpu|arith] [--float64-samples N] [--json FILE]

Every finite float32 bit pattern (2**32 - 2**24 = 4278190080 inputs: both signs, zeros and
subnormals included, NaN and Inf excluded) goes through the canonical function
(``lockstep._cpu`` when it is built, else ``lockstep.arith``; both are bit-identical, see
tests/test_arith.py) and is compared with a float64 reference. ``--range`` restricts the sweep to
the bit patterns ``LO <= bits < HI`` (hex, e.g. ``3f000000:3f800000``), for quick checks.

Error measure (the one docs/arithmetic.md states): ``|y - f(x)| / ulp(f(x))`` where ``f(x)`` is the
exact result and ``ulp(v) = 2**(max(e, -126) - 23)`` for ``2**e <= |v| < 2**(e+1)``: the spacing of
float32 in the exact result's binade, so every result below 2**-126 (subnormal or zero) is
measured in units of 2**-149. Results are reported separately for *normal* results
(``|f(x)| >= 2**-126``) and *subnormal* ones (``|f(x)| < 2**-126``, zero included). Exact
results whose magnitude rounds to infinity in float32 (exp above ln(FLT_MAX)) must give inf,
NaN references (log of a negative) must give NaN, and ``log(+-0) = -inf``; anything else there
counts as an infinite error (the ``mismatches`` field, which must be 0).

Why a float64 reference is enough: NumPy's float64 ``exp``, ``log`` and ``tanh`` (libm or NumPy's
SIMD loops) are within a few float64 ulps, i.e. a relative error below ``2**-50``; the
float32-exact inputs are converted to float64 exactly; ``sigmoid = 1 / (1 + exp(-x))`` in float64
adds two correctly rounded operations and has relative condition number at most 1 in ``exp(-x)``,
so it stays below ``2**-49`` (where ``exp(-x)`` overflows, the exact sigmoid is below ``e**-709``,
which is zero to within ``2**-149``). A relative error of ``2**-49`` is at most
``2**-49 * 2**24 = 2**-25`` float32 ulps for a normal result; for a subnormal result the absolute
error is below ``2**-49 * 2**-126``, far below 2**-149. So each measured error is within
``EPS = 2**-24`` (6e-8) ulps of the true one; the sweep also checks this empirically against mpmath
on random inputs (``reference_check``). To make the bound one-sided near powers of two (where
the reference may land in the binade above the exact result), the ulp is taken from
``|ref| * (1 - 2**-40)``: the lower binade is used whenever there is doubt, which can only
overstate an error. Hence ``true <= measured + EPS`` for every input.

Worst cases are then confirmed with mpmath at 256 bits: per function and class the sweep keeps
the ``--keep`` largest measured errors (and the largest error it dropped, ``rest_max``). The
reported maximum is the largest mpmath error among those candidates, and
``rest_max + EPS < max`` shows (``proven``) that no other input can exceed it.

With ``--float64-samples N`` it also measures float64 on N sampled inputs per function (NOT
exhaustive: half random bit patterns, half uniform over the function's non-trivial range),
against an x87 long double reference (11 bits more than float64) with mpmath confirming the
worst; these numbers are a lower bound on the float64 maximum, not a proof.

The full float32 sweep of all four functions took 34 minutes with ``--workers 2`` on a 2-vCPU
machine shared with other jobs (about 30 CPU-minutes in all; subnormal inputs are the slowest).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

FUNCS = ("exp", "log", "sigmoid", "tanh")
CLASSES = ("normal", "subnormal")
EPS = 2.0**-24  # bound on |measured - true| in float32 ulps, see the docstring
FINITE_RANGES = ((0x00000000, 0x7F800000), (0x80000000, 0xFF800000))  # all finite float32
MP_PREC = 256
TINY32 = 2.0**-126
# exact |f(x)| at or above this rounds to inf in float32 (FLT_MAX + half an ulp)
OVERFLOW32 = 2.0**128 * (1 - 2.0**-25)


# ----------------------------------------------------------------------------- implementations
def hexf(v: float) -> str:
    """Exact hex of v without trailing zero digits (0x1.19207cp-1, as C and float.fromhex read)."""
    m = re.fullmatch(r"(-?0x[01])(?:\.([0-9a-f]*?)0*)?p([+-]\d+)", float(v).hex())
    if not m:  # inf, nan
        return float(v).hex()
    return f"{m[1]}{'.' + m[2] if m[2] else ''}p{m[3]}"


def _impl(name: str):
    if name == "cpu":
        from lockstep import _cpu

        return _cpu
    from lockstep import arith

    return arith


def default_impl() -> str:
    try:
        from lockstep import _cpu  # noqa: F401
    except ImportError:
        return "arith"
    return "cpu"


def reference(fn: str, x64: np.ndarray) -> np.ndarray:
    """float64 reference of fn at exactly representable inputs (see the module docstring)."""
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        if fn == "exp":
            return np.exp(x64)
        if fn == "log":
            return np.log(x64)
        if fn == "tanh":
            return np.tanh(x64)
        if fn == "sigmoid":
            return 1.0 / (1.0 + np.exp(-x64))
    raise KeyError(fn)


def ulp_errors32(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Measured error of float32 results y in float32 ulps of ref's binade (lower one if in doubt).

    Special values: both NaN, equal infinities, and a result of inf where the exact value rounds
    to inf are exact (0); every other non-finite combination is an infinite error."""
    y64 = y.astype(np.float64)
    a = np.abs(ref)
    with np.errstate(invalid="ignore", over="ignore"):
        shrunk = a * (1 - 2.0**-40)
        e = (shrunk.view(np.uint64) >> np.uint64(52)).astype(np.int64) - 1023  # binade of |ref|
        np.clip(e, -126, 127, out=e)
        inv_ulp = ((1023 + 23 - e).astype(np.uint64) << np.uint64(52)).view(np.float64)
        err = np.abs(y64 - ref) * inv_ulp
        special = ~np.isfinite(err)
        if special.any():
            ys, rs = y64[special], ref[special]
            ok = (np.isnan(ys) & np.isnan(rs)) | (ys == rs) | (
                np.isinf(ys) & (np.abs(rs) >= OVERFLOW32) & (np.sign(ys) == np.sign(rs)))
            err[special] = np.where(ok, 0.0, np.inf)
        # a finite result where the exact value rounds to inf is wrong, however close it looks
        over = (a >= OVERFLOW32) & np.isfinite(y64)
        err[over] = np.inf
    return err


# ----------------------------------------------------------------------------- the sweep
def _top(err: np.ndarray, idx: np.ndarray, k: int):
    """The k largest errors among err[idx] as [(err, index)], and the largest one left out."""
    if idx.size == 0:
        return [], 0.0
    sub = err[idx]
    if sub.size > k:
        part = np.argpartition(sub, sub.size - k - 1)
        rest = float(sub[part[sub.size - k - 1]])
        keep = part[sub.size - k:]
    else:
        rest, keep = 0.0, np.arange(sub.size)
    return [(float(sub[i]), int(idx[i])) for i in keep], rest


def sweep_chunk(args):
    """One chunk of bit patterns [lo, hi) for the given functions; returns per-function stats."""
    impl_name, funcs, lo, hi, keep, threads = args
    impl = _impl(impl_name)
    if impl_name == "cpu" and threads:
        impl.set_num_threads(threads)
    bits = np.arange(lo, hi, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x64 = x.astype(np.float64)
    out = {}
    for fn in funcs:
        y = getattr(impl, fn)(x)
        ref = reference(fn, x64)
        err = ulp_errors32(y, ref)
        # special: NaN, infinite or overflowing exact results (checked only for the right value)
        special = ~np.isfinite(ref) | (np.abs(ref) >= OVERFLOW32)
        sub = ~special & (np.abs(ref) < TINY32)
        bad = np.isinf(err)
        stats = {"mismatches": int(np.count_nonzero(bad)), "mismatch_bits": [],
                 "special": int(np.count_nonzero(special))}
        if stats["mismatches"]:
            stats["mismatch_bits"] = [int(b) for b in bits[bad][:5]]
        for cls, mask in (("normal", ~special & ~sub), ("subnormal", sub)):
            idx = np.flatnonzero(mask & np.isfinite(err))
            top, rest = _top(err, idx, keep)
            stats[cls] = {
                "count": int(np.count_nonzero(mask)),
                "over_half": int(np.count_nonzero(err[idx] > 0.5)),
                "over_one": int(np.count_nonzero(err[idx] > 1.0)),
                "top": [(e, int(bits[i])) for e, i in top],
                "rest_max": rest,
            }
        out[fn] = stats
    return out


def chunks(ranges, size):
    for lo, hi in ranges:
        for a in range(lo, hi, size):
            yield a, min(a + size, hi)


def merge(acc, part, keep):
    for fn, st in part.items():
        a = acc.setdefault(fn, {"mismatches": 0, "mismatch_bits": [], "special": 0,
                                **{c: {"count": 0, "over_half": 0, "over_one": 0, "top": [],
                                       "rest_max": 0.0} for c in CLASSES}})
        a["mismatches"] += st["mismatches"]
        a["special"] += st["special"]
        a["mismatch_bits"] = (a["mismatch_bits"] + st["mismatch_bits"])[:10]
        for c in CLASSES:
            ac, sc = a[c], st[c]
            for k in ("count", "over_half", "over_one"):
                ac[k] += sc[k]
            both = sorted(ac["top"] + sc["top"], reverse=True)
            dropped = [e for e, _ in both[keep:]]
            ac["top"] = both[:keep]
            ac["rest_max"] = max([ac["rest_max"], sc["rest_max"], *dropped])


# ----------------------------------------------------------------------------- mpmath
def mp_exact(fn, v):
    import mpmath

    v = mpmath.mpf(v)
    if fn == "exp":
        return mpmath.exp(v)
    if fn == "log":
        return mpmath.log(v)
    if fn == "tanh":
        return mpmath.tanh(v)
    return 1 / (1 + mpmath.exp(-v))


def mp_ulp_error(fn, xv: float, yv: float, p: int = 24, emin: int = -126):
    """(error in ulps of the exact result, class) at MP_PREC bits."""
    import mpmath

    with mpmath.workprec(MP_PREC):
        r = mp_exact(fn, xv)
        if r == 0:
            e = emin
        else:
            e = max(int(mpmath.frexp(r)[1]) - 1, emin)  # 2**e <= |r| < 2**(e+1)
        cls = "normal" if r != 0 and abs(r) >= mpmath.ldexp(1, emin) else "subnormal"
        return float(abs(mpmath.mpf(yv) - r) / mpmath.ldexp(1, e - (p - 1))), cls


def reference_check(funcs, n, seed=1):
    """Max |float64 reference - exact| in float32 ulps on n random finite float32 per function."""
    rng = np.random.default_rng(seed)
    out = {}
    for fn in funcs:
        b = rng.integers(0, 2**32, 4 * n, dtype=np.uint64).astype(np.uint32)
        x = b.view(np.float32)
        x = x[np.isfinite(x)]
        wide = {"exp": (-104, 89), "log": (0, 4), "sigmoid": (-110, 40), "tanh": (-10, 10)}[fn]
        x = np.concatenate([x[: n // 2], rng.uniform(*wide, n - n // 2).astype(np.float32)])
        if fn == "log":
            x = np.abs(x)
        ref = reference(fn, x.astype(np.float64))
        worst = 0.0
        for xv, rv in zip(x.tolist(), ref.tolist()):
            if not np.isfinite(rv) or abs(rv) >= OVERFLOW32:
                continue
            # the reference itself measured as if it were the result (float64 value, no rounding)
            worst = max(worst, mp_ulp_error(fn, xv, rv)[0])
        out[fn] = {"samples": int(x.size), "max_ref_error_f32ulp": worst}
    return out


def confirm(fn, st, x_of_bits):
    """Recompute every candidate with mpmath; returns the per-class summary."""
    res = {}
    for c in CLASSES:
        s = st[c]
        cands = []
        for measured, b in s["top"]:
            xv = float(x_of_bits(b))
            yv = float(x_of_bits(b, fn))
            mp_err, mp_cls = mp_ulp_error(fn, xv, yv)
            cands.append({"x": hexf(xv), "bits": f"0x{b:08x}", "y": hexf(yv),
                          "measured_f64": measured, "mpmath": mp_err, "mpmath_class": mp_cls})
        cands.sort(key=lambda d: -d["mpmath"])
        best = cands[0] if cands else None
        res[c] = {
            "count": s["count"], "over_half": s["over_half"], "over_one": s["over_one"],
            "max_ulp": best["mpmath"] if best else None,
            "x": best["x"] if best else None, "bits": best["bits"] if best else None,
            "y": best["y"] if best else None,
            "rest_max_measured": s["rest_max"],
            # no input outside the candidates can be worse (or every error is below 1e-6 ulp)
            "proven": bool(best is None or s["rest_max"] + EPS < max(best["mpmath"], 1e-6)),
            "candidates": cands,
        }
    tops = [res[c] for c in CLASSES if res[c]["max_ulp"] is not None]
    overall = max(tops, key=lambda r: r["max_ulp"]) if tops else {"max_ulp": None, "x": None,
                                                                  "y": None}
    return {"max_ulp": overall["max_ulp"], "x": overall["x"], "y": overall["y"],
            "special": st["special"], "mismatches": st["mismatches"],
            "mismatch_bits": [f"0x{b:08x}" for b in st["mismatch_bits"]],
            **{c: res[c] for c in CLASSES}}


# ----------------------------------------------------------------------------- float64 (sampled)
def float64_sampled(impl, funcs, n, seed=0, keep=64):
    """Sampled (not exhaustive) float64 maxima with a long double reference, mpmath-confirmed."""
    if np.finfo(np.longdouble).nmant < 63:
        return {"skipped": "long double is not wider than double on this platform"}
    rng = np.random.default_rng(seed)
    out = {}
    for fn in funcs:
        wide = {"exp": (-746, 710), "log": (0, 4), "sigmoid": (-750, 40), "tanh": (-25, 25)}[fn]
        b = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True).view(np.float64)
        b = b[np.isfinite(b)][: n // 2]
        u = rng.uniform(*wide, n - b.size)
        x = np.concatenate([b, u, rng.uniform(-3, 3, n // 8)])
        if fn == "log":
            x = np.abs(x)
        y = getattr(impl, fn)(x)
        xl = x.astype(np.longdouble)
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            ref = {"exp": np.exp, "log": np.log, "tanh": np.tanh}.get(fn)
            ref = ref(xl) if ref else 1 / (1 + np.exp(-xl))
            a = np.abs(ref)
            fin = np.isfinite(a) & (a <= np.finfo(np.float64).max) & np.isfinite(y)
            # lower binade when in doubt: long double is good to ~2**-62 relative
            _, e = np.frexp(np.where(fin, a * (1 - np.longdouble(2.0) ** -60), 1))
            ulp = np.ldexp(np.longdouble(1), np.maximum(e - 1, -1022) - 52)
            err = np.where(fin, np.abs(y.astype(np.longdouble) - ref) / ulp, 0).astype(np.float64)
        order = np.argsort(err)[::-1][:keep]
        cands = []
        for i in order:
            mp_err, cls = mp_ulp_error(fn, float(x[i]), float(y[i]), p=53, emin=-1022)
            cands.append({"x": hexf(x[i]), "y": hexf(y[i]),
                          "measured_longdouble": float(err[i]), "mpmath": mp_err,
                          "mpmath_class": cls})
        cands.sort(key=lambda d: -d["mpmath"])
        out[fn] = {"samples": int(x.size), "max_ulp": cands[0]["mpmath"], "x": cands[0]["x"],
                   "over_one": int(np.count_nonzero(err > 1.0)), "candidates": cands[:4]}
    return out


# ----------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--funcs", default=",".join(FUNCS))
    ap.add_argument("--impl", choices=("cpu", "arith"), default=None,
                    help="canonical implementation (default: cpu if lockstep._cpu is built)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="worker processes (default: all cores)")
    ap.add_argument("--threads", type=int, default=1,
                    help="lockstep._cpu threads per worker (default 1)")
    ap.add_argument("--chunk", type=int, default=22, help="log2 of the inputs per chunk")
    ap.add_argument("--range", default=None, help="LO:HI hex bit patterns (default: all finite)")
    ap.add_argument("--keep", type=int, default=32, help="candidates kept per function and class")
    ap.add_argument("--ref-samples", type=int, default=2000,
                    help="random inputs per function for the mpmath check of the reference")
    ap.add_argument("--float64-samples", type=int, default=0,
                    help="also sample float64 with N inputs per function (not exhaustive)")
    ap.add_argument("--skip-float32", action="store_true",
                    help="only the float64 sample (with --float64-samples)")
    ap.add_argument("--json", default=None, help="write the results here")
    a = ap.parse_args(argv)

    funcs = tuple(f for f in a.funcs.split(",") if f)
    bad = [f for f in funcs if f not in FUNCS]
    if bad:
        ap.error(f"unknown function(s) {bad}; choose from {FUNCS}")
    impl_name = a.impl or default_impl()
    if a.skip_float32:
        if not a.float64_samples:
            ap.error("--skip-float32 needs --float64-samples N")
        return float64_only(impl_name, funcs, a)
    if a.range:
        lo, hi = (int(v, 16) for v in a.range.split(":"))
        ranges = [(max(lo, rlo), min(hi, rhi)) for rlo, rhi in FINITE_RANGES
                  if max(lo, rlo) < min(hi, rhi)]
    else:
        ranges = list(FINITE_RANGES)
    total = sum(h - l for l, h in ranges)
    size = 1 << a.chunk
    jobs = [(impl_name, funcs, lo, hi, a.keep, a.threads) for lo, hi in chunks(ranges, size)]

    t0 = time.time()
    acc: dict = {}
    done = 0
    if a.workers > 1:
        with ProcessPoolExecutor(a.workers) as ex:
            for part, (_, _, lo, hi, _, _) in zip(ex.map(sweep_chunk, jobs), jobs):
                merge(acc, part, a.keep)
                done += hi - lo
                _progress(done, total, t0)
    else:
        for job in jobs:
            merge(acc, sweep_chunk(job), a.keep)
            done += job[3] - job[2]
            _progress(done, total, t0)
    sweep_s = time.time() - t0
    print(file=sys.stderr)

    impl = _impl(impl_name)

    def x_of_bits(b, fn=None):
        x = np.array([b], np.uint32).view(np.float32)
        return x[0] if fn is None else getattr(impl, fn)(x)[0]

    t1 = time.time()
    results = {fn: confirm(fn, acc[fn], x_of_bits) for fn in funcs}
    ref_check = reference_check(funcs, a.ref_samples) if a.ref_samples else {}
    f64 = float64_sampled(impl, funcs, a.float64_samples) if a.float64_samples else None
    confirm_s = time.time() - t1

    print(f"float32, {total} inputs ({'exhaustive' if total == 4278190080 else 'sub-range'}), "
          f"impl lockstep.{'_cpu' if impl_name == 'cpu' else 'arith'}, "
          f"{sweep_s:.0f} s sweep + {confirm_s:.0f} s mpmath")
    print("error = |y - f(x)| / ulp(f(x)), ulp of the exact result's float32 binade, "
          "2**-149 below 2**-126")
    hdr = (f"{'function':8} {'max ulp':>8}  {'at x':16} {'normal max':>10}  {'at x':16} "
           f"{'subnorm max':>11}  {'at x':16} {'>0.5 ulp':>11} {'>1 ulp':>9} {'mism':>4} proven")
    print(hdr)
    for fn, r in results.items():
        n, s = r["normal"], r["subnormal"]

        def cell(c, w):
            return (f"{c['max_ulp']:>{w}.4f}  {c['x']:16}" if c["max_ulp"] is not None
                    else f"{'-':>{w}}  {'(none)':16}")

        print(f"{fn:8} {cell(r, 8)} {cell(n, 10)} {cell(s, 11)} "
              f"{n['over_half'] + s['over_half']:>11} {n['over_one'] + s['over_one']:>9} "
              f"{r['mismatches']:>4} {n['proven'] and s['proven']}")
    if ref_check:
        print("reference check (float64 vs mpmath, float32 ulps): " + ", ".join(
            f"{fn} {v['max_ref_error_f32ulp']:.2e}" for fn, v in ref_check.items()))
    if f64:
        print("float64, SAMPLED (not exhaustive), long double reference, mpmath-confirmed:")
        for fn, v in f64.items():
            if isinstance(v, dict) and "max_ulp" in v:
                print(f"  {fn:8} {v['max_ulp']:.4f} ulp at {v['x']} ({v['samples']} samples)")

    if a.json:
        doc = {
            "what": "canonical float32 exp/log/sigmoid/tanh vs exact, every input in range",
            "exhaustive": total == 4278190080, "inputs": total,
            "ranges": [[f"0x{lo:08x}", f"0x{hi:08x}"] for lo, hi in ranges],
            "error_definition": "|y - f(x)| / 2**(max(e,-126)-23), 2**e <= |f(x)| < 2**(e+1); "
                                "classes: normal |f(x)| >= 2**-126, subnormal below (incl. 0)",
            "reference": "numpy float64 (sigmoid = 1/(1+exp(-x))), lower binade when in doubt; "
                         "candidates confirmed with mpmath at 256 bits",
            "eps_f32ulp": EPS, "impl": f"lockstep.{'_cpu' if impl_name == 'cpu' else 'arith'}",
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "python": platform.python_version(), "numpy": np.__version__,
                        "workers": a.workers},
            "sweep_s": round(sweep_s, 1), "confirm_s": round(confirm_s, 1),
            "functions": {fn: {**r, **{c: {**r[c], "candidates": r[c]["candidates"][:4]}
                                       for c in CLASSES}} for fn, r in results.items()},
            "reference_check": ref_check,
        }
        if f64:
            doc["float64_sampled"] = f64
        with open(a.json, "w") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
    bad = [fn for fn, r in results.items() if r["mismatches"]
           or not (r["normal"]["proven"] and r["subnormal"]["proven"])]
    return 1 if bad else 0


def float64_only(impl_name, funcs, a):
    t0 = time.time()
    f64 = float64_sampled(_impl(impl_name), funcs, a.float64_samples)
    print(f"float64, SAMPLED (not exhaustive), long double reference, mpmath-confirmed, "
          f"{time.time() - t0:.0f} s:")
    for fn, v in f64.items():
        print(f"  {fn:8} {v['max_ulp']:.4f} ulp at {v['x']} ({v['samples']} samples, "
              f"{v['over_one']} measured above 1 ulp)")
    if a.json:
        doc = {"what": "canonical float64 exp/log/sigmoid/tanh vs exact on SAMPLED inputs "
                       "(not exhaustive): the worst seen, a lower bound on the maximum",
               "samples_per_function": a.float64_samples, "seed": 0,
               "sampling": "half random finite bit patterns, the rest uniform over the "
                           "function's non-trivial range, plus n/8 uniform in [-3, 3]; "
                           "log takes |x|",
               "error_definition": "|y - f(x)| / 2**(max(e,-1022)-52), 2**e <= |f(x)| < 2**(e+1)",
               "reference": "x87 long double (64-bit significand), lower binade when in doubt; "
                            "the 64 largest confirmed with mpmath at 256 bits",
               "impl": f"lockstep.{'_cpu' if impl_name == 'cpu' else 'arith'}",
               "machine": {"platform": platform.platform(), "numpy": np.__version__},
               "seconds": round(time.time() - t0, 1), "functions": f64}
        with open(a.json, "w") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
    return 0


def _progress(done, total, t0):
    el = time.time() - t0
    eta = el / done * (total - done) if done else 0
    print(f"\r{done / total:7.2%}  {el:6.0f} s elapsed, ~{eta:5.0f} s left", end="",
          file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
