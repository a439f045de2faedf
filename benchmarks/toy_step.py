"""ms per generator step for the reference 2-D recipe, gankit's engine against a plain eager loop.

Recipe (issue 2): MLP G and D, width 256, 3 hidden layers, z 32, batch 256, 5 D steps per G step, Adam,
non-saturating loss, ring of 8 Gaussians. Run:  python benchmarks/toy_step.py [--steps 200] [--threads 2]

Beside each time: the step's FLOPs (torch.utils.flop_counter on one step: matrix products and their backward)
and the rate they run at, against the peak of a plain matrix product at the recipe's shape ([512 x 256] @
[256 x 256], fp32 and bf16) measured in the same process: what the hardware allows for this step.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from gankit import config
from gankit.train import Trainer

RECIPE = ["loss=ns", "regularizers=[]", "model.z_dim=32", "train.batch_size=256", "train.n_critic=5",
          "model.generator.width=256", "model.generator.depth=3", "model.discriminator.width=256",
          "model.discriminator.depth=3", "train.progress=false", "train.tensorboard=false"]
R1 = "regularizers=[{name: r1, weight: 1}]"
GP = "regularizers=[{name: gp, weight: 10}]"


def time_steps(step, n_steps: int, repeats: int, device: torch.device) -> float:
    """Median over repeats of the mean ms per call of ``step``, after a warm-up (CUDA: synchronised)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(20):
        step()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(n_steps):
            step()
        sync()
        times.append((time.perf_counter() - t0) * 1000 / n_steps)
    return statistics.median(times)


def step_flops(step) -> int | None:
    """FLOPs of one call of ``step`` (what torch's flop counter attributes: mm, addmm, bmm and their backward);
    None where the counter cannot follow the step (it rejects autograd.grad, which the penalties call)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter:
            step()
    except RuntimeError:
        return None
    return counter.get_total_flops()


def matmul_peak(dtype: torch.dtype, device: torch.device, repeats: int = 200) -> float:
    """GFLOP/s of [512 x 256] @ [256 x 256] in ``dtype``: the recipe's D-step shape (real and fake joined)."""
    a = torch.randn(512, 256, device=device, dtype=dtype)
    b = torch.randn(256, 256, device=device, dtype=dtype)
    ms = time_steps(lambda: a @ b, repeats, 3, device)
    return 2 * 512 * 256 * 256 / (ms * 1e-3) / 1e9


def plain_loop(data: torch.Tensor, device: torch.device):
    """What a careful eager loop in a reference repo looks like: separate D forwards on real and fake,
    a fresh G forward per D step, unfused Adam, losses read with .item() every step."""
    torch.manual_seed(0)

    def mlp(n_in, n_out):
        return nn.Sequential(nn.Linear(n_in, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                             nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, n_out))

    G, D = mlp(32, 2).to(device), mlp(2, 1).to(device)
    data = data.to(device)
    opt_g = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.999), foreach=False)
    opt_d = torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.999), foreach=False)
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(256, 1, device=device), torch.zeros(256, 1, device=device)
    log = []

    def step():
        for _ in range(5):
            real = data[torch.randint(len(data), (256,), device=device)]
            fake = G(torch.randn(256, 32, device=device)).detach()
            d_loss = bce(D(real), ones) + bce(D(fake), zeros)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            log.append(d_loss.item())
        g_loss = bce(D(G(torch.randn(256, 32, device=device))), ones)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        log.append(g_loss.item())

    return step


def gankit_loop(extra: list[str], device: torch.device):
    cfg = config.load(None, RECIPE + [f"train.device={device}"] + extra)
    import tempfile
    from pathlib import Path

    trainer = Trainer.start(cfg, Path(tempfile.mkdtemp()) / "run")

    def step():  # the step function of Trainer.fit, without its logging I/O (which runs every log_every steps)
        terms, _ = trainer.train_step()
        return terms

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--conditional", action="store_true", help="also time the class-conditional recipe")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from gankit.data.toy import ring

    real = ring().x
    rows = [
        ("plain eager loop (separate D forwards, .item() per step)", plain_loop(real, device)),
        ("gankit engine, NS-GAN, fp32", gankit_loop(["train.precision=fp32"], device)),
        ("gankit engine, NS-GAN, bf16 hidden layers", gankit_loop(["train.precision=bf16"], device)),
        ("gankit engine, NS-GAN + R1 (every step), bf16", gankit_loop(["train.precision=bf16", R1], device)),
        ("gankit engine, NS-GAN + R1 (lazy, every 4), bf16",
         gankit_loop(["train.precision=bf16", "regularizers=[{name: r1, weight: 1, every: 4}]"], device)),
        ("gankit engine, WGAN-GP, bf16", gankit_loop(["train.precision=bf16", "loss=wgan", GP], device)),
    ]
    if args.conditional:
        rows.append(("gankit engine, conditional NS-GAN (concat), bf16",
                     gankit_loop(["train.precision=bf16", "model.conditional=true"], device)))
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} threads"
    peak32, peak16 = matmul_peak(torch.float32, device), matmul_peak(torch.bfloat16, device)
    print(f"torch {torch.__version__}, {where}, {args.steps} G steps x {args.repeats} repeats (median); matmul "
          f"[512 x 256] @ [256 x 256]: {peak32:.0f} GFLOP/s fp32, {peak16:.0f} GFLOP/s bf16")
    print(f"| {'variant':<58} | ms / G step | GFLOP / G step | GFLOP/s | of the fp32 matmul rate |")
    print(f"|{'-' * 60}|{'-' * 13}|{'-' * 16}|{'-' * 9}|{'-' * 25}|")
    for name, step in rows:
        ms = time_steps(step, args.steps, args.repeats, device)
        flops = step_flops(step)
        if flops is None:
            print(f"| {name:<58} | {ms:11.2f} | {'-':>14} | {'-':>7} | {'-':>23} |", flush=True)
            continue
        rate = flops / 1e9 / (ms * 1e-3)
        print(f"| {name:<58} | {ms:11.2f} | {flops / 1e9:14.2f} | {rate:7.0f} | {rate / peak32:23.0%} |", flush=True)


if __name__ == "__main__":
    main()
