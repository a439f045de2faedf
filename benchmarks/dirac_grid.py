"""Time the Dirac-GAN grid (7 losses x 7 regularizers x 2 update rules, 500 steps each), without the figure.

    python benchmarks/dirac_grid.py [--repeat 5] [--steps 500]

Prints a Markdown table: methods, steps, wall-clock seconds (cold first call, then best and median of the
repeats) and CPU seconds of this process (median).
The simulation runs single-threaded by design (torch.set_num_threads(1) inside the lab: the tensors are tiny).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from gankit.dirac import lab


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--steps", type=int, default=lab.DEFAULTS["steps"])
    args = parser.parse_args()
    methods = lab.grid_methods()

    def once() -> tuple[float, float, list]:
        t0, c0 = time.perf_counter(), time.process_time()
        results = lab.run_methods(methods, steps=args.steps)
        return time.perf_counter() - t0, time.process_time() - c0, results

    cold, _, results = once()
    runs = [once() for _ in range(args.repeat)]
    times = [r[0] for r in runs]
    cpu = [r[1] for r in runs]
    converged = sum(r.converged for r in results)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
          f"torch {torch.__version__}")
    print()
    try:
        load = "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "load average n/a"
    print(f"({load}; wall-clock seconds depend on other processes, CPU seconds much less)")
    print()
    print("| methods | steps | seconds (cold) | seconds (best) | seconds (median) | CPU seconds (median) | converged |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {len(methods)} | {args.steps} | {cold:.2f} | {min(times):.2f} | {statistics.median(times):.2f} | "
          f"{statistics.median(cpu):.2f} | {converged}/{len(methods)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
