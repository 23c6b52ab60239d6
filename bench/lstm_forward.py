"""Forward pass (LSTM layer + head) of every cuda-raw strategy, side by side.

    python bench/lstm_forward.py [--dtype float32|float64] [--json FILE]   # NVIDIA GPU
    python bench/lstm_forward.py --emu                                    # SIMT emulator

Strategies (cuda/lstm_*.cu, docs/cuda.md):
  naive       per step: input GEMM, recurrent GEMM, gates, cell, head (5 launches per step)
  fused       input projection for all steps as one GEMM, one fused kernel per step, head GEMM
  persistent  one cooperative launch for the whole sequence, W_hh slices in shared memory
Napkin math per forward: flops = 2*T*B*(4H*(I+H) + O*H); compulsory bytes = parameters once,
x read, gates/c/tanh(c)/h written (T*B*(4H + 3H)) and outputs written (T*B*O), times itemsize.
The reference (NumPy) runs first; every strategy must reproduce its outputs bit for bit.
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
        want = None if big else reference.forward(params, x)[0]
        flops = 2.0 * T * B * (4 * H * (I + H) + O * H)
        nbytes = dt.itemsize * (4 * H * (I + H + 1) + O * (H + 1) + T * B * (I + 7 * H + O))
        for strategy in sc.STRATEGIES:
            for block in blocks:
                be, why = sc.backend(strategy, device, mc, tc, dt, params, block)
                if be is None:
                    print(f"{strategy:<10} block {block:4d} | I,H,T,B {(I, H, T, B)} | skipped: {why}")
                    break
                out = be.predict(x)
                if want is None:
                    want = out  # too big for NumPy: the first strategy (naive) is the yardstick
                if not sc.bits_equal(out, want):
                    raise SystemExit(f"{strategy} block {block} {(I, H, T, B)}: outputs differ "
                                     "from the reference")
                xd = be.dev.upload(x.reshape(-1))
                be._ensure(T, B)
                secs = dev.time(lambda: be._forward(xd, T, B), 1 if args.emu else 10)
                sc.line(results, strategy, block, (I, H, T, B), secs, flops, nbytes, peak)
    sc.finish(args, results)


if __name__ == "__main__":
    main()
