"""Kernels both strategies share, for one working dtype: the loss terms of one (t, sample),
the ordered loss sum, weight gradients, global-norm clipping and the optimizer updates.

Everything lives in flat 1-D C-contiguous device arrays (``layout``). Reductions that the
contract defines as sequential stay sequential in one thread (docs/arithmetic.md sections 4-6):
threads split independent outputs only, there are no atomics and no tree reductions.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
from numba import cuda  # module-level: the simulator swaps this global inside kernels

from .math import make_math

# Optimizer kinds of the update kernel.
SGD, MOMENTUM, ADAM = 0, 1, 2


def layout(I, H, O):
    """Offsets of W_ih, W_hh, b, W_out, b_out in the flat parameter vector, and its size."""
    o_whh = 4 * H * I
    o_b = o_whh + 4 * H * H
    o_wout = o_b + 4 * H
    o_bout = o_wout + O * H
    return {"W_ih": 0, "W_hh": o_whh, "b": o_b, "W_out": o_wout, "b_out": o_bout,
            "size": o_bout + O}


def signature(dtype, spec: str):
    """Kernel signature from a compact spec: F = working-dtype array, L = int64 array,
    i = int64 scalar, f = working-dtype scalar (all arrays 1-D C-contiguous)."""
    from numba import types
    w = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    m = {"F": w[::1], "L": types.int64[::1], "i": types.int64, "f": w}
    return tuple(m[ch] for ch in spec)


@functools.lru_cache(maxsize=None)
def make_common(dtype) -> SimpleNamespace:
    mm = make_math(dtype)
    mul, add, sub, div, sqrt = mm.mul, mm.add, mm.sub, mm.div, mm.sqrt
    exp, log = mm.exp, mm.log
    ZERO, ONE = mm.ZERO, mm.ONE
    dev = cuda.jit(device=True)

    @dev
    def loss_at(t, b, s, T, B, N, O, is_ce, loss_all, nf, OUT, YF, YI, DY, TERMS):
        """dy of sample b (data index s) at step t, and its loss terms (MSE: d*d per output;
        CE: log(sum e) - (z_y - m)), stored where the ordered sum (t, b, o) reads them."""
        base = (t * B + b) * O
        if loss_all == 0 and t != T - 1:
            for o in range(O):
                DY[base + o] = ZERO
            return
        tl = t if loss_all != 0 else 0
        ys = t * N + s if loss_all != 0 else s
        if is_ce == 0:
            for o in range(O):
                d = sub(OUT[base + o], YF[ys * O + o])
                TERMS[(tl * B + b) * O + o] = mul(d, d)
                DY[base + o] = div(add(d, d), nf)
        else:
            m = OUT[base]
            for o in range(1, O):
                if OUT[base + o] > m:
                    m = OUT[base + o]
            s_acc = ZERO
            for o in range(O):
                e = exp(sub(OUT[base + o], m))
                DY[base + o] = e
                s_acc = add(s_acc, e)
            target = YI[ys]
            z_y = sub(OUT[base + target], m)
            TERMS[tl * B + b] = sub(log(s_acc), z_y)
            for o in range(O):
                hot = ONE if o == target else ZERO
                DY[base + o] = div(sub(div(DY[base + o], s_acc), hot), nf)

    def loss_sum(TERMS, nterms, nf, LOSSES, bi):
        """One thread: loss = (((+0 + term0) + term1) + ...) / N."""
        if cuda.grid(1) == 0:
            acc = ZERO
            for i in range(nterms):
                acc = add(acc, TERMS[i])
            LOSSES[bi] = div(acc, nf)

    def wgrad(X, PERM, off, B, T, N, I, H, O, HS, DA, DY, G):
        """One thread per gradient element, summing over n = t*B + b ascending from +0."""
        H4 = 4 * H
        o_whh = H4 * I
        o_b = o_whh + H4 * H
        o_wout = o_b + H4
        o_bout = o_wout + O * H
        for g in range(cuda.grid(1), o_bout + O, cuda.gridsize(1)):
            wgrad_one(g, X, PERM, off, B, T, N, I, H, O, HS, DA, DY, G)

    @dev
    def wgrad_one(g, X, PERM, off, B, T, N, I, H, O, HS, DA, DY, G):
        H4 = 4 * H
        o_whh = H4 * I
        o_b = o_whh + H4 * H
        o_wout = o_b + H4
        o_bout = o_wout + O * H
        acc = ZERO
        if g < o_whh:  # dW_ih[j, k] = sum da[n, j] * x[n, k]
            j = g // I
            k = g - j * I
            for t in range(T):
                for b in range(B):
                    s = PERM[off + b]
                    acc = add(acc, mul(DA[(t * B + b) * H4 + j], X[(t * N + s) * I + k]))
        elif g < o_b:  # dW_hh[j, k] = sum da[n, j] * h_{t-1}[n, k]
            j = (g - o_whh) // H
            k = g - o_whh - j * H
            for t in range(T):
                for b in range(B):
                    acc = add(acc, mul(DA[(t * B + b) * H4 + j], HS[(t * B + b) * H + k]))
        elif g < o_wout:  # db[j] = sum da[n, j]
            j = g - o_b
            for n in range(T * B):
                acc = add(acc, DA[n * H4 + j])
        elif g < o_bout:  # dW_out[o, k] = sum dy[n, o] * h_t[n, k]
            o = (g - o_wout) // H
            k = g - o_wout - o * H
            for n in range(T * B):
                acc = add(acc, mul(DY[n * O + o], HS[(n + B) * H + k]))
        else:  # db_out[o] = sum dy[n, o]
            o = g - o_bout
            for n in range(T * B):
                acc = add(acc, DY[n * O + o])
        G[g] = acc

    def row_norms(G, I, H, O, ROWS):
        """One thread per gradient row: sum of squares, columns ascending, from +0."""
        for r in range(cuda.grid(1), 12 * H + 2 * O, cuda.gridsize(1)):
            row_norm_one(r, G, I, H, O, ROWS)

    @dev
    def row_norm_one(r, G, I, H, O, ROWS):
        H4 = 4 * H
        o_whh = H4 * I
        o_b = o_whh + H4 * H
        o_wout = o_b + H4
        o_bout = o_wout + O * H
        if r < H4:
            st = r * I
            ln = I
        elif r < 2 * H4:
            st = o_whh + (r - H4) * H
            ln = H
        elif r < 3 * H4:
            st = o_b + (r - 2 * H4)
            ln = 1
        elif r < 3 * H4 + O:
            st = o_wout + (r - 3 * H4) * H
            ln = H
        else:
            st = o_bout + (r - 3 * H4 - O)
            ln = 1
        acc = ZERO
        for c in range(ln):
            v = G[st + c]
            acc = add(acc, mul(v, v))
        ROWS[r] = acc

    def clip_scale(ROWS, nrows, clip, NB):
        """One thread: norm = sqrt(sum of rows in order); NB = (clip / norm, 1) if norm > clip,
        else (., 0)."""
        if cuda.grid(1) == 0:
            acc = ZERO
            for r in range(nrows):
                acc = add(acc, ROWS[r])
            norm = sqrt(acc)
            if norm > clip:
                NB[0] = div(clip, norm)
                NB[1] = ONE
            else:
                NB[1] = ZERO

    def update(P, G, NB, M, V, kind, lr, mu, b1, b2, eps, step, bc, size):
        """One thread per parameter element: clipping scale, then SGD / momentum / Adam."""
        for i in range(cuda.grid(1), size, cuda.gridsize(1)):
            update_one(i, P, G, NB, M, V, kind, lr, mu, b1, b2, eps, step, bc)

    @dev
    def update_one(i, P, G, NB, M, V, kind, lr, mu, b1, b2, eps, step, bc):
        g = G[i]
        if NB[1] != ZERO:
            g = mul(g, NB[0])
        if kind == SGD:
            P[i] = sub(P[i], mul(lr, g))
        elif kind == MOMENTUM:
            v = add(mul(mu, M[i]), g)
            M[i] = v
            P[i] = sub(P[i], mul(lr, v))
        else:
            m = add(mul(b1, M[i]), mul(sub(ONE, b1), g))
            v = add(mul(b2, V[i]), mul(sub(ONE, b2), mul(g, g)))
            M[i] = m
            V[i] = v
            P[i] = sub(P[i], mul(step, div(m, add(div(sqrt(v), bc), eps))))

    py = {
        "loss_sum": (loss_sum, "FifFi"),
        "wgrad": (wgrad, "FLiiiiiiiFFFF"),
        "row_norms": (row_norms, "FiiiF"),
        "clip_scale": (clip_scale, "FifF"),
        "update": (update, "FFFFFifffffffi"),
    }
    return SimpleNamespace(math=mm, loss_at=loss_at, py=py,
                           **{n: cuda.jit(f) for n, (f, _) in py.items()})
