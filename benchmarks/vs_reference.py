"""ms per G step of the reference repository's own training script against gankit's matching config.

Runs xyfJASON/GANs-Implementations' scripts/train.py and `gankit train` as whole processes, each at two step
counts S1 < S2, and reports (t(S2) - t(S1)) / (S2 - S1): imports, data loading, model build, the last checkpoint
and the final evaluation cancel out. Same data, same machine, same threads. Needs a checkout of the reference:

    python benchmarks/vs_reference.py --reference /tmp/ref_gans [--recipes ring_gan,...] [--steps S1,S2]
                                      [--threads N] [--data ../shared/data] [--gankit-extra KEY=VALUE ...]

The reference needs yacs and accelerate (and imports torch_fidelity, matplotlib, tensorboard, tqdm).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF_SCRIPT = "scripts/train.py"
CIFAR = "{cifar}"  # replaced by the extracted CIFAR-10 JPEG tree (train/<class>/*.jpg)


@dataclass(frozen=True)
class Recipe:
    device: str  # "cpu" or "cuda": a cuda recipe is skipped without a GPU
    ref_config: str  # the reference's config, relative to its checkout
    ref_args: tuple[str, ...]  # yacs overrides (KEY VALUE pairs) beyond the common ones
    gankit_config: str
    gankit_args: tuple[str, ...]  # dotted overrides beyond the common ones


# The reference's invocation for each recipe: `python scripts/train.py -c CONFIG -e DIR -ni --KEY VALUE ...`.
# Common to all: train.n_steps S, no periodic sample plots/grids (sample_freq 0) or checkpoints (save_freq 0;
# the script still saves the last one). gankit: train.steps=S, no snapshots or periodic checkpoints either.
RECIPES: dict[str, Recipe] = {
    # As shipped: a DataLoader with 4 worker processes over a 3,200-point dataset read point by point.
    "ring_gan": Recipe("cpu", "configs/gan_ring8.yaml", (), "ring_gan", ()),
    # The same with the data loaded in the main process (no worker start-up every 12 batches).
    "ring_gan_nw0": Recipe("cpu", "configs/gan_ring8.yaml",
                           ("dataloader.num_workers", "0", "dataloader.prefetch_factor", "None"), "ring_gan", ()),
    "dcgan_cifar10": Recipe("cuda", "configs/gan_cifar10.yaml",
                            ("train.eval_freq", "0", "data.dataroot", CIFAR), "cifar10_dcgan",
                            ("train.sample_every=0", "eval.n_samples=5000")),
    "wgan_gp_cifar10": Recipe("cuda", "configs/wgan_gp_cifar10.yaml",
                              ("train.eval_freq", "0", "data.dataroot", CIFAR), "cifar10_wgan_gp",
                              # the reference's critic has batch norm (its config: D with_bn true); match it
                              ("train.sample_every=0", "eval.n_samples=5000")),
}
DEFAULT_STEPS = {"cpu": (200, 1000), "cuda": (100, 300)}

# torchvision's CIFAR10 reads the pickled python batches, which this machine does not have; the shim gives the
# reference script the same class over the JPEG tree: every image decoded once into one uint8 array, then per
# item a PIL image and the script's own transforms, exactly as torchvision's CIFAR10 does. No file is edited.
CIFAR_SHIM = """
import os, runpy, sys
import numpy as np, torchvision.datasets as D
from PIL import Image
class JpegCIFAR10(D.VisionDataset):
    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        super().__init__(root, transform=transform, target_transform=target_transform)
        folder = D.ImageFolder(os.path.join(root, 'train' if train else 'test'))
        self.data = np.stack([np.asarray(Image.open(p).convert('RGB')) for p, _ in folder.samples])
        self.targets = folder.targets
    def __len__(self):
        return len(self.data)
    def __getitem__(self, i):
        img, target = Image.fromarray(self.data[i]), self.targets[i]
        return (self.transform(img) if self.transform else img), target
D.CIFAR10 = JpegCIFAR10
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of one whole process; a failure stops the benchmark with the tail of its stderr."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        sys.exit(f"vs_reference: {' '.join(cmd[:4])} ... failed ({proc.returncode}): {tail[0]}")
    return seconds


def reference_cmd(r: Recipe, steps: int, out: Path, cifar: str) -> list[str]:
    args = ["-c", r.ref_config, "-e", str(out), "-ni", "--train.n_steps", str(steps),
            "--train.sample_freq", "0", "--train.save_freq", "0"]
    args += [f"--{a}" if i % 2 == 0 else a.replace(CIFAR, cifar) for i, a in enumerate(r.ref_args)]
    if CIFAR in r.ref_args:
        return [sys.executable, "-c", CIFAR_SHIM, REF_SCRIPT, *args]
    return [sys.executable, REF_SCRIPT, *args]


