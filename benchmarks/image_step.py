"""ms per generator step and peak memory for the CIFAR-10 DCGAN recipe, its WGAN-GP variant and SNGAN-ResNet.

Recipe (issue 4, the reference repos' CIFAR-10 settings): DCGAN G and D, base width 256, multipliers 4-2-1,
z 128, batch 512, 5 D steps per G step, Adam. Data: CIFAR-10-shaped uint8 noise held on the device (the speed
of a step does not depend on the pixels). Methods: DCGAN, WGAN-GP, and WGAN-GP with its penalty in bf16
(``precision: bf16``); each against a reference-style plain loop where one exists. Opt-in: the conditional
recipes "CGAN (concat)", "CGAN (cBN)" and "ACGAN" (labelled noise, 10 classes). Run on a GPU:

    python benchmarks/image_step.py [--width 256] [--steps 30] [--device cuda] [--methods M,..] [--variants V,..]

On CPU, use a smaller width, e.g. --width 32 --batch 64 --device cpu; memory there is the process's peak RSS.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gankit import config
from gankit.train import Trainer


def recipe(width: int, batch: int, device: str, images: int = 50_000) -> list[str]:
    return [
        f"data={{name: noise_images, n: {images}}}", "model.z_dim=128",
        f"model.generator={{name: dcgan, width: {width}, multipliers: [4, 2, 1]}}",
        f"model.discriminator={{name: dcgan, width: {width}, multipliers: [4, 2, 1]}}",
        f"train.batch_size={batch}", "train.n_critic=5", "train.progress=false", "train.tensorboard=false",
        f"train.device={device}", "optim.generator={name: adam, lr: 8.0e-4}",
        "optim.discriminator={name: adam, lr: 8.0e-4}",
    ]


WGAN_GP = ["loss=wgan", "model.discriminator.batch_norm=false"]
METHODS = {
    "DCGAN": ["loss=ns", "regularizers=[]"],
    "WGAN-GP": WGAN_GP + ["regularizers=[{name: gp, weight: 10}]"],
    # The same with the penalty's double backward in bf16 (opt-in; its accuracy: benchmarks/penalty_precision.py).
    "WGAN-GP (bf16 penalty)": WGAN_GP + ["regularizers=[{name: gp, weight: 10, precision: bf16}]"],
    # cifar10_sngan_resnet's networks: G --width, D half of it (256 and 128 by default, the paper's)
    "SNGAN-ResNet": ["loss=hinge", "regularizers=[]", "model.generator={name: sngan_resnet, width: {width}}",
                     "model.discriminator={name: sngan_resnet, width: {half_width}}"],
}
CONDITIONAL = ["loss=ns", "regularizers=[]", "data.n_classes=10", "model.conditional=true", "train.d_fake_classes=real"]
# The conditional recipes of issue 9 (cifar10_cgan, cifar10_cgan_cbn, cifar10_acgan); opt-in with --methods.
CONDITIONAL_METHODS = {
    "CGAN (concat)": CONDITIONAL + ["model.generator.condition=concat", "model.discriminator.condition=concat"],
    "CGAN (cBN)": CONDITIONAL + ["model.generator.condition=cbn", "model.discriminator.condition=concat"],
    "ACGAN": CONDITIONAL + ["model.generator.condition=cbn", "model.discriminator.condition=none",
                            "model.discriminator.class_head=true", "terms=[{name: aux_class, d_weight: 2.0}]"],
}
PLAIN = {"DCGAN": False, "WGAN-GP": True}  # methods with a reference-style loop, and whether it has the GP
VARIANTS = {
    "fp32": ["train.precision=fp32", "train.channels_last=false"],
    "fp32 + channels_last": ["train.precision=fp32", "train.channels_last=true"],
    "bf16": ["train.precision=bf16", "train.channels_last=false"],
    "bf16 + channels_last": ["train.precision=bf16", "train.channels_last=true"],
    "bf16 + compile": ["train.precision=bf16", "train.compile=true", "train.channels_last=false"],
    "bf16 + channels_last + compile": ["train.precision=bf16", "train.channels_last=true", "train.compile=true"],
}


def gankit_step(overrides: list[str]):
    trainer = Trainer.start(config.load(None, overrides), Path(tempfile.mkdtemp()) / "run")

    return trainer.train_step  # the step function `gankit train` runs


def plain_step(width: int, batch: int, device: torch.device, gp: bool):
    """A reference-style eager loop: fp32, unfused Adam, separate D forwards, .item() every step."""
    from gankit.registry import MODELS, load_builtins

    load_builtins()
    shape = (3, 32, 32)
    spec = {"name": "dcgan", "width": width, "multipliers": [4, 2, 1]}
    G = MODELS.build(spec, "g", "generator", shape, 128).to(device)
    D = MODELS.build({**spec, "batch_norm": not gp}, "d", "discriminator", shape, 128).to(device)
    opt_g = torch.optim.Adam(G.parameters(), 8e-4, betas=(0.5, 0.999), foreach=False)
    opt_d = torch.optim.Adam(D.parameters(), 8e-4, betas=(0.5, 0.999), foreach=False)
    data = torch.randint(0, 256, (50_000, *shape), dtype=torch.uint8)  # on the host, as a Dataset would be
    log = []

    def step():
        for _ in range(5):
            real = (data[torch.randint(len(data), (batch,))].float() / 127.5 - 1).to(device)
            fake = G(torch.randn(batch, 128, device=device)).detach()
            if gp:
                a = torch.rand(batch, 1, 1, 1, device=device)
                x = (a * real + (1 - a) * fake).requires_grad_(True)
                (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
                loss = D(fake).mean() - D(real).mean() + 10 * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
            else:
                loss = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
            log.append(loss.item())
        out = D(G(torch.randn(batch, 128, device=device)))
        g_loss = -out.mean() if gp else F.softplus(-out).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        log.append(g_loss.item())

    return step


def peak_memory_gib(device: torch.device) -> float:
    """Peak GPU memory allocated on CUDA; on CPU the process's peak resident set (which includes the data)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def measure(step, steps: int, device: torch.device, warmup: int = 5, rounds: int = 3) -> tuple[float, float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        times.append((time.perf_counter() - t0) * 1000 / steps)
    return statistics.median(times), peak_memory_gib(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated, of: {', '.join([*METHODS, *CONDITIONAL_METHODS])}")
    parser.add_argument("--no-plain", action="store_true")
    parser.add_argument("--images", type=int, default=50_000, help="noise images held as the data (CIFAR-10's 50,000)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed G steps first")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of --steps (the median is reported)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}; width {args.width}, batch {args.batch}, 5 D steps per G step; "
          f"median of {args.rounds} x {args.steps} G steps after {args.warmup}")
    print(f"| method | variant | ms / G step | peak {'GPU ' if device.type == 'cuda' else ''}memory (GiB) |")
    print("|---|---|---|---|")
    for method in args.methods.split(","):
        extra = [o.replace("{width}", str(args.width)).replace("{half_width}", str(max(1, args.width // 2)))
                 for o in {**METHODS, **CONDITIONAL_METHODS}[method]]
        if not args.no_plain and method in PLAIN:
            ms, peak = measure(plain_step(args.width, args.batch, device, PLAIN[method]), args.steps, device,
                               args.warmup, args.rounds)
            print(f"| {method} | plain eager loop (fp32, host data, .item() per step) | {ms:.1f} | {peak:.2f} |",
                  flush=True)
        for name in args.variants.split(","):
            try:
                step = gankit_step(recipe(args.width, args.batch, args.device, args.images) + extra + VARIANTS[name])
                ms, peak = measure(step, args.steps, device, args.warmup, args.rounds)
                print(f"| {method} | gankit, {name} | {ms:.1f} | {peak:.2f} |", flush=True)
            except Exception as exc:  # a variant that fails (e.g. compile) is reported, not fatal
                reason = str(exc).splitlines()[0][:80] if str(exc) else ""
                print(f"| {method} | gankit, {name} | failed: {type(exc).__name__}: {reason} | |")
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
