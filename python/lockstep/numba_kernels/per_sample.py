"""Strategy "per-sample" (the seed's V2/V3 design): one thread owns one sample of the batch
for the whole sequence: forward pass, head, loss terms and dy, and backpropagation through
time, all in one launch. Its caches live in flat global scratch arrays indexed by the sample,
so no thread touches another's data. Weight gradients, the loss sum, clipping and the update
follow as the shared kernels of ``common``.

Scratch layout (B = current batch size, n = t*B + b):
HS, CS ((T+1)*B*H): h_{t-1} and c_{t-1} at index t (index 0 is the zero start state);
GA (T*B*4H): activated gates i, f, g, o; TC (T*B*H): tanh(c_t); OUT, DY (T*B*O);
DA (T*B*4H): gate pre-activation gradients; DCN (B*H): dc_{t+1} * f_{t+1};
TERMS: the loss terms in (t, b, o) order.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

from numba import cuda  # module-level: the simulator swaps this global inside kernels

from .common import make_common


@functools.lru_cache(maxsize=None)
def make_per_sample(dtype) -> SimpleNamespace:
    cm = make_common(dtype)
    mm = cm.math
    mul, add, sub = mm.mul, mm.add, mm.sub
    sigmoid, tanh = mm.sigmoid, mm.tanh
    loss_at = cm.loss_at
    ZERO, ONE = mm.ZERO, mm.ONE

    def sample_step(P, X, YF, YI, PERM, off, B, T, N, I, H, O, is_ce, loss_all, nf,
                    HS, CS, GA, TC, OUT, DY, DA, DCN, TERMS):
        b = cuda.grid(1)
        if b >= B:
            return
        s = PERM[off + b]
        H4 = 4 * H
        o_whh = H4 * I
        o_b = o_whh + H4 * H
        o_wout = o_b + H4
        o_bout = o_wout + O * H
        for u in range(H):
            HS[b * H + u] = ZERO
            CS[b * H + u] = ZERO
        # ---- forward: a = b + x W_ih^T, then + h_{t-1} W_hh^T (one accumulator) ----
        for t in range(T):
            ga = (t * B + b) * H4
            hp = (t * B + b) * H  # h_{t-1}, c_{t-1}
            hn = ((t + 1) * B + b) * H  # h_t, c_t
            xr = (t * N + s) * I
            for j in range(H4):
                acc = P[o_b + j]
                for k in range(I):
                    acc = add(acc, mul(X[xr + k], P[j * I + k]))
                for k in range(H):
                    acc = add(acc, mul(HS[hp + k], P[o_whh + j * H + k]))
                GA[ga + j] = acc
            for u in range(H):
                i = sigmoid(GA[ga + u])
                f = sigmoid(GA[ga + H + u])
                g = tanh(GA[ga + 2 * H + u])
                o = sigmoid(GA[ga + 3 * H + u])
                GA[ga + u] = i
                GA[ga + H + u] = f
                GA[ga + 2 * H + u] = g
                GA[ga + 3 * H + u] = o
                c = add(mul(f, CS[hp + u]), mul(i, g))
                CS[hn + u] = c
                tc = tanh(c)
                TC[hp + u] = tc
                HS[hn + u] = mul(o, tc)
            # ---- head and loss at the steps the loss looks at ----
            if loss_all != 0 or t == T - 1:
                for q in range(O):
                    acc = P[o_bout + q]
                    for k in range(H):
                        acc = add(acc, mul(HS[hn + k], P[o_wout + q * H + k]))
                    OUT[(t * B + b) * O + q] = acc
            loss_at(t, b, s, T, B, N, O, is_ce, loss_all, nf, OUT, YF, YI, DY, TERMS)
        # ---- backpropagation through time ----
        for u in range(H):
            DCN[b * H + u] = ZERO
        for t in range(T - 1, -1, -1):
            ga = (t * B + b) * H4
            hp = (t * B + b) * H
            dyr = (t * B + b) * O
            for u in range(H):
                dh = ZERO
                for q in range(O):
                    dh = add(dh, mul(DY[dyr + q], P[o_wout + q * H + u]))
                if t + 1 < T:
                    gn = ((t + 1) * B + b) * H4
                    for j in range(H4):
                        dh = add(dh, mul(DA[gn + j], P[o_whh + j * H + u]))
                i = GA[ga + u]
                f = GA[ga + H + u]
                g = GA[ga + 2 * H + u]
                o = GA[ga + 3 * H + u]
                tc = TC[hp + u]
                dc = add(mul(mul(dh, o), sub(ONE, mul(tc, tc))), DCN[b * H + u])
                DA[ga + u] = mul(mul(dc, g), mul(i, sub(ONE, i)))
                DA[ga + H + u] = mul(mul(dc, CS[hp + u]), mul(f, sub(ONE, f)))
                DA[ga + 2 * H + u] = mul(mul(dc, i), sub(ONE, mul(g, g)))
                DA[ga + 3 * H + u] = mul(mul(dh, tc), mul(o, sub(ONE, o)))
                DCN[b * H + u] = mul(dc, f)

    py = {"sample_step": (sample_step, "FFFLLiiiiiiiiifFFFFFFFFF")}
    return SimpleNamespace(common=cm, py=py, sample_step=cuda.jit(sample_step))