def gankit_cmd(r: Recipe, steps: int, out: Path, cifar: str, extra: list[str]) -> list[str]:
    args = [f"train.steps={steps}", "train.snapshot_steps=[]", "train.checkpoint_every=1000000000", *r.gankit_args]
    if r.device == "cuda":  # the same JPEG pixels as the reference; gankit's decoded cache goes in the tmp dir
        args.append(f"data={{name: image_folder, path: {cifar}/train, resolution: 32, labels: true, hflip: true,"
                    f" root: {out.parent}/gankit_data}}")
    return [sys.executable, "-m", "gankit", "train", r.gankit_config, *args, *extra, "--out", str(out)]


def extract_cifar(data: Path, into: Path) -> str:
    tar = data / "cifar10-jpg.tar.gz"
    if not tar.is_file():
        sys.exit(f"vs_reference: {tar} not found (pass --data DIR holding cifar10-jpg.tar.gz)")
    if not (into / "train").is_dir():
        with tarfile.open(tar) as t:
            t.extractall(into, filter="data")
    return str(into)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, type=Path, help="checkout of xyfJASON/GANs-Implementations")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--steps", help="S1,S2 G steps (default 200,1000 on CPU, 100,300 on GPU)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="OMP/MKL threads per process")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="holds cifar10-jpg.tar.gz")
    parser.add_argument("--gankit-extra", nargs="*", default=[], help="more gankit overrides, e.g. train.precision=fp32")
    args = parser.parse_args()
    if not (args.reference / REF_SCRIPT).is_file():
        print(f"vs_reference: --reference {args.reference}: no {REF_SCRIPT} there (a checkout of "
              "xyfJASON/GANs-Implementations is needed)", file=sys.stderr)
        sys.exit(2)
    names = [n for n in args.recipes.split(",") if n]
    if unknown := [n for n in names if n not in RECIPES]:
        print(f"vs_reference: unknown recipe {unknown[0]!r} (one of {', '.join(RECIPES)})", file=sys.stderr)
        sys.exit(2)
    steps = None
    if args.steps:
        try:
            steps = tuple(int(s) for s in args.steps.split(","))
            assert len(steps) == 2 and 0 < steps[0] < steps[1]
        except (ValueError, AssertionError):
            print(f"vs_reference: --steps {args.steps}: expected S1,S2 with 0 < S1 < S2", file=sys.stderr)
            sys.exit(2)

    import torch  # only to know whether the GPU recipes can run

    has_cuda = torch.cuda.is_available()
    # Both sides get the same thread count; gankit's root is not put on the path (its scripts/ would shadow)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    where = torch.cuda.get_device_name() if has_cuda else f"CPU, {args.threads} threads"
    print(f"torch {torch.__version__}, {where}, {os.cpu_count()} cores; ms per G step = "
          "(t(S2) - t(S1)) / (S2 - S1) of whole-process wall time")
    print("| recipe | reference script | gankit | ratio |\n|---|---:|---:|---:|", flush=True)
    skipped = []
    with tempfile.TemporaryDirectory(prefix="vs_reference-") as tmp_name:
        tmp = Path(tmp_name)
        for name in names:
            r = RECIPES[name]
            if r.device == "cuda" and not has_cuda:
                skipped.append(f"{name}: skipped, no CUDA device on this machine")
                continue
            cifar = extract_cifar(args.data, tmp / "cifar10") if r.device == "cuda" else ""
            s1, s2 = steps or DEFAULT_STEPS[r.device]
            t: dict[tuple[str, int], float] = {}
            for s in (s1, s2):  # interleaved, so that drift in the machine's load hits both sides alike
                t["ref", s] = run(reference_cmd(r, s, tmp / f"{name}-ref-{s}", cifar), args.reference, env)
                t["gk", s] = run(gankit_cmd(r, s, tmp / f"{name}-gk-{s}", cifar, args.gankit_extra), ROOT, env)
                print(f"{name}, {s} G steps: reference {t['ref', s]:.1f} s, gankit {t['gk', s]:.1f} s "
                      f"(load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
            ref, gk = ((t[k, s2] - t[k, s1]) * 1000 / (s2 - s1) for k in ("ref", "gk"))
            print(f"| {name} (G steps {s1}, {s2}) | {ref:.2f} ms | {gk:.2f} ms | {ref / gk:.2f}x |", flush=True)
    for line in skipped:
        print(line)


if __name__ == "__main__":
    main()
