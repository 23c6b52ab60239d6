"""SIMT emulator: runs the cuda/*.cu kernels on the CPU (blocks on OS threads, CUDA threads as
fibers). See docs/cuda.md."""

from collections.abc import Sequence

def kernels() -> list[str]:
    """Names of every registered extern "C" kernel (``<name>_f32`` / ``<name>_f64``)."""

def signature(name: str) -> list[str]:
    """The C++ parameter types of a kernel, in order."""

def launch(name: str, grid: int | Sequence[int], block: int | Sequence[int], args: Sequence,
           shared_mem: int = 0, cooperative: bool = False) -> None:
    """Run a kernel like ``kernel(grid, block, args, shared_mem=...)`` in CuPy: NumPy arrays for
    pointers, NumPy scalars (or ints/floats) for values; ``cooperative`` keeps every block
    resident so that the grid barrier works. Releases the GIL; errors are Python exceptions."""

def set_workers(n: int) -> None:
    """OS threads that run the blocks of ordinary launches (cooperative ones use one per block)."""

def workers() -> int: ...
