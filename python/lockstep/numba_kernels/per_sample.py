"""Strategy "per-sample" (the seed's V2/V3 design): one thread owns one sample of the batch
for the whole sequence: forward pass through every layer (bottom up, layer by layer), head,
loss terms and dy, and backpropagation through time through every layer (top down), all in
one launch. A sample's layers depend only on that sample, so one thread can run them one after
another. Its caches live in flat global scratch arrays indexed by the sample, so no thread
touches another's data. Weight gradients, the loss sum, clipping and the update follow as the
shared kernels of ``common``.

Scratch layout (B = current batch size, n = t*B + b; each array holds L layers one after
another, layer l at l times the per-layer size):
HS, CS ((T+1)*B*H per layer): h_{t-1} and c_{t-1} at index t (index 0 is the zero start
state); GA (T*B*4H): activated gates i, f, g, o; TC (T*B*H): tanh(c_t); DA (T*B*4H): gate
pre-activation gradients; XM ((L-1) layers of T*B*H): with dropout, the input x^l = h^{l-1} * m
of layer l >= 1 (without dropout layer l reads h^{l-1} from HS); OUT, DY (T*B*O); DCN (B*H):
dc_{t+1} * f_{t+1}; TERMS: the loss terms in (t, b, o) order.
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
    loss_at, mask_index, dot_col, layer_base = cm.loss_at, cm.mask_index, cm.dot_col, cm.layer_base
    ZERO, ONE = mm.ZERO, mm.ONE
    dev = cuda.jit(device=True)

    @dev
    def layer_forward(P, po, K, XIN, xo, NI, si, b, B, T, H, HS, hso, CS, GA, gao, TC, tco):
        """Sample b through one layer: parameters at P[po] (input size K), input row t at
        XIN[xo + (t*NI + si)*K] (the data through PERM for layer 0, h or x^l of the layer below
        above it); a = b + x W_ih^T, then + h_{t-1} W_hh^T (one accumulator)."""
        H4 = 4 * H
        o_whh = po + H4 * K
        o_b = o_whh + H4 * H
        for u in range(H):
            HS[hso + b * H + u] = ZERO
            CS[hso + b * H + u] = ZERO
        for t in range(T):
            ga = gao + (t * B + b) * H4
            hp = hso + (t * B + b) * H  # h_{t-1}, c_{t-1}
            hn = hso + ((t + 1) * B + b) * H  # h_t, c_t
            tp = tco + (t * B + b) * H
            xr = xo + (t * NI + si) * K
            for j in range(H4):
                acc = P[o_b + j]
                for k in range(K):
                    acc = add(acc, mul(XIN[xr + k], P[po + j * K + k]))
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
                TC[tp + u] = tc
                HS[hn + u] = mul(o, tc)

    def sample_step(P, X, YF, YI, PERM, off, B, T, N, I, H, O, L, is_ce, loss_all, nf,
                    M, masked, Bm, lo, HS, CS, GA, TC, XM, OUT, DY, DA, DCN, TERMS):
        b = cuda.grid(1)
        if b >= B:
            return
        s = PERM[off + b]
        H4 = 4 * H
        n = T * B
        hsl = (n + B) * H  # per-layer sizes of HS / CS, GA / DA, TC / XM
        gal = n * H4
        tcl = n * H
        # ---- forward, layers bottom up ----
        layer_forward(P, 0, I, X, 0, N, s, b, B, T, H, HS, 0, CS, GA, 0, TC, 0)
        for l in range(1, L):
            below = (l - 1) * hsl + B * H  # h^{l-1}_t at step t of a (T, B, H) array
            if masked != 0:
                xo = (l - 1) * tcl
                for t in range(T):
                    for k in range(H):
                        XM[xo + (t * B + b) * H + k] = mul(
                            HS[below + (t * B + b) * H + k],
                            M[mask_index(l - 1, t, b, k, T, Bm, lo, H)])
                layer_forward(P, layer_base(I, H, l), H, XM, xo, B, b, b, B, T, H, HS, l * hsl,
                              CS, GA, l * gal, TC, l * tcl)
            else:
                layer_forward(P, layer_base(I, H, l), H, HS, below, B, b, b, B, T, H, HS,
                              l * hsl, CS, GA, l * gal, TC, l * tcl)
        # ---- head and loss at the steps the loss looks at, on the top layer ----
        top = (L - 1) * hsl
        o_wout = layer_base(I, H, L)
        o_bout = o_wout + O * H
        for t in range(T):
            if loss_all != 0 or t == T - 1:
                hn = top + ((t + 1) * B + b) * H
                for q in range(O):
                    acc = P[o_bout + q]
                    for k in range(H):
                        acc = add(acc, mul(HS[hn + k], P[o_wout + q * H + k]))
                    OUT[(t * B + b) * O + q] = acc
            loss_at(t, b, s, T, B, N, O, is_ce, loss_all, nf, OUT, YF, YI, DY, TERMS)
        # ---- backpropagation through time, layers top down ----
        for l in range(L - 1, -1, -1):
            K = I if l == 0 else H
            o_whh = layer_base(I, H, l) + H4 * K
            hso = l * hsl
            for u in range(H):
                DCN[b * H + u] = ZERO
            for t in range(T - 1, -1, -1):
                ga = l * gal + (t * B + b) * H4
                hp = hso + (t * B + b) * H
                tp = l * tcl + (t * B + b) * H
                for u in range(H):
                    # dh_above: the head's dy_t W_out on the top layer, else the layer
                    # above's da_t W_ih^{l+1}, then its dropout mask
                    if l == L - 1:
                        dh = dot_col(DY, (t * B + b) * O, O, P, o_wout, H, u)
                    else:
                        dh = dot_col(DA, (l + 1) * gal + (t * B + b) * H4, H4, P,
                                     layer_base(I, H, l + 1), H, u)
                        if masked != 0:
                            dh = mul(dh, M[mask_index(l, t, b, u, T, Bm, lo, H)])
                    if t + 1 < T:
                        gn = ga + B * H4
                        for j in range(H4):
                            dh = add(dh, mul(DA[gn + j], P[o_whh + j * H + u]))
                    i = GA[ga + u]
                    f = GA[ga + H + u]
                    g = GA[ga + 2 * H + u]
                    o = GA[ga + 3 * H + u]
                    tc = TC[tp + u]
                    dc = add(mul(mul(dh, o), sub(ONE, mul(tc, tc))), DCN[b * H + u])
                    DA[ga + u] = mul(mul(dc, g), mul(i, sub(ONE, i)))
                    DA[ga + H + u] = mul(mul(dc, CS[hp + u]), mul(f, sub(ONE, f)))
                    DA[ga + 2 * H + u] = mul(mul(dc, i), sub(ONE, mul(g, g)))
                    DA[ga + 3 * H + u] = mul(mul(dh, tc), mul(o, sub(ONE, o)))
                    DCN[b * H + u] = mul(dc, f)

    py = {"sample_step": (sample_step, "FFFLLiiiiiiiiiifFiiiFFFFFFFFFF")}
    return SimpleNamespace(common=cm, py=py, sample_step=cuda.jit(sample_step))
