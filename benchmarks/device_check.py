"""One prepared GPU check: every GPU figure the project needs, in one command and one table.

    bash benchmarks/device_check.sh [--dry-run] [--reference DIR] [--budget-s 450]

Sections (issue 18), each a group of rows in the one table printed at the end:
1. ``family``: one training step of every model family (DCGAN, SNGAN-ResNet, conditional, InfoGAN, VEEGAN,
   packing) at its shipped config's sizes, fp32 and bf16, on noise images of the config's shape (a step's speed
   does not depend on the pixels, and the GPU machine has no datasets).
2. ``image_step``: benchmarks/image_step.py for DCGAN, WGAN-GP, SNGAN-ResNet and CGAN, fp32 and bf16.
3. ``vs_reference``: benchmarks/vs_reference.py for the DCGAN recipe at 100/300 G steps, given a checkout of
   xyfJASON/GANs-Implementations (``--reference``); its CIFAR-10 is a generated JPEG tree of noise unless
   ``--data`` holds cifar10-jpg.tar.gz.
4. ``seed_batch``: benchmarks/seed_batch.py on the device.
5. ``torchrun``: ``gankit train`` under a 1-process torchrun beside a plain run, ms per G step from two lengths.

``--dry-run`` runs the same code paths on the CPU at tiny sizes (tests/test_benchmarks.py runs it), so that the
GPU session, which has about 15 minutes in all, spends none of them on a typo. A section that fails prints its
error in its row and the others still run; the exit status is 1 if any section failed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


@dataclass(frozen=True)
class Sizes:
    """What differs between the GPU run and the dry run: everything else is the same code."""
    device: str
    batch: list[str]  # overrides that shrink the families' batches and widths (none on the GPU: the configs' own)
    steps: int  # timed steps per family and variant
    image_step: list[str]
    vs_reference_steps: str
    seed_batch: list[str]
    torchrun_steps: tuple[int, int]
    timeout_s: int  # per subprocess
    warmup: int = 2  # untimed steps per family and variant (cuDNN autotuning, allocator)
    rounds: int = 3  # timed rounds of `steps` (the median is reported)


GPU = Sizes("cuda", [], 20, ["--steps", "20"], "100,300", ["--configs", "ring_gan,ring_sngan", "--steps", "40"],
            (50, 150), 240)
DRY = Sizes("cpu", ["train.batch_size=8", "train.g_batch_size=8", "eval.n_samples=16", "model.generator.width=8",
                   "model.discriminator.width=8"], 1,
            ["--width", "8", "--batch", "8", "--steps", "1", "--warmup", "1", "--rounds", "1",
             "--images", "2048", "--no-plain"], "2,4",
            ["--configs", "ring_gan,ring_sngan", "--seeds", "2", "--steps", "1", "--repeats", "1",
             "train.batch_size=16"], (1, 2), 240, warmup=1, rounds=1)

# (family, shipped config, the noise images standing in for its data: channels, resolution, classes)
FAMILIES = [
    ("DCGAN", "mnist_dcgan", (1, 28, 0)),
    ("SNGAN-ResNet", "cifar10_sngan_resnet", (3, 32, 0)),
    ("conditional (CGAN)", "cifar10_cgan", (3, 32, 10)),
    ("InfoGAN", "mnist_infogan", (1, 32, 0)),
    ("VEEGAN", "mnist_veegan", (1, 28, 0)),
    ("packing (PacDCGAN2)", "stacked_mnist_pacdcgan2", (3, 28, 0)),
]
PRECISIONS = ("fp32", "bf16")
QUIET = ["train.progress=false", "train.tensorboard=false"]


def noise_data(channels: int, resolution: int, classes: int) -> str:
    return (f"data={{name: noise_images, n: 2048, channels: {channels}, resolution: {resolution}, "
            f"n_classes: {classes}}}")


def family_rows(sizes: Sizes) -> list[tuple[str, str, str]]:
    import torch

    from gankit import config
    from gankit.train import Trainer

    sync = torch.cuda.synchronize if sizes.device == "cuda" else (lambda: None)
    rows = []
    for family, name, shape in FAMILIES:
        times = {}
        for precision in PRECISIONS:
            overrides = [noise_data(*shape), f"train.device={sizes.device}", f"train.precision={precision}",
                         "eval.metrics=[]", *QUIET, *sizes.batch]
            with tempfile.TemporaryDirectory(prefix="device_check-") as tmp:
                trainer = Trainer.start(config.load(name, overrides), Path(tmp) / "run")
                for _ in range(sizes.warmup):
                    trainer.train_step()
                sync()
                laps = []
                for _ in range(sizes.rounds):
                    t0 = time.perf_counter()
                    for _ in range(sizes.steps):
                        trainer.train_step()
                    sync()
                    laps.append((time.perf_counter() - t0) * 1000 / sizes.steps)
                times[precision] = statistics.median(laps)
        rows.append(("family", f"{family} ({name})",
                     f"fp32 {times['fp32']:.2f} ms, bf16 {times['bf16']:.2f} ms per G step "
                     f"({times['fp32'] / times['bf16']:.2f}x)"))
    return rows


def table_rows(output: str) -> list[str]:
    """The body rows of the markdown tables a benchmark printed (header and separator rows dropped)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip().startswith("|")]
    body = []
    for i, line in enumerate(lines):
        next_is_rule = i + 1 < len(lines) and set(lines[i + 1]) <= set("|-: ")
        if set(line) <= set("|-: ") or next_is_rule:
            continue
        body.append(line)
    return body


