"""Data-parallel training with lockstep (lockstep.distributed on MPI) and with PyTorch DDP
(Gloo, CPU) at R = 1 and 2 processes: wall time, scaling efficiency, and whether the final
parameters are bit-identical across R (a script, not a test).

    python bench/distributed.py [--hidden 64] [--steps 24] [--batch 64] [--samples 1024]
                                [--epochs 3] [--shards 4] [--ranks 1,2] [--json FILE]

lockstep trains backend "cpu" with grad_shards = S on every R (mpiexec -n R, one engine thread
per rank); PyTorch trains nn.LSTM + nn.Linear with SGD under DistributedDataParallel, each rank
taking a contiguous 1/R of every batch (one thread per rank). The same data, model size, batch
size and learning rate for both; time is the training loop only (after warm-up imports),
measured on rank 0. Efficiency = t(R=1) / (R * t(R)). "final loss" is lockstep's last epoch
mean and PyTorch's last batch on rank 0 (a sanity value, not a comparison). PyTorch's all-reduce averages
per-rank means, so its parameters are expected to differ across R; lockstep's must not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()


def _problem(a, dtype=np.float32):
    from lockstep import harness
    return harness.make_problem(1, a.hidden, 1, a.steps, a.batch, dtype, epochs=a.epochs,
                                n=a.samples, grad_shards=a.shards, lr=0.05)


def _hash(arrays):
    h = hashlib.sha256()
    for v in arrays:
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()[:16]


def worker_lockstep(a):
    from lockstep import _cpu, reference
    from lockstep.distributed import world
    from lockstep.train import Trainer

    _cpu.set_num_threads(1, adaptive=False)
    comm = world()
    mc, tc, params, x, y = _problem(a)
    trainer = Trainer(mc, tc, backend="cpu", dtype=np.float32, quiet=True, comm=comm)
    comm.Barrier()
    t0 = time.perf_counter()
    state = trainer.fit(trainer.new_state(params), (x, y))
    comm.Barrier()
    wall = time.perf_counter() - t0
    if comm.rank == 0:
        print(json.dumps({"wall_s": wall, "final_loss": float(state.train_loss[-1]),
                          "params": _hash(state.params[n] for n in reference.PARAM_NAMES)}))


def worker_torch(rank, R, a, port, out):
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=R)
    mc, tc, params, x, y = _problem(a)
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(1, a.hidden)
            self.head = torch.nn.Linear(a.hidden, 1)

        def forward(self, xb):
            return self.head(self.lstm(xb)[0])

    net = Net()
    with torch.no_grad():  # lockstep's initial parameters (b split into b_ih, b_hh = 0)
        net.lstm.weight_ih_l0.copy_(torch.from_numpy(params["W_ih"]))
        net.lstm.weight_hh_l0.copy_(torch.from_numpy(params["W_hh"]))
        net.lstm.bias_ih_l0.copy_(torch.from_numpy(params["b"]))
        net.lstm.bias_hh_l0.zero_()
        net.head.weight.copy_(torch.from_numpy(params["W_out"]))
        net.head.bias.copy_(torch.from_numpy(params["b_out"]))
    model = torch.nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.SGD(model.parameters(), lr=tc.lr)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    rng = np.random.Generator(np.random.PCG64(tc.seed))
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        order = rng.permutation(a.samples)
        for s in range(0, a.samples, a.batch):
            idx = order[s:s + a.batch]
            part = np.array_split(idx, R)[rank]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(X[:, part]), Y[:, part])
            loss.backward()
            opt.step()
    dist.barrier()
    wall = time.perf_counter() - t0
    if rank == 0:
        Path(out).write_text(json.dumps({
            "wall_s": wall, "final_loss": float(loss.detach()),
            "params": _hash(p.detach().numpy() for p in net.parameters())}))
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_lockstep(a, R):
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or "mpiexec"
    cmd = [mpiexec, "-n", str(R), sys.executable, str(HERE), "--worker", "lockstep",
           *sys.argv[1:]]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if p.returncode:
        raise SystemExit(f"lockstep at R={R} failed:\n{p.stderr}")
    return json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])


def run_torch(a, R):
    import tempfile

    import torch.multiprocessing as mp
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.json"
        mp.spawn(worker_torch, args=(R, a, _free_port(), str(out)), nprocs=R, join=True)
        return json.loads(out.read_text())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--samples", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--worker", choices=["lockstep"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker_lockstep(a)
    ranks = [int(r) for r in a.ranks.split(",")]
    rows = []
    for impl, run in (("lockstep cpu", run_lockstep), ("torch DDP gloo", run_torch)):
        if impl.startswith("torch"):
            try:
                import torch  # noqa: F401
            except ImportError:
                print("torch is not installed: its rows are skipped", file=sys.stderr)
                continue
        base = None
        for R in ranks:
            r = run(a, R)
            base = base or r
            rows.append({"impl": impl, "ranks": R, "wall_s": r["wall_s"],
                         "efficiency": base["wall_s"] / (R * r["wall_s"]),
                         "final_loss": r["final_loss"], "params": r["params"],
                         "same_params_as_R1": r["params"] == base["params"]})
            print(f"{impl:16s} R={R}  {r['wall_s']:8.3f} s  efficiency "
                  f"{rows[-1]['efficiency']:.2f}  final loss {r['final_loss']:.6g}  "
                  f"params {r['params']}  same bits as R=1: {rows[-1]['same_params_as_R1']}",
                  flush=True)
    res = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
           "config": {k: v for k, v in vars(a).items() if k not in ("json", "worker")},
           "rows": rows}
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
