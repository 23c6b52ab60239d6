"""Strategy "fused": threads over (sample, hidden unit), the layers one after another (forward
bottom up, backward top down; every launch below is for one layer, on views of the parameter
and scratch arrays). The input projection for all time steps runs before the recurrent loop
(one thread per (n, gate row): the accumulator starts at the bias and takes the input terms;
the step kernel continues it with the recurrent terms, so the bits are those of the
reference's single accumulator). ``transpose_whh`` writes WT = W_hh^T once per parameter
update and layer so that the forward step reads the recurrent weights coalesced. Then one
launch per time step: a block of TU units x SB samples stages h_{t-1} (forward) or da_{t+1}
(backward) in a shared-memory tile of TU columns at a time; each thread owns the four gate
rows of its unit and keeps every sum in ascending order. The head, the loss terms, the
gradient arriving from above (``dh_above``: from the head or the layer above), the masked
inputs of dropout (``mask_input``) and the weight gradients (after each layer's backward loop,
common.wgrad) are kernels over independent outputs.

Scratch layout: as in ``per_sample`` plus XP (T*B*4H), the input projections, DHA (T*B*H),
dh_above of the layer in progress, and WT (H*4H, the backend's buffer next to the parameters).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
from numba import cuda  # module-level: the simulator swaps this global inside kernels

from .common import make_common


def transpose_grid(H, sim: bool):
    """Blocks of transpose_whh: one per tile on a GPU; under the simulator at most 2 x 2, so
    that blocks also loop over several tiles (and few Python threads are started)."""
    TU, _ = tiles(sim)
    nx, ny = (H + TU - 1) // TU, (4 * H + TU - 1) // TU
    return (min(nx, 2), min(ny, 2)) if sim else (nx, ny)


def tiles(sim: bool):
    """(TU, SB): units and samples per block (of the step kernels, and the block shape of
    transpose_whh). On a GPU 32 x 8: a warp is 32 units of one sample (coalesced weight
    reads, a broadcast of h_{t-1}[b, k]), 256 threads. Small under the simulator (one Python
    thread per CUDA thread) so that several tiles and blocks are still exercised on tiny
    shapes."""
    return (4, 2) if sim else (32, 8)


@functools.lru_cache(maxsize=None)
def make_fused(dtype) -> SimpleNamespace:
    cm = make_common(dtype)
    mm = cm.math
    mul, add, sub = mm.mul, mm.add, mm.sub
    sigmoid, tanh = mm.sigmoid, mm.tanh
    loss_at, mask_index, dot_col = cm.loss_at, cm.mask_index, cm.dot_col
    ZERO, ONE = mm.ZERO, mm.ONE
    TU, SB = tiles(mm.sim)
    TU1 = TU + 1  # padded row of transpose_whh's tile (a shape must be a constant)
    W = np.dtype(dtype).type

    def input_proj(P, X, PERM, off, B, T, N, I, H, XP, HS, CS):
        """XP[n, j] = b[j] + sum_k x[n, k] * W_ih[j, k]; also zeroes h_{-1}, c_{-1}."""
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for idx in range(start, B * H, stride):
            HS[idx] = ZERO
            CS[idx] = ZERO
        H4 = 4 * H
        for idx in range(start, T * B * H4, stride):
            n = idx // H4
            j = idx - n * H4
            t = n // B
            b = n - t * B
            s = PERM[off + b]
            acc = P[H4 * I + H4 * H + j]
            xr = (t * N + s) * I
            for k in range(I):
                acc = add(acc, mul(X[xr + k], P[j * I + k]))
            XP[idx] = acc

    def transpose_whh(P, I, H, WT):
        """WT[k, j] = W_hh[j, k] (H x 4H, row k = k*4H), TU x TU tiles through shared memory
        (TU + 1 columns, so the column reads of the second half hit different banks); global
        reads and writes both run along rows, i.e. coalesced. Blocks stride over the tiles
        (on a GPU one tile each). Run once per parameter update, before the forward steps: they
        then read WT[k, gate*H + u] at neighbouring addresses for neighbouring units u
        (W_hh[gate*H + u, k] is H apart)."""
        tile = cuda.shared.array((TU, TU1), W)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        H4 = 4 * H
        o_whh = H4 * I
        for r0 in range(cuda.blockIdx.y * TU, H4, cuda.gridDim.y * TU):  # rows j of W_hh
            for c0 in range(cuda.blockIdx.x * TU, H, cuda.gridDim.x * TU):  # columns k
                for i in range(ty, TU, SB):
                    if r0 + i < H4 and c0 + tx < H:
                        tile[i, tx] = P[o_whh + (r0 + i) * H + c0 + tx]
                cuda.syncthreads()  # the tile W_hh[r0:r0+TU, c0:c0+TU] is complete
                for i in range(ty, TU, SB):
                    if c0 + i < H and r0 + tx < H4:
                        WT[(c0 + i) * H4 + r0 + tx] = tile[tx, i]
                cuda.syncthreads()  # every thread is done reading before the next tile

    def forward_step(WT, t, B, H, XP, HS, CS, GA, TC):
        """Step t for a tile of (unit, sample): gates, c_t, tanh(c_t), h_t. The recurrent
        weights come from WT = W_hh^T (transpose_whh): lanes tx -> u read consecutive
        addresses; h_{t-1}[b, k0:k0+TU] is staged in shared memory (one coalesced row per
        sample) and read as a broadcast by the lanes of that sample."""
        tile = cuda.shared.array((SB, TU), W)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        u = cuda.blockIdx.x * TU + tx
        b = cuda.blockIdx.y * SB + ty
        ok = u < H and b < B
        H4 = 4 * H
        ga = (t * B + b) * H4
        hp = (t * B + b) * H
        a_i = ZERO
        a_f = ZERO
        a_g = ZERO
        a_o = ZERO
        if ok:
            a_i = XP[ga + u]
            a_f = XP[ga + H + u]
            a_g = XP[ga + 2 * H + u]
            a_o = XP[ga + 3 * H + u]
        for k0 in range(0, H, TU):
            if b < B and k0 + tx < H:
                tile[ty, tx] = HS[hp + k0 + tx]
            else:
                tile[ty, tx] = ZERO
            cuda.syncthreads()  # the tile of h_{t-1}[b, k0:k0+TU] is complete
            if ok:
                for kk in range(min(TU, H - k0)):
                    hv = tile[ty, kk]
                    w = (k0 + kk) * H4 + u
                    a_i = add(a_i, mul(hv, WT[w]))
                    a_f = add(a_f, mul(hv, WT[w + H]))
                    a_g = add(a_g, mul(hv, WT[w + 2 * H]))
                    a_o = add(a_o, mul(hv, WT[w + 3 * H]))
            cuda.syncthreads()  # every thread is done reading the tile before it is refilled
        if ok:
            i = sigmoid(a_i)
            f = sigmoid(a_f)
            g = tanh(a_g)
            o = sigmoid(a_o)
            GA[ga + u] = i
            GA[ga + H + u] = f
            GA[ga + 2 * H + u] = g
            GA[ga + 3 * H + u] = o
            c = add(mul(f, CS[hp + u]), mul(i, g))
            hn = ((t + 1) * B + b) * H
            CS[hn + u] = c
            tc = tanh(c)
            TC[hp + u] = tc
            HS[hn + u] = mul(o, tc)

    def head(P, t0, nsteps, B, I, H, O, HS, OUT):
        """OUT[t, b, o] = b_out[o] + sum_k h_t[b, k] * W_out[o, k] for t0 <= t < t0 + nsteps."""
        H4 = 4 * H
        o_wout = H4 * I + H4 * H + H4
        o_bout = o_wout + O * H
        for idx in range(cuda.grid(1), nsteps * B * O, cuda.gridsize(1)):
            n = idx // O
            q = idx - n * O
            t = t0 + n // B
            b = n - (n // B) * B
            acc = P[o_bout + q]
            hn = ((t + 1) * B + b) * H
            for k in range(H):
                acc = add(acc, mul(HS[hn + k], P[o_wout + q * H + k]))
            OUT[(t * B + b) * O + q] = acc

    def loss_terms(PERM, off, T, B, N, O, is_ce, loss_all, nf, OUT, YF, YI, DY, TERMS):
        """One thread per (t, sample): dy and the loss terms."""
        for idx in range(cuda.grid(1), T * B, cuda.gridsize(1)):
            t = idx // B
            b = idx - t * B
            loss_at(t, b, PERM[off + b], T, B, N, O, is_ce, loss_all, nf, OUT, YF, YI, DY,
                    TERMS)

    def mask_input(HS, M, ml, T, B, Bm, lo, H, XM):
        """With dropout: the input of layer ml + 1, XM[n, k] = h^{ml}_t[b, k] * m_ml[t][b, k]
        (HS is layer ml's, a (T+1, B, H) array)."""
        for idx in range(cuda.grid(1), T * B * H, cuda.gridsize(1)):
            nn = idx // H
            k = idx - nn * H
            t = nn // B
            XM[idx] = mul(HS[idx + B * H], M[mask_index(ml, t, nn - t * B, k, T, Bm, lo, H)])

    def dh_above(A, R, W, wo, T, B, H, M, masked, ml, Bm, lo, DHA):
        """DHA[n, k]: the gradient a layer's BPTT starts from (arithmetic.md, "Stacked
        layers"): sum_j A[n, j] * W[wo + j*H + k] from +0 (A = dy and W_out for the top layer,
        the same bits as the head terms inside the step; A = da^{l+1} and W_ih^{l+1} below),
        then, with dropout below the top, times m_ml. For all steps at once, before the loop:
        thread (n, k) reads A[n, :] as a broadcast and W along k, coalesced."""
        for idx in range(cuda.grid(1), T * B * H, cuda.gridsize(1)):
            nn = idx // H
            k = idx - nn * H
            acc = dot_col(A, nn * R, R, W, wo, H, k)
            if masked != 0:
                t = nn // B
                acc = mul(acc, M[mask_index(ml, t, nn - t * B, k, T, Bm, lo, H)])
            DHA[idx] = acc

    def backward_step(P, t, T, B, I, H, DHA, GA, CS, TC, DA, DCN):
        """Step t of BPTT for a tile of (unit, sample): dh (dh_above from DHA, then the
        recurrent terms of all 4H rows of da_{t+1}, staged through shared memory), dc, da.
        W_hh[j, u] is read along u, i.e. coalesced across the lanes tx -> u, without a
        transposed copy; da_{t+1}[b, :] is read as a broadcast from the tile."""
        tile = cuda.shared.array((SB, TU), W)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        u = cuda.blockIdx.x * TU + tx
        b = cuda.blockIdx.y * SB + ty
        ok = u < H and b < B
        H4 = 4 * H
        o_whh = H4 * I
        dh = ZERO
        if ok:
            dh = DHA[(t * B + b) * H + u]
        if t + 1 < T:
            gn = ((t + 1) * B + b) * H4
            for j0 in range(0, H4, TU):
                if b < B and j0 + tx < H4:
                    tile[ty, tx] = DA[gn + j0 + tx]
                else:
                    tile[ty, tx] = ZERO
                cuda.syncthreads()  # the tile of da_{t+1}[b, j0:j0+TU] is complete
                if ok:
                    for jj in range(min(TU, H4 - j0)):
                        dh = add(dh, mul(tile[ty, jj], P[o_whh + (j0 + jj) * H + u]))
                cuda.syncthreads()  # every thread is done reading the tile before it is refilled
        if ok:
            ga = (t * B + b) * H4
            hp = (t * B + b) * H
            i = GA[ga + u]
            f = GA[ga + H + u]
            g = GA[ga + 2 * H + u]
            o = GA[ga + 3 * H + u]
            tc = TC[hp + u]
            dcn = ZERO
            if t + 1 < T:
                dcn = DCN[b * H + u]
            dc = add(mul(mul(dh, o), sub(ONE, mul(tc, tc))), dcn)
            DA[ga + u] = mul(mul(dc, g), mul(i, sub(ONE, i)))
            DA[ga + H + u] = mul(mul(dc, CS[hp + u]), mul(f, sub(ONE, f)))
            DA[ga + 2 * H + u] = mul(mul(dc, i), sub(ONE, mul(g, g)))
            DA[ga + 3 * H + u] = mul(mul(dh, tc), mul(o, sub(ONE, o)))
            DCN[b * H + u] = mul(dc, f)

    py = {
        "input_proj": (input_proj, "FFLiiiiiiFFF"),
        "transpose_whh": (transpose_whh, "FiiF"),
        "forward_step": (forward_step, "FiiiFFFFF"),
        "head": (head, "FiiiiiiFF"),
        "loss_terms": (loss_terms, "LiiiiiiifFFLFF"),
        "mask_input": (mask_input, "FFiiiiiiF"),
        "dh_above": (dh_above, "FiFiiiiFiiiiF"),
        "backward_step": (backward_step, "FiiiiiFFFFFF"),
    }
    return SimpleNamespace(common=cm, py=py, tiles=(TU, SB),
                           **{n: cuda.jit(f) for n, (f, _) in py.items()})
