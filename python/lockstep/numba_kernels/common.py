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

from ..reference import layer_names
from .math import make_math

# Optimizer kinds of the update kernel.
SGD, MOMENTUM, ADAM = 0, 1, 2


def layer_base(I, H, l):
    """Offset of layer l's block (W_ih, W_hh, b) in the flat vector; l = L: of W_out. Plain
    integer arithmetic, so the host and the kernels (``layer_base_dev``) share it."""
    return 0 if l == 0 else 4 * H * (I + H + 1) + (l - 1) * 4 * H * (2 * H + 1)


def layout(I, H, O, L=1):
    """Offsets of every tensor of ``reference.param_names(L)`` in the flat parameter vector
    (the canonical order: layers bottom up, each W_ih, W_hh, b, then W_out, b_out), their
    shapes ("shapes") and the vector's size. A layer's block followed by the head is laid out
    as a one-layer model whose input size is the layer's (I for layer 0, H above)."""
    lay, shapes = {}, {}
    for l in range(L):
        K = I if l == 0 else H
        o = layer_base(I, H, l)
        for n, shape in zip(layer_names(l), ((4 * H, K), (4 * H, H), (4 * H,))):
            lay[n], shapes[n] = o, shape
            o += int(np.prod(shape))
    o_wout = layer_base(I, H, L)
    lay["W_out"], lay["b_out"], lay["size"] = o_wout, o_wout + O * H, o_wout + O * H + O
    shapes["W_out"], shapes["b_out"] = (O, H), (O,)
    lay["shapes"] = shapes
    return lay


def signature(dtype, spec: str):
    """Kernel signature from a compact spec: F = working-dtype array, L = int64 array,
    i = int64 scalar, f = working-dtype scalar (all arrays 1-D C-contiguous)."""
    from numba import types
    w = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    m = {"F": w[::1], "L": types.int64[::1], "i": types.int64, "f": w}
    return tuple(m[ch] for ch in spec)


def wgrad_tiles(sim: bool):
    """(BX, BY, MR, MC, TN) of ``wgrad``: a block of BX x BY threads computes a tile of
    (BY * MR) output rows x (BX * MC) columns, each thread an MR x MC micro-tile (rows
    ty + p*BY, columns tx + q*BX, so a warp's lanes read neighbouring shared-memory columns),
    staging TN samples per step. Under the simulator (one Python thread per CUDA thread) the
    tiles are tiny (6 x 6 outputs, 3 x 3 per thread, 4 samples), so that several and partial
    tiles in every dimension occur on tiny shapes, but not so tiny that the simulator's
    per-block and per-barrier costs dominate the test time."""
    return (2, 2, 3, 3, 4) if sim else (16, 16, 2, 2, 16)


