"""Backward pass (BPTT and weight gradients) of every cuda-raw strategy, side by side.

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

import strategy_common as sc

from lockstep import reference


def prepare(mc, tc, params, x, y, small):
    T, B, I = x.shape
    H, O = mc.hidden_size, mc.output_size
    flops = 4.0 * T * B * (4 * H * (I + H) + O * H)
    nbytes = x.itemsize * (T * B * (11 * H) + 4 * H * (I + H + 1) + O * (H + 1))
    return flops, nbytes, reference.loss_and_grads(params, x, y, tc)[1] if small else None


def run(be, T, B, x, y):
    be._ensure(T, B)
    be.xb[:x.size] = be.dev.upload(x.reshape(-1))
    be.yb[:y.size] = be.dev.upload(y.reshape(-1))
    be._forward(be.xb, T, B)
    be._loss_part(T, B, reference.loss_terms_count(T, B, be.O, be.train_cfg), 0)

    def backward():
        be._backward(T, B)
        be._weight_grads(T, B, be.g)

    backward()
    return be._split(be.g), backward


if __name__ == "__main__":
    sc.sweep(__doc__, prepare, run)