def run_script(args: list[str], timeout_s: int, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout_s, cwd=ROOT,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"exit {proc.returncode}: {tail[0]}")
    return proc.stdout


def as_rows(section: str, output: str) -> list[tuple[str, str, str]]:
    rows = []
    for line in table_rows(output):
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((section, cells[0], "; ".join(cells[1:])))
    return rows or [(section, "(no table)", output.strip().splitlines()[-1] if output.strip() else "")]


def image_step_rows(sizes: Sizes) -> list[tuple[str, str, str]]:
    out = run_script([str(BENCH / "image_step.py"), "--device", sizes.device, "--variants", "fp32,bf16",
                      "--methods", "DCGAN,WGAN-GP,SNGAN-ResNet,CGAN (concat)", *sizes.image_step], sizes.timeout_s)
    return as_rows("image_step", out)


def fake_cifar_tar(into: Path, per_class: int = 50) -> Path:
    """A CIFAR-10-shaped JPEG tree of noise (train/<class>/NNNN.jpg) packed as vs_reference.py expects it."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    tree = into / "tree"
    for split in ("train", "test"):
        for c in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"):
            folder = tree / split / c
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:04d}.jpg")
    tar = into / "cifar10-jpg.tar.gz"
    with tarfile.open(tar, "w:gz") as f:
        for split in ("train", "test"):
            f.add(tree / split, arcname=split)
    return into


def vs_reference_rows(sizes: Sizes, reference: Path | None, data: Path | None) -> list[tuple[str, str, str]]:
    if reference is None:
        return [("vs_reference", "dcgan_cifar10", "skipped: no --reference checkout given")]
    with tempfile.TemporaryDirectory(prefix="device_check-cifar-") as tmp:
        if data is None or not (data / "cifar10-jpg.tar.gz").is_file():
            data = fake_cifar_tar(Path(tmp))
        out = run_script([str(BENCH / "vs_reference.py"), "--reference", str(reference), "--recipes",
                          "dcgan_cifar10", "--steps", sizes.vs_reference_steps, "--data", str(data)], sizes.timeout_s)
    rows = as_rows("vs_reference", out)
    rows += [("vs_reference", "dcgan_cifar10", ln) for ln in out.splitlines() if "skipped" in ln]
    return rows


def seed_batch_rows(sizes: Sizes) -> list[tuple[str, str, str]]:
    out = run_script([str(BENCH / "seed_batch.py"), *sizes.seed_batch, f"train.device={sizes.device}"],
                     sizes.timeout_s)
    return as_rows("seed_batch", out)


def torchrun_rows(sizes: Sizes) -> list[tuple[str, str, str]]:
    """ms per G step of `gankit train mnist_dcgan` on noise images, plain and under a 1-process torchrun."""
    base = ["mnist_dcgan", noise_data(1, 28, 0), f"train.device={sizes.device}", *QUIET, *sizes.batch,
            "train.snapshot_steps=[]", "train.checkpoint_every=1000000000", "train.sample_every=1000000000",
            "eval.metrics=[]"]
    launchers = {"plain": ["-m", "gankit", "train"],
                 "torchrun, 1 process": ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                                         "-m", "gankit", "train"]}
    s1, s2 = sizes.torchrun_steps
    result = {}
    with tempfile.TemporaryDirectory(prefix="device_check-run-") as tmp:
        for name, launcher in launchers.items():
            wall = {}
            for steps in (s1, s2):
                t0 = time.perf_counter()
                run_script([*launcher, *base, f"train.steps={steps}", "--out", f"{tmp}/{len(result)}-{steps}"],
                           sizes.timeout_s)
                wall[steps] = time.perf_counter() - t0
            result[name] = (wall[s2] - wall[s1]) * 1000 / (s2 - s1)
    return [("torchrun", name, f"{ms:.2f} ms per G step (G steps {s1}, {s2})") for name, ms in result.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the same code paths on the CPU at tiny sizes")
    parser.add_argument("--reference", type=Path, help="checkout of xyfJASON/GANs-Implementations")
    parser.add_argument("--data", type=Path, help="folder holding cifar10-jpg.tar.gz (default: generated noise)")
    parser.add_argument("--sections", default="family,image_step,vs_reference,seed_batch,torchrun")
    args = parser.parse_args()
    import torch

    sizes = DRY if args.dry_run else GPU
    if sizes.device == "cuda" and not torch.cuda.is_available():
        print("device_check: no CUDA device here; use --dry-run on a CPU", file=sys.stderr)
        sys.exit(2)
    if args.reference is not None and not (args.reference / "scripts" / "train.py").is_file():
        print(f"device_check: --reference {args.reference}: no scripts/train.py there", file=sys.stderr)
        sys.exit(2)
    sections = {
        "family": lambda: family_rows(sizes),
        "image_step": lambda: image_step_rows(sizes),
        "vs_reference": lambda: vs_reference_rows(sizes, args.reference, args.data),
        "seed_batch": lambda: seed_batch_rows(sizes),
        "torchrun": lambda: torchrun_rows(sizes),
    }
    chosen = [s for s in args.sections.split(",") if s]
    if unknown := [s for s in chosen if s not in sections]:
        print(f"device_check: unknown section {unknown[0]!r} (one of {', '.join(sections)})", file=sys.stderr)
        sys.exit(2)
    where = torch.cuda.get_device_name() if sizes.device == "cuda" else f"CPU (dry run), {torch.get_num_threads()} threads"
    rows, failed, start = [], False, time.perf_counter()
    for name in chosen:
        t0 = time.perf_counter()
        try:
            new = sections[name]()
            failed |= any("failed" in result for _, _, result in new)  # a benchmark's own failed rows
            rows += new
        except Exception as e:  # one section's failure must not cost the others their figures
            rows.append((name, "FAILED", f"{type(e).__name__}: {e}"))
            failed = True
        print(f"device_check: {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print(f"torch {torch.__version__}, {where}; {time.perf_counter() - start:.0f} s in all")
    print("| section | what | result |\n|---|---|---|")
    for section, what, result in rows:
        print(f"| {section} | {what} | {result} |")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
