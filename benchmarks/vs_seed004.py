"""gankit against seed 004's own code (afshindini/GAN-Methods-with-Pytorch), side by side on MNIST on this machine.

For each of the reference's five recipes (GAN, DCGAN, WGAN, WGAN_GP, SN_DCGAN) and gankit's config of the same
recipe (``afshindini_*``):

* speed: whole processes (start-up, data loading and the end of the run included) at two step counts S1 < S2,
  ms per G step = (t(S2) - t(S1)) / (S2 - S1), so start-up and the end-of-run work cancel; the two programs
  interleaved, with the same thread count (``--threads``);
* quality at equal G steps: 5,000 samples of each program's G after S2 steps, both quantised to 8-bit pixels,
  scored by one function (gankit.metrics.compute_metrics: cfd, cs, and the KL of the classes histogram to
  uniform, with the shipped MNIST classifier).

The reference runs unchanged from a snapshot of its repository (``--reference``): main.py under runpy, with
``--device cpu --epochs ceil(S / 469)`` and its README's arguments for that recipe (README_ARGS). Three things
are patched around it, none inside its training step: the MNIST DataLoader stops after S batches in all (S G
steps, over as many epochs of 469 batches as that takes; before 2026-12-07 it stopped at one epoch, so S2 > 469
under-counted the reference's time), the end-of-epoch figure writer (``save_result``/``save_result_GAN``)
instead saves 5,000 samples of its G in eval mode, as that writer samples (about a second per epoch, counted in
the reference's time), and the loss plot is skipped. ``MNIST('.', download=True)`` reads ./MNIST/raw, which
this script links to
$GANKIT_DATA/MNIST (nothing is downloaded).

    python benchmarks/vs_seed004.py --reference /path/to/GAN-Methods-with-Pytorch --steps 20,120 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"GAN": "afshindini_gan", "DCGAN": "afshindini_dcgan", "WGAN": "afshindini_wgan",
           "WGAN_GP": "afshindini_wgan_gp", "SN_DCGAN": "afshindini_sn_dcgan"}
N_SAMPLES = 5000
# The reference's README commands (--epochs aside): what the afshindini_* configs reproduce.
README_ARGS = {"GAN": ["--zdim", "64", "--lr", "0.00001", "--batch", "128", "--hidden_dim", "128"],
               "DCGAN": ["--lr", "0.0002", "--hidden_dim", "64"],
               "WGAN": ["--lr", "0.0002", "--hidden_dim", "64", "--critic_repeats", "5"],
               "WGAN_GP": ["--lr", "0.0002", "--hidden_dim", "64", "--c_lambda", "10", "--critic_repeats", "5"],
               "SN_DCGAN": ["--lr", "0.0002", "--hidden_dim", "64"]}

# Runs inside the reference's process: argv = [steps, samples.npz, threads, type, README arguments...].
REFERENCE_DRIVER = r'''
import itertools, runpy, sys
import numpy as np, torch
steps, out, threads, kind = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
import torch.utils.data
_iter = torch.utils.data.DataLoader.__iter__
left = [steps]  # batches still to run, over as many epochs as that takes (an epoch is 469 batches)

def counted(self):
    for batch in itertools.islice(_iter(self), left[0]):
        left[0] -= 1
        yield batch

torch.utils.data.DataLoader.__iter__ = counted
import Utility.utility as u

def samples(folder, image_no, z_dim, generator, num_epoch, device, *args, **kwargs):
    generator.eval()  # as the reference's own figure writer samples
    with torch.no_grad():
        x = torch.cat([generator(torch.randn(500, z_dim)) for _ in range(%d // 500)]).reshape(-1, 1, 28, 28)
    x = x * 2 - 1 if kind == "GAN" else x  # the GAN's G ends in a sigmoid over [0, 1] pixels, the others in tanh
    np.savez(out, samples=((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy())

u.save_result = u.save_result_GAN = samples
u.plot_loss = lambda *a, **k: None
epochs = -(-steps // 469)  # ceil: 60,000 images in batches of 128, the last one partial
sys.argv = ["main.py", "--type", kind, "--device", "cpu", "--epochs", str(epochs), *sys.argv[5:]]
runpy.run_path("main.py", run_name="__main__")
''' % N_SAMPLES


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"vs_seed004: {' '.join(cmd[:4])} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - t0


def reference_cmd(kind: str, steps: int, out: Path, threads: int, driver: Path) -> list[str]:
    return [sys.executable, str(driver), str(steps), str(out), str(threads), kind, *README_ARGS[kind]]


def gankit_cmd(config: str, steps: int, run_dir: Path, precision: str) -> list[str]:
    return [sys.executable, "-m", "gankit", "train", config, f"train.steps={steps}", f"train.precision={precision}",
            "train.snapshot_steps=[]",
            "train.checkpoint_every=1000000000", "train.sample_every=0", "train.progress=false",
            "train.tensorboard=false", "eval.metrics=[]", "train.device=cpu", "--out", str(run_dir)]


def quality(path: Path) -> dict[str, float]:
    import torch

    from gankit.metrics.compute import compute_metrics

    images = torch.from_numpy(np.load(path)["samples"]).float() / 127.5 - 1
    chunks = iter(images.split(250))
    got = compute_metrics(["cfd", "cs", "classes"], lambda k: next(chunks)[:k], len(images), {"name": "mnist"},
                          device="cpu")
    # classes: KL(predicted-class histogram || uniform), 0 when every digit is as frequent
    return {"cfd": got["cfd"]["value"], "cs": got["cs"]["value"], "class_kl": got["classes"]["value"]["kl_to_uniform"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="checkout of afshindini/GAN-Methods-with-Pytorch")
    parser.add_argument("--steps", default="20,120", help="S1,S2: G steps of the two timed runs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--precision", default="auto", help="gankit's train.precision, or several comma-separated, "
                        "each run beside the same reference runs (auto: measured on this CPU; bf16: "
                        "hidden layers in bf16, G's output and D's input and logit layers in fp32)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    s1, s2 = (int(s) for s in args.steps.split(","))
    data = Path(os.environ.get("GANKIT_DATA", ROOT / "data")) / "MNIST"
    if not (data / "raw").is_dir():
        sys.exit(f"vs_seed004: no MNIST at {data}/raw (set GANKIT_DATA)")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONWARNINGS": "ignore"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="vs_seed004-") as tmp_name:
        tmp = Path(tmp_name)
        work = tmp / "reference"
        work.mkdir()
        (work / "MNIST").symlink_to(data.resolve())
        for f in ("main.py", "option.py", "Methods", "Utility"):
            (work / f).symlink_to((args.reference / f).resolve())
        driver = work / "gankit_driver.py"  # beside main.py: its imports (Methods, Utility) resolve from there
        driver.write_text(REFERENCE_DRIVER)
        precisions = args.precision.split(",")
        for kind in args.recipes.split(","):
            config = RECIPES[kind]
            wall: dict[str, dict[int, float]] = {"reference": {}, **{p: {} for p in precisions}}
            for steps in (s1, s2):  # interleaved: each program at S1, then each at S2
                ref_out = tmp / f"{kind}-{steps}.npz"
                wall["reference"][steps] = run(reference_cmd(kind, steps, ref_out, args.threads, driver), work, env)
                for p in precisions:
                    run_dir = tmp / f"{config}-{p}-{steps}"
                    wall[p][steps] = run(gankit_cmd(config, steps, run_dir, p), ROOT, env)
            ms = {k: (w[s2] - w[s1]) * 1000 / (s2 - s1) for k, w in wall.items()}
            reference_quality = quality(tmp / f"{kind}-{s2}.npz")
            for p in precisions:
                ours = tmp / f"{config}-{p}-{s2}.npz"
                run([sys.executable, "-m", "gankit", "sample", str(tmp / f"{config}-{p}-{s2}"), "-n", str(N_SAMPLES),
                     "--out", str(ours)], ROOT, env)
                chosen = yaml.safe_load((tmp / f"{config}-{p}-{s2}" / "config.yaml").read_text())["train"]["precision"]
                row = {"recipe": kind, "config": config, "precision": p if p == chosen else f"{p} -> {chosen}",
                       "ms_reference": ms["reference"], "ms_gankit": ms[p], "speedup": ms["reference"] / ms[p],
                       "steps": s2, "reference": reference_quality, "gankit": quality(ours)}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    import platform

    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} thread(s); G steps {s1} and {s2}; quality after {s2} G steps, {N_SAMPLES} samples; gankit "
          f"train.precision={args.precision} (auto -> what it resolved to)")
    print("| recipe | gankit config | gankit precision | reference ms/G step | gankit ms/G step | speed-up | "
          "cfd ref / gankit | cs ref / gankit | class KL ref / gankit |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        a, b = r["reference"], r["gankit"]
        print(f"| {r['recipe']} | {r['config']} | {r['precision']} | {r['ms_reference']:.1f} | {r['ms_gankit']:.1f} | "
              f"{r['speedup']:.2f}x | {a['cfd']:.2f} / {b['cfd']:.2f} | {a['cs']:.2f} / {b['cs']:.2f} | "
              f"{a['class_kl']:.3f} / {b['class_kl']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