def wgrad_launch(K, H, O, sim: bool, head=True):
    """(grid, block) of ``wgrad`` for a layer of input size K: x over column tiles of the
    widest product (K + H + 1), y over the 4H gate row tiles, then (top layer only, ``head``)
    the O head row tiles."""
    BX, BY, MR, MC, _ = wgrad_tiles(sim)
    TR, TC = BY * MR, BX * MC
    gy = (4 * H + TR - 1) // TR + ((O + TR - 1) // TR if head else 0)
    return ((K + H + 1 + TC - 1) // TC, gy), (BX, BY)


@functools.lru_cache(maxsize=None)
def make_common(dtype) -> SimpleNamespace:
    mm = make_math(dtype)
    W = np.dtype(dtype).type
    WBX, WBY, WMR, WMC, WTN = wgrad_tiles(mm.sim)
    WTR, WTC = WBY * WMR, WBX * WMC
    mul, add, sub, div, sqrt = mm.mul, mm.add, mm.sub, mm.div, mm.sqrt
    exp, log = mm.exp, mm.log
    ZERO, ONE = mm.ZERO, mm.ONE
    dev = cuda.jit(device=True)
    layer_base_dev = dev(layer_base)

    @dev
    def mask_index(ml, t, b, k, T, Bm, lo, H):
        """Index of m_ml[t][lo + b, k] in a minibatch's masks, flat (L - 1, T, Bm, H): a
        group of samples [lo, lo + B) reads its own columns."""
        return ((ml * T + t) * Bm + lo + b) * H + k

    @dev
    def dot_col(A, arow, R, W, wo, H, u):
        """sum_j A[arow + j] * W[wo + j*H + u] over j < R ascending, from +0: column u of a
        row times an (R, H) matrix, i.e. dh_above (arithmetic.md, "Stacked layers"): dy_t W_out
        for the top layer (today's head terms), da^{l+1}_t W_ih^{l+1} below it."""
        acc = ZERO
        for j in range(R):
            acc = add(acc, mul(A[arow + j], W[wo + j * H + u]))
        return acc

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

    def loss_part(TERMS, nterms, PARTS, g):
        """One thread: group g's loss sum ((+0 + term0) + term1) + ... (not yet divided)."""
        if cuda.grid(1) == 0:
            acc = ZERO
            for i in range(nterms):
                acc = add(acc, TERMS[i])
            PARTS[g] = acc

    def loss_combine(PARTS, S, nf, LOSSES, bi):
        """One thread: loss = (((L_0 + L_1) + L_2) + ...) / N over the S groups in order (one
        group: L_0 / N, the unsharded loss)."""
        if cuda.grid(1) == 0:
            acc = PARTS[0]
            for g in range(1, S):
                acc = add(acc, PARTS[g])
            LOSSES[bi] = div(acc, nf)

    def add_into(A, B, n):
        """A = A + B element-wise: a sharded batch's gradient partials, added in group order."""
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            A[i] = add(A[i], B[i])

    def wgrad(X, PERM, off, B, T, N, I, H, O, HS, DA, DY, G):
        """Weight gradients as two tiled products over n = t*B + b (the contract's order):
        gate rows G_gate[j, c] = sum_n da[n, j] * z[n, c] with z[n] = (x[n], h_{t-1}[n], 1)
        gives dW_ih, dW_hh and db (da * 1 == da exactly, so db is the last column); head rows
        G_head[o, c] = sum_n dy[n, o] * z'[n, c] with z'[n] = (h_t[n], 1) gives dW_out, db_out.
        Block y indexes the gate row tiles, then the head row tiles; block x the column tiles.
        Each stage copies TN samples of both operands into shared memory (consecutive threads
        read consecutive addresses of a row of DA, DY, X or HS); each thread keeps its MR x MC
        outputs in registers, starts them at +0 and adds the stages' terms in ascending n.
        One layer per launch: X is its input (I its size), HS and DA its own, G a view from
        its block on; the head rows (launched for the top layer only) then land in the W_out
        and b_out that follow the top layer's block."""
        AS = cuda.shared.array((WTN, WTR), W)  # da[n, r0:r0+TR] (or dy) of the stage's samples
        ZS = cuda.shared.array((WTN, WTC), W)  # z[n, c0:c0+TC] of the stage's samples
        acc = cuda.local.array((WMR, WMC), W)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        lid = ty * WBX + tx
        H4 = 4 * H
        gate_tiles = (H4 + WTR - 1) // WTR
        head = cuda.blockIdx.y >= gate_tiles
        if head:
            r0 = (cuda.blockIdx.y - gate_tiles) * WTR
            R = O
            C = H + 1
        else:
            r0 = cuda.blockIdx.y * WTR
            R = H4
            C = I + H + 1
        c0 = cuda.blockIdx.x * WTC
        if c0 >= C:  # a head block beyond the head's H + 1 columns: the whole block leaves
            return
        for p in range(WMR):
            for q in range(WMC):
                acc[p, q] = ZERO
        NT = T * B
        for n0 in range(0, NT, WTN):
            nlen = min(WTN, NT - n0)
            # Entries outside the outputs or the samples are zero-filled and never added.
            for e in range(lid, WTN * WTR, WBX * WBY):
                nn = e // WTR
                r = e - nn * WTR
                v = ZERO
                if nn < nlen and r0 + r < R:
                    if head:
                        v = DY[(n0 + nn) * O + r0 + r]
                    else:
                        v = DA[(n0 + nn) * H4 + r0 + r]
                AS[nn, r] = v
            for e in range(lid, WTN * WTC, WBX * WBY):
                nn = e // WTC
                c = c0 + e - nn * WTC
                n = n0 + nn
                v = ZERO
                if nn < nlen and c < C:
                    if head:
                        v = HS[(n + B) * H + c] if c < H else ONE
                    elif c < I:
                        t = n // B
                        v = X[(t * N + PERM[off + n - t * B]) * I + c]
                    elif c < I + H:
                        v = HS[n * H + c - I]
                    else:
                        v = ONE
                ZS[nn, e - nn * WTC] = v
            cuda.syncthreads()  # both operand tiles of this stage are complete
            for nn in range(nlen):
                for p in range(WMR):
                    a = AS[nn, ty + p * WBY]  # the same row for the lanes of a warp row
                    for q in range(WMC):
                        acc[p, q] = add(acc[p, q], mul(a, ZS[nn, tx + q * WBX]))
            cuda.syncthreads()  # every thread is done with the tiles before they are refilled
        o_whh = H4 * I
        o_b = o_whh + H4 * H
        o_wout = o_b + H4
        o_bout = o_wout + O * H
        for p in range(WMR):
            j = r0 + ty + p * WBY
            if j < R:
                for q in range(WMC):
                    c = c0 + tx + q * WBX
                    if c < C:
                        if head:
                            g = o_wout + j * H + c if c < H else o_bout + j
                        elif c < I:
                            g = j * I + c
                        elif c < I + H:
                            g = o_whh + j * H + c - I
                        else:
                            g = o_b + j
                        G[g] = acc[p, q]

    def row_norms(G, I, H, O, L, ROWS):
        """One thread per gradient row: sum of squares, columns ascending, from +0."""
        for r in range(cuda.grid(1), 12 * H * L + 2 * O, cuda.gridsize(1)):
            row_norm_one(r, G, I, H, O, L, ROWS)

    @dev
    def row_norm_one(r, G, I, H, O, L, ROWS):
        """Row r in param_names order: each layer's 4H rows of W_ih, W_hh and b (one element
        each), then W_out's O rows and b_out's O elements."""
        H4 = 4 * H
        if r < 3 * H4 * L:
            l = r // (3 * H4)
            rr = r - l * 3 * H4
            K = I if l == 0 else H
            base = layer_base_dev(I, H, l)
            if rr < H4:
                st = base + rr * K
                ln = K
            elif rr < 2 * H4:
                st = base + H4 * K + (rr - H4) * H
                ln = H
            else:
                st = base + H4 * K + H4 * H + (rr - 2 * H4)
                ln = 1
        else:
            rr = r - 3 * H4 * L
            o_wout = layer_base_dev(I, H, L)
            if rr < O:
                st = o_wout + rr * H
                ln = H
            else:
                st = o_wout + O * H + (rr - O)
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
        "loss_part": (loss_part, "FiFi"),
        "loss_combine": (loss_combine, "FifFi"),
        "add_into": (add_into, "FFi"),
        "wgrad": (wgrad, "FLiiiiiiiFFFF"),
        "row_norms": (row_norms, "FiiiiF"),
        "clip_scale": (clip_scale, "FifF"),
        "update": (update, "FFFFFifffffffi"),
    }
    return SimpleNamespace(math=mm, loss_at=loss_at, mask_index=mask_index, dot_col=dot_col,
                           layer_base=layer_base_dev, py=py,
                           **{n: cuda.jit(f) for n, (f, _) in py.items()})
