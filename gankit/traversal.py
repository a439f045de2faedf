"""The traversal figure of a trained InfoGAN run (`gankit sample RUN --traversal C --out FIG.png`): rows are the
values of the first categorical code, columns continuous code C from -span to span, everything else fixed.

It lives above the API (it loads a run), not in gankit/methods/, which holds objective code only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gankit.errors import GankitError
from gankit.prior import CodeSpec


def traversal_latents(prior: Any, code: int, columns: int, span: float, seed: int, device: torch.device) -> Tensor:
    """Latents of a traversal grid: one row per value of the first categorical code (one row when there is none),
    ``columns`` values of continuous code ``code`` from -span to span; the noise (one draw, by seed) and the other
    continuous codes (0, the prior's centre) are the same in every cell."""
    codes: CodeSpec = prior.codes
    if not codes.continuous:
        raise GankitError("--traversal needs an InfoGAN run with continuous codes (model.codes.continuous)")
    if not 0 <= code < codes.continuous:
        raise GankitError(f"continuous code {code} is out of range: this run has continuous codes "
                          f"0..{codes.continuous - 1}")
    if columns < 2:
        raise GankitError(f"--columns must be >= 2, got {columns}")
    rows = codes.categorical[0] if codes.categorical else 1
    z = prior.latent(1, device, torch.Generator().manual_seed(seed)).expand(rows * columns, -1).clone()
    z[:, prior.dim - codes.continuous:] = 0
    if codes.categorical:
        z = codes.with_category(z, torch.arange(rows, device=device).repeat_interleave(columns))
    values = torch.linspace(-span, span, columns, device=device).repeat(rows)
    return codes.with_continuous(z, values, code)


def write_traversal(run_dir: Path, code: int, out: Path, seed: int = 0, columns: int = 10, span: float = 1.0) -> Path:
    """`gankit sample RUN --traversal C --out FIG.png`: the traversal grid of continuous code C (rows: the
    categorical code's values; columns: C from -span to span) as a PNG."""
    from gankit import viz
    from gankit.api import load_trained
    from gankit.evaluation import generate_from

    if out.suffix.lower() != ".png":
        raise GankitError(f"--out {out}: a traversal is a figure; give a file name ending in .png")
    if span <= 0:
        raise GankitError(f"--span must be > 0, got {span}")
    exp, _ = load_trained(run_dir)
    z = traversal_latents(exp.prior, code, columns, span, seed, exp.device)
    images = generate_from(exp, z, None)
    viz.save_png(viz.image_grid(images, nrow=columns), out)
    return out
