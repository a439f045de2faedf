"""How accurate is a gradient penalty computed in bf16? One table: penalty and gradient errors against fp64.

A penalty's input gradient goes through a double backward, so rounding enters twice. This script measures, on a
trained critic and real batches, the error of the penalty value and of its gradient with respect to D's
parameters (the thing the optimiser uses) for ``precision: fp32`` and ``precision: bf16``, both against the same
penalty computed in fp64. For scale it also reports how far the fp64 penalty and gradient of another batch of the
same size lie from the first: the sampling noise that every step carries anyway.

    python benchmarks/penalty_precision.py RUN_DIR [--batches 8] [--penalty gp|r1]

RUN_DIR is a gankit image run (e.g. ``gankit train mnist_wgan_gp --out RUN_DIR train.steps=400``). On a GPU the
fp32 path runs convolutions in TF32 (gankit turns TF32 on), so the fp32 row there sits between this fp32 row and
the bf16 row.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from gankit.api import load_trained
from gankit.errors import GankitError
from gankit.registry import REGULARIZERS, load_builtins
from gankit.regularizers import DStepContext, InputGradientPenalty


def param_gradient(reg: InputGradientPenalty, critic: nn.Module, real: Tensor, fake: Tensor,
                   seed: int) -> tuple[Tensor, Tensor]:
    """The penalty and its gradient w.r.t. the critic's parameters (flattened, fp64), interpolation drawn by seed."""
    critic.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same alpha for every precision
    value = reg.penalty(DStepContext(critic, real, fake, real, fake))  # D's outputs: unused by these penalties
    value.backward()
    # a bias that cannot change the input gradient (the logit's) gets no gradient at all
    grad = torch.cat([torch.zeros(p.numel(), dtype=torch.float64, device=p.device) if p.grad is None
                      else p.grad.double().flatten() for p in critic.parameters()])
    return value.detach().double(), grad


def relative(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


def cosine(a: Tensor, b: Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--penalty", default="gp", choices=["gp", "r1", "dragan"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    load_builtins()
    try:
        exp, step = load_trained(args.run, device=args.device)
    except GankitError as exc:
        print(f"penalty_precision: error: {exc}", file=sys.stderr)
        sys.exit(2)
    critics = {"fp64": copy.deepcopy(exp.discriminator).double(), "fp32": exp.discriminator,
               "bf16": exp.discriminator}
    regs = {p: REGULARIZERS.build({"name": args.penalty, "precision": "bf16" if p == "bf16" else "fp32"}, "r")
            for p in critics}
    rows: dict[str, list[tuple[float, float, float]]] = {"fp32": [], "bf16": [], "fp64, another batch": []}
    torch.manual_seed(0)

    def batch() -> tuple[Tensor, Tensor]:
        real = exp.data.sample(args.batch_size).x.float()
        with torch.no_grad():
            fake = exp.generator(torch.randn(args.batch_size, exp.cfg.model.z_dim, device=exp.device)).float()
        return real, fake

    for b in range(args.batches):
        real, fake = batch()
        ref_value, ref_grad = param_gradient(regs["fp64"], critics["fp64"], real.double(), fake.double(), seed=b)
        for p in ("fp32", "bf16"):
            value, grad = param_gradient(regs[p], critics[p], real, fake, seed=b)
            rows[p].append((abs(float(value / ref_value) - 1), relative(grad, ref_grad), cosine(grad, ref_grad)))
        real, fake = batch()
        value, grad = param_gradient(regs["fp64"], critics["fp64"], real.double(), fake.double(), seed=10_000 + b)
        rows["fp64, another batch"].append((abs(float(value / ref_value) - 1), relative(grad, ref_grad),
                                        cosine(grad, ref_grad)))
    print(f"{args.penalty} on {args.run} (G step {step}), {exp.cfg.data['name']}, {args.batches} batches of "
          f"{args.batch_size}, device {exp.device}, torch {torch.__version__}; medians over batches")
    print("| computed as | relative error of the penalty | relative error of dP/dtheta | cosine to fp64 dP/dtheta |")
    print("|---|---|---|---|")
    for name, values in rows.items():
        med = [statistics.median(v[i] for v in values) for i in range(3)]
        print(f"| {name} | {med[0]:.2e} | {med[1]:.2e} | {med[2]:.6f} |")


if __name__ == "__main__":
    main()
