"""Where the time of one G step of an image recipe goes: the top kernels by GPU time (torch.profiler).

    python benchmarks/profile_image_step.py [--method DCGAN|WGAN-GP] [KEY=VALUE ...]
"""
from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.image_step import METHODS, gankit_step, recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="DCGAN", choices=list(METHODS))
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    step = gankit_step(recipe(args.width, args.batch, "cuda") + METHODS[args.method] + args.overrides)
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            step()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=args.rows, max_name_column_width=70))


if __name__ == "__main__":
    main()
