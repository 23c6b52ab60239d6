"""Backward pass (loss, BPTT, weight gradients) of every cuda-raw strategy, side by side.

    python bench/lstm_backward.py [--dtype float32|float64] [--json FILE]  # NVIDIA GPU
    python bench/lstm_backward.py --emu                                   # SIMT emulator

Strategies (cuda/lstm_*.cu, docs/cuda.md):
  naive       per step: head gradient GEMM, recurrent gradient GEMM, cell backward
  fused       one fused kernel per step (dh, dc, gate gradients); weight gradients as GEMMs after
  persistent  one cooperative launch for the whole reversed sequence, W_hh slices on chip
Napkin math per backward: flops = 4*T*B*(4H*(I+H) + O*H) (input and weight gradients);
compulsory bytes = cached activations read (T*B*(4H + 3H)), gradients written (parameters once,
T*B*4H gate gradients), times itemsize.
The reference (NumPy) runs first; every strategy must reproduce every gradient bit for bit.
"""

import numpy as np
import strategy_common as sc

from lockstep import reference


def main():
    args = sc.parse(__doc__)
    dev, peak, shapes, blocks, device = sc.setup(args)
    dt = np.dtype(args.dtype)
    results = []
    for I, H, T, B in shapes:
        mc, tc, params, x, y = sc.problem(I, H, T, B, dt)
        O = mc.output_size
        big = T * B * H * H > sc.REFERENCE_LIMIT
        want = None if big else reference.loss_and_grads(params, x, y, tc)[1]
        flops = 4.0 * T * B * (4 * H * (I + H) + O * H)
        nbytes = dt.itemsize * (T * B * (11 * H) + 4 * H * (I + H + 1) + O * (H + 1))
        for strategy in sc.STRATEGIES:
            for block in blocks:
                be, why = sc.backend(strategy, device, mc, tc, dt, params, block)
                if be is None:
                    print(f"{strategy:<10} block {block:4d} | I,H,T,B {(I, H, T, B)} | skipped: {why}")
                    break
                be._ensure(T, B)
                xd = be.dev.upload(x.reshape(-1))
                be.xb[:xd.size] = xd
                be.yb[:y.size] = be.dev.upload(y.reshape(-1))
                loss = be.xp.zeros(1, dt)
                be._forward(be.xb, T, B)
                be._loss(T, B, loss)

                def backward():
                    be._backward(T, B)
                    be._weight_grads(T, B)

                backward()
                got = be._split(be.g)
                if want is None:
                    want = got  # too big for NumPy: naive is the yardstick
                bad = [n for n in reference.PARAM_NAMES if not sc.bits_equal(got[n], want[n])]
                if bad:
                    raise SystemExit(f"{strategy} block {block} {(I, H, T, B)}: gradients {bad} "
                                     "differ from the reference")
                secs = dev.time(backward, 1 if args.emu else 10)
                sc.line(results, strategy, block, (I, H, T, B), secs, flops, nbytes, peak)
    sc.finish(args, results)


if __name__ == "__main__":
    main()
