"""Seconds for FID + IS + KID of N CIFAR-10-sized samples from a DCGAN generator, in memory (issue 5).

    python benchmarks/metrics_speed.py [-n 50000] [--device cuda] [--inception-weights PATH]
    python benchmarks/metrics_speed.py -n 5000 --device cpu --inception-weights PATH
    python benchmarks/metrics_speed.py -n 2000 --device cpu --extractor random-test     # smoke run

Two passes: "cold" computes the reference statistics (and caches them in a temporary folder), "cached" is the
figure of the target (reference statistics cached): extractor set-up, N generated images through the generator
and Inception-v3, then the three metrics. Target: under 45 s for N = 50,000 on one H100.

The reference is CIFAR-10 train when it can be read offline (--data-root), else 50,000 CIFAR-10-shaped noise
images: the speed does not depend on the pixels. ``--random-inception`` writes torch-fidelity's Inception-v3
with random weights (same network, same compute, meaningless numbers) for timing where the real weights cannot
be had; the metric values it prints are then not FIDs.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from gankit.errors import GankitError
from gankit.metrics import compute, compute_metrics
from gankit.registry import MODELS, load_builtins


def main() -> None:
    p = argparse.ArgumentParser(description="FID + IS + KID speed for N DCGAN samples")
    p.add_argument("-n", type=int, default=None, help="generated samples (default 50000 on cuda, 5000 on cpu)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=None, help="default 500 on cuda, 250 on cpu")
    p.add_argument("--metrics", default="fid,is,kid")
    p.add_argument("--extractor", default="inception-v3-compat", choices=["inception-v3-compat", "random-test"])
    p.add_argument("--inception-weights", default=None, help="torch-fidelity's weights file (else the usual lookup)")
    p.add_argument("--random-inception", action="store_true", help="timing only: Inception-v3 with random weights")
    p.add_argument("--data-root", default=None, help="data root holding cifar-10-batches-py/")
    p.add_argument("--n-reference", type=int, default=None, help="reference images (default: all 50,000)")
    p.add_argument("--cache-dir", default=None, help="reference-statistics cache (default: a temporary folder)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args()

    device = torch.device(args.device)
    n = args.n or (50_000 if device.type == "cuda" else 5_000)
    batch = args.batch_size or (500 if device.type == "cuda" else 250)
    load_builtins()
    tmp = tempfile.TemporaryDirectory()
    weights = args.inception_weights
    if args.random_inception:
        from gankit.metrics.extractors import write_random_inception_weights

        weights = str(write_random_inception_weights(Path(tmp.name) / "random-inception.pth"))
    reference: dict = {"name": "cifar10", "split": "train", "root": args.data_root, "download": False}
    try:
        from gankit.registry import DATASETS

        DATASETS.build(reference, "reference")
        ref_label = "cifar10/train"
    except GankitError:
        reference = {"name": "noise_images", "n": 50_000, "channels": 3, "resolution": 32}
        ref_label = "noise_images (50,000 x 3x32x32; CIFAR-10 not found offline)"

    torch.manual_seed(0)
    g = MODELS.build({"name": "dcgan", "width": 64}, "g", "generator", (3, 32, 32), 128).to(device).eval()

    @torch.no_grad()
    def generate(k: int) -> torch.Tensor:
        return g(torch.randn(k, 128, device=device))

    cache_dir = args.cache_dir or str(Path(tmp.name) / "cache")
    rows = {}
    for run in ("cold", "cached"):
        compute._MEMO.clear()  # the cached pass reads the statistics from disk, as a new process would
        timings: dict[str, float] = {}
        start = time.perf_counter()
        result = compute_metrics(args.metrics, generate, n, reference, device=device, batch_size=batch,
                                 extractor=args.extractor, inception_weights=weights, cache_dir=cache_dir,
                                 n_reference=args.n_reference, timings=timings)
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings["total"] = time.perf_counter() - start
        rows[run] = timings
        values = {k: v["value"] for k, v in result.items()}
        print(f"{run} pass: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()), flush=True)

    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"cpu ({platform.processor() or 'x86'}, {torch.get_num_threads()} threads)")
    phases = ["setup", "generated features", "reference statistics", "metrics", "total"]
    print(f"FID + IS + KID ({args.metrics}) of {n} DCGAN samples, 3x32x32; reference {ref_label}; "
          f"extractor {args.extractor}{' (random weights: timing only)' if args.random_inception else ''}; "
          f"device {name}; batch {batch}; torch {torch.__version__}")
    print(f"{'phase':<24}{'cold (s)':>10}{'cached (s)':>12}")
    for ph in phases:
        print(f"{ph:<24}{rows['cold'].get(ph, 0.0):>10.2f}{rows['cached'].get(ph, 0.0):>12.2f}")
    print(f"values (last run): {json.dumps(values)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": n, "device": name, "batch": batch, "extractor": args.extractor,
                                               "random_inception": args.random_inception, "reference": ref_label,
                                               "timings": rows, "values": values}, indent=1))


if __name__ == "__main__":
    main()
