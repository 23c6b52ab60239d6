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

import strategy_common as sc

from lockstep import reference


def prepare(mc, tc, params, x, y, small):
    T, B, I = x.shape
    H, O = mc.hidden_size, mc.output_size
    flops = 2.0 * T * B * (4 * H * (I + H) + O * H)
    nbytes = x.itemsize * (4 * H * (I + H + 1) + O * (H + 1) + T * B * (I + 7 * H + O))
    return flops, nbytes, {"outputs": reference.forward(params, x)[0]} if small else None


def run(be, T, B, x, y):
    out = be.predict(x)
    xd = be.dev.upload(x.reshape(-1))
    return {"outputs": out}, lambda: be._forward(xd, T, B)


if __name__ == "__main__":
    sc.sweep(__doc__, prepare, run)
