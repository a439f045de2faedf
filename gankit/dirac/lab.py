"""The Dirac-GAN convergence lab (Mescheder, Geiger & Nowozin, ICML 2018).

The game: the data is a point mass at 0, the generator is p_theta = delta(x - theta), the discriminator is
D_psi(x) = psi * x, and the unique equilibrium is (theta, psi) = (0, 0).

Nothing here re-implements a loss or a regularizer: every method is built from gankit's own registries
(``gankit.losses``, ``gankit.regularizers``) and applied to this one-parameter G and D. Many games are run at
once as one batch -- each game is one sample of the batch, with its own theta_i and psi_i -- so that the whole
grid of 98 methods costs about as much Python as a single method. The losses and penalties are mean-reduced,
so every block of games is scaled back by its number of games (see ``_Batch``): the gradient that game i
receives is exactly the gradient of its own loss.

What is computed for each method (all formulas in docs/dirac.md):

* the trajectory of the chosen update rule (simultaneous or alternating gradient descent, n_d D steps per
  G step, step size h = lr for both players);
* the Jacobian J of the gradient vector field v = (-dL_G/dtheta, -dL_D/dpsi) at the equilibrium, by autograd,
  and its eigenvalues;
* the spectral radius of the linearised one-iteration update map (simultaneous, n_d = 1: I + hJ);
* a verdict: converged iff every point of the last ``tail`` fraction of the trajectory (10 % by default) is
  finite and closer than ``tol`` (0.1 by default) to (0, 0).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import gankit.losses  # noqa: F401  (fills LOSSES)
import gankit.augment  # noqa: F401  (fills AUGMENTATIONS)
import gankit.regularizers  # noqa: F401  (fills REGULARIZERS)
from gankit.errors import GankitError
from gankit.registry import AUGMENTATIONS, LOSSES, REGULARIZERS
from gankit.augment.noise import InstanceNoise
from gankit.regularizers import DStepContext, Regularizer

# --------------------------------------------------------------------------------------------------------------
# The methods
# --------------------------------------------------------------------------------------------------------------

LOSS_NAMES: tuple[str, ...] = ("gan", "ns", "wgan", "wgan-gp", "lsgan", "hinge", "dragan", "rpgan", "ragan")
REG_NAMES: tuple[str, ...] = ("none", "r1", "r2", "r1+r2", "rlc", "noise", "consensus", "gp")
MODES: tuple[str, ...] = ("simultaneous", "alternating")

# Defaults of the paper's notebook (LMescheder/GAN_stability, notebooks/DiracGAN.ipynb), in gankit's convention
# "D minimises loss + weight * P":
#   R1/R2: P = 1/2 E||grad D||^2, so weight = gamma = 0.3 (the critical value is gamma = 2 f'(0) = 1);
#   gp:    P = E(||grad D|| - g0)^2 while the notebook's WGAN_GP(reg=0.7, target=1) follows the field of
#          reg/2 (|psi| - g0)^2, so weight = 0.7 / 2 = 0.35;
#   noise: the "weight" of instance noise is its standard deviation sigma = 0.7;
#   consensus: gamma = 1 in gamma/2 ||v||^2.
# RLC is not in the paper; it gets the R1 weight and gankit's default decay.
DEFAULT_WEIGHTS: dict[str, float] = {
    "none": 0.0, "r1": 0.3, "r2": 0.3, "r1+r2": 0.3, "rlc": 0.3, "noise": 0.7, "consensus": 1.0, "gp": 0.35,
}
DEFAULTS: dict[str, Any] = {
    "mode": "simultaneous", "n_d": 1, "lr": 0.2, "steps": 500, "start": (1.0, 1.0), "clip": 1.0,
    "tol": 0.1, "tail": 0.1, "seed": 0, "noise_samples": 64,
}
GP_TARGET = 1.0          # g0 of WGAN-GP (and of the gp regularizer setting)
WGAN_GP_WEIGHT = 0.35    # notebook gamma 0.7 -> gankit weight gamma / 2
DRAGAN_WEIGHT = 0.35     # same scale as WGAN-GP
DRAGAN_NOISE_STD = 0.5   # the data has no spread: delta = noise_std * U[0,1) (the authors' c = 0.5)
RLC_DECAY = 0.99
# Standardised points of the instance-noise expectation (Jacobian, plotted field): 16 mid-quantiles of N(0, 1),
# rescaled to variance exactly 1. Their mean is 0 and variance 1, which is all the Jacobian at the equilibrium
# depends on, so the expected Jacobian is exact; away from the equilibrium they approximate the expectation.
_N_QUANTILES = 16

LOSS_HELP: dict[str, str] = {
    "gan": "minimax GAN (gankit 'gan')",
    "ns": "non-saturating GAN (gankit 'ns')",
    "wgan": "WGAN (gankit 'wgan'), psi clipped to [-clip, clip] by gankit 'clip'",
    "wgan-gp": "WGAN-GP: gankit 'wgan' + gankit 'gp' (weight 0.35 = notebook gamma 0.7 / 2, g0 = 1)",
    "lsgan": "least squares GAN (gankit 'lsgan', a=0, b=1, c=1)",
    "hinge": "hinge loss (gankit 'hinge')",
    "dragan": "DRAGAN: gankit 'gan' + gankit 'dragan' (weight 0.35, noise_std 0.5)",
    "rpgan": "relativistic pairing GAN (gankit 'rpgan', Huang et al. 2024): softplus of the score differences",
    "ragan": "relativistic average GAN (gankit 'ragan', Jolicoeur-Martineau 2018): against the other side's mean",
}
REG_HELP: dict[str, str] = {
    "none": "no regularizer",
    "r1": "gankit 'r1': weight/2 |dD/dx|^2 at real data (weight = gamma)",
    "r2": "gankit 'r2': weight/2 |dD/dx|^2 at generated data (weight = gamma)",
    "r1+r2": "gankit 'r1' and 'r2' together, each with weight gamma (R3GAN's pair)",
    "rlc": "gankit 'rlc' (LeCam): weight * [(D(x)-a_F)^2 + (D(G(z))-a_R)^2], EMA anchors",
    "noise": "gankit 'noise': instance noise N(0, weight^2) on real and generated inputs (weight = sigma)",
    "consensus": "consensus optimisation: both players add weight/2 |v|^2 (lab, not a gankit regularizer)",
    "gp": "gankit 'gp': weight * (|dD/dx| - 1)^2 on interpolates",
}


def _one_of(kind: str, value: str, valid: Sequence[str], flag: str) -> None:
    if value not in valid:
        raise GankitError(f"{flag}: unknown {kind} {value!r}; choose one of: {', '.join(valid)}")


@dataclass(frozen=True)
class Method:
    """One cell of the grid: a loss, a regularizer setting with its weight, and an update rule."""

    loss: str
    reg: str = "none"
    mode: str = "simultaneous"
    weight: float | None = None  # None: DEFAULT_WEIGHTS[reg]

    @property
    def w(self) -> float:
        return DEFAULT_WEIGHTS[self.reg] if self.weight is None else float(self.weight)

    @property
    def label(self) -> str:
        return f"{self.loss}/{self.reg}/{self.mode}"


def validate(*, loss: str | None = None, reg: str | None = None, mode: str | None = None,
             weight: float | None = None, n_d: int | None = None, lr: float | None = None,
             steps: int | None = None, start: Sequence[float] | None = None, clip: float | None = None,
             tol: float | None = None) -> None:
    """Raise GankitError (one line naming the CLI flag) for the first bad argument; None means 'not given'."""
    if loss is not None:
        _one_of("loss", loss, LOSS_NAMES, "--loss")
    if reg is not None:
        _one_of("regularizer", reg, REG_NAMES, "--reg")
    if mode is not None:
        _one_of("update rule", mode, MODES, "--mode")
    if loss is not None and reg is not None and (why := unsupported(loss, reg)):
        raise GankitError(why)
    if weight is not None and not (math.isfinite(weight) and weight >= 0):
        raise GankitError(f"--weight must be a finite number >= 0, got {weight}")
    if n_d is not None and (isinstance(n_d, bool) or not isinstance(n_d, int) or n_d <= 0):
        raise GankitError(f"--n-d must be an integer >= 1, got {n_d}")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise GankitError(f"--lr must be a finite number > 0, got {lr}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0):
        raise GankitError(f"--steps must be an integer >= 1, got {steps}")
    if start is not None:
        if len(start) != 2 or not all(math.isfinite(float(s)) for s in start):
            raise GankitError(f"--start needs two finite numbers THETA PSI, got {list(start)}")
    if clip is not None and not (math.isfinite(clip) and clip > 0):
        raise GankitError(f"--clip must be a finite number > 0, got {clip}")
    if tol is not None and not (math.isfinite(tol) and tol > 0):
        raise GankitError(f"--tol must be a finite number > 0, got {tol}")


# --------------------------------------------------------------------------------------------------------------
# Building a method from gankit's registries
# --------------------------------------------------------------------------------------------------------------

_LOSS_SPECS: dict[str, tuple[str, dict[str, Any] | None, bool]] = {
    # method loss -> (gankit loss, built-in D penalty spec or None, WGAN weight clipping?)
    "gan": ("gan", None, False),
    "ns": ("ns", None, False),
    "wgan": ("wgan", None, True),
    "wgan-gp": ("wgan", {"name": "gp", "weight": WGAN_GP_WEIGHT, "target": GP_TARGET}, False),
    "lsgan": ("lsgan", None, False),
    "hinge": ("hinge", None, False),
    "dragan": ("gan", {"name": "dragan", "weight": DRAGAN_WEIGHT, "noise_std": DRAGAN_NOISE_STD}, False),
    "rpgan": ("rpgan", None, False),
    "ragan": ("ragan", None, False),
}


def _reg_specs(reg: str, weight: float) -> list[dict[str, Any]]:
    """The gankit specs of a --reg setting (none, one, or R1 and R2 together)."""
    if reg in ("none", "consensus"):
        return []
    if reg in ("r1", "r2"):
        return [{"name": reg, "weight": weight}]
    if reg == "r1+r2":
        return [{"name": "r1", "weight": weight}, {"name": "r2", "weight": weight}]
    if reg == "rlc":
        return [{"name": "rlc", "weight": weight, "decay": RLC_DECAY}]
    if reg == "gp":
        return [{"name": "gp", "weight": weight, "target": GP_TARGET}]
    if reg == "noise":
        return [{"name": "noise", "sigma": weight}]
    raise GankitError(f"--reg: unknown regularizer {reg!r}; choose one of: {', '.join(REG_NAMES)}")


def _key(spec: dict[str, Any]) -> tuple:
    return tuple(sorted((k, v) for k, v in spec.items()))


def uses_grad_norm(method: Method) -> bool:
    """True where D's objective contains |dD/dx| with a target g0 > 0 (gp, dragan): |psi| has a kink at psi = 0,
    so the gradient vector field is not differentiable (not even continuous) at the equilibrium."""
    return method.loss in ("wgan-gp", "dragan") or (method.reg == "gp" and method.w > 0)


class _ClipView(nn.Module):
    """Presents psi of the clipped games as D's parameters, so gankit's WeightClip.after_d_step clamps them."""

    def __init__(self, psi: Tensor) -> None:
        super().__init__()
        self.psi = psi

    def parameters(self, recurse: bool = True) -> Iterable[Tensor]:  # type: ignore[override]
        yield self.psi


@dataclass
class _Block:
    """Games that share one component and one number of samples per game (so mean reduction is uniform)."""

    obj: Any
    sidx: Tensor | slice  # sample indices of the block (a slice where they are consecutive)
    n_games: int
    has_consensus: bool = False
    is_penalty: bool = False


class _Batch:
    """Many Dirac games as one batch. Game i owns samples gid == i (1 sample, or K for instance noise).

    A block's loss is mean-reduced over its samples; all of its games have the same number of samples K, so
    n_games * mean = sum over games of the game's own (mean-reduced) loss, and d/dpsi_i of the block's total is
    exactly game i's gradient.
    """

    def __init__(self, methods: Sequence[Method], *, clip: float, noise_samples: int,
                 expected_noise: bool, dtype: torch.dtype = torch.float64) -> None:
        self.n = n = len(methods)
        self.dtype = dtype
        self.expected_noise = expected_noise
        built: dict[str, Any] = {}  # each loss once, by name
        losses: dict[Any, Any] = {}  # block key -> loss
        penalties: dict[tuple, Regularizer] = {}
        noises: dict[float, InstanceNoise] = {}
        self.clipper = REGULARIZERS.build({"name": "clip", "clip": float(clip)}, "dirac.clip")
        points = _standard_points(_N_QUANTILES, dtype)
        k_noise = len(points) if expected_noise else noise_samples
        self.k_noise = k_noise

        ks = []
        game_loss, game_pens, game_noise = [], [], []
        consensus = torch.zeros(n, dtype=dtype)
        clip_games, sim = [], []
        for i, m in enumerate(methods):
            if why := unsupported(m.loss, m.reg):
                raise GankitError(why)
            loss_name, builtin, clipped = _LOSS_SPECS[m.loss]
            if loss_name not in built:
                built[loss_name] = LOSSES.build(loss_name, "dirac.loss")
            # A batch-coupled loss (RaGAN's batch means) must see one game's samples only: a block of its own.
            loss_key: Any = (loss_name, i) if built[loss_name].batch_coupled else loss_name
            losses[loss_key] = built[loss_name]
            game_loss.append(loss_key)
            pens = []
            specs = [("loss", builtin)] + [("reg", spec) for spec in _reg_specs(m.reg, m.w)]
            for role, spec in specs:
                if spec is None or spec["name"] == "noise":
                    continue
                key = _key(spec)  # the same penalty from the loss and from --reg: one block, the game twice
                if key not in penalties:
                    penalties[key] = REGULARIZERS.build(spec, f"dirac.{role}")
                pens.append(key)
            game_pens.append(pens)
            if m.reg == "noise" and m.w > 0:
                if m.w not in noises:
                    noises[m.w] = AUGMENTATIONS.build({"name": "noise", "sigma": m.w}, "dirac.reg")
                game_noise.append(m.w)
                ks.append(k_noise)
            else:
                game_noise.append(None)
                ks.append(1)
            if m.reg == "consensus":
                consensus[i] = m.w
            if clipped:
                clip_games.append(i)
            sim.append(m.mode == "simultaneous")

        self.k = torch.tensor(ks)
        self.gid = torch.repeat_interleave(torch.arange(n), self.k)
        offsets = torch.cumsum(self.k, 0) - self.k
        self.n_samples = int(self.k.sum())

        def samples_of(games: list[int]) -> Tensor:
            if not games:
                return torch.zeros(0, dtype=torch.long)
            return torch.cat([torch.arange(int(offsets[g]), int(offsets[g] + self.k[g])) for g in games])

        self.consensus = consensus
        self.has_consensus = bool((consensus > 0).any())
        cons_games = set(int(i) for i in torch.nonzero(consensus > 0).flatten())

        def blocks_of(assign: list[list[Any]], objs: dict, is_penalty: bool) -> list[_Block]:
            groups: dict[tuple, list[int]] = {}
            for i, keys in enumerate(assign):
                for key in keys:
                    groups.setdefault((key, ks[i]), []).append(i)
            return [_Block(objs[key], _as_slice(samples_of(games)), len(games), bool(cons_games & set(games)),
                           is_penalty) for (key, _), games in groups.items()]

        self.loss_blocks = blocks_of([[name] for name in game_loss], losses, False)
        self.pen_blocks = blocks_of(game_pens, penalties, True)
        self.noise_groups: list[tuple[InstanceNoise, Tensor]] = []
        for sigma, reg in noises.items():
            games = [i for i, s in enumerate(game_noise) if s == sigma]
            self.noise_groups.append((reg, samples_of(games)))
        self.points = points
        self.clip_idx = torch.tensor(clip_games, dtype=torch.long)
        self.sim = torch.tensor(sim)
        self.all_sim = bool(self.sim.all())
        self.penalties = penalties

    # ---------------------------------------------------------------------------------------------------------
    def _inputs(self, theta: Tensor, step: int) -> tuple[Tensor, Tensor]:
        """Real and generated samples of every game, with instance noise on both where the game has it."""
        real = torch.zeros(self.n_samples, 1, dtype=self.dtype)
        fake = theta[self.gid].unsqueeze(1)
        for reg, sidx in self.noise_groups:
            if self.expected_noise:
                eps = (reg.sigma_at(step) * self.points).repeat(len(sidx) // len(self.points)).unsqueeze(1)
                real = real.index_put((sidx,), real[sidx] + eps)
                fake = fake.index_put((sidx,), fake[sidx] + eps)
            else:
                real = real.index_put((sidx,), _antithetic(reg, real[sidx], self.k_noise, step))
                fake = fake.index_put((sidx,), _antithetic(reg, fake[sidx], self.k_noise, step))
        return real, fake

    def grads(self, theta: Tensor, psi: Tensor, step: int, *, want_g: bool, want_d: bool,
              graph: bool = False) -> tuple[Tensor | None, Tensor | None]:
        """(dL_G/dtheta, dL_D/dpsi) per game, consensus terms included (the field is v = -grads).

        graph=True: theta/psi are leaves the caller differentiates through (Jacobian); otherwise they are
        detached here and plain tensors come back.
        """
        if not graph:
            theta = theta.detach().requires_grad_(True)
            psi = psi.detach().requires_grad_(True)
        cons = self.has_consensus
        need_g = want_g or cons
        need_d = want_d or cons
        real, fake = self._inputs(theta, step)
        psi_s = psi[self.gid].unsqueeze(1)
        real_out, fake_out = psi_s * real, psi_s * fake
        g_total = d_total = None
        for b in self.loss_blocks:
            r, f = real_out[b.sidx], fake_out[b.sidx]
            if need_g:
                term = b.n_games * b.obj.g_loss(f, r if b.obj.needs_real_in_g else None)
                g_total = term if g_total is None else g_total + term
            if need_d and (want_d or b.has_consensus):
                term = b.n_games * b.obj.d_loss(r, f)
                d_total = term if d_total is None else d_total + term
        if need_d:
            for b in self.pen_blocks:
                # In a G-only evaluation only the penalties of consensus games are needed (their field). This
                # also keeps RLC's moving averages to one update per D step.
                if not (want_d or b.has_consensus):
                    continue
                p_s = psi_s[b.sidx]
                ctx = DStepContext(critic=lambda x, p=p_s: p * x, real=real[b.sidx], fake=fake[b.sidx],
                                   real_out=real_out[b.sidx], fake_out=fake_out[b.sidx])
                pen = b.obj.penalty(ctx)
                if pen is not None:
                    d_total = d_total + b.n_games * b.obj.weight * pen
        create = graph or cons
        g_theta = g_psi = None
        if need_g:
            (g_theta,) = torch.autograd.grad(g_total, theta, create_graph=create, retain_graph=True)
        if need_d:
            (g_psi,) = torch.autograd.grad(d_total, psi, create_graph=create, retain_graph=create)
        if cons:
            # Consensus optimisation (Mescheder et al. 2017): both players add gamma/2 |v|^2, v = -(g_theta, g_psi).
            c = 0.5 * (self.consensus * (g_theta.square() + g_psi.square())).sum()
            c_theta, c_psi = torch.autograd.grad(c, (theta, psi), create_graph=graph)
            g_theta, g_psi = g_theta + c_theta, g_psi + c_psi
        if not graph:
            g_theta = None if g_theta is None or not want_g else g_theta.detach()
            g_psi = None if g_psi is None or not want_d else g_psi.detach()
        return g_theta, g_psi

    def clip_(self, psi: Tensor) -> Tensor:
        """WGAN weight clipping of the clipped games' psi, by gankit's WeightClip regularizer."""
        if len(self.clip_idx) == 0:
            return psi
        view = _ClipView(psi[self.clip_idx].clone())
        self.clipper.after_d_step(view)  # type: ignore[arg-type]
        return psi.index_put((self.clip_idx,), view.psi)


def _as_slice(idx: Tensor) -> Tensor | slice:
    """A run of consecutive indices as a slice (a view: cheaper forward and backward than a gather)."""
    if len(idx) and bool((idx == torch.arange(int(idx[0]), int(idx[0]) + len(idx))).all()):
        return slice(int(idx[0]), int(idx[0]) + len(idx))
    return idx


def _antithetic(reg: InstanceNoise, x: Tensor, k: int, step: int) -> Tensor:
    """Instance noise by gankit's augmentation ``noise`` on the first half of each game's samples, mirrored on the second
    half (antithetic variates: x + e and x - e). Every sample is still x + N(0, sigma^2), but the noise of the
    sample mean cancels to first order, so a game's K samples estimate the expected gradient far better."""
    pairs = x.view(-1, 2, k // 2, *x.shape[1:])  # (games, 2, k/2, ...): samples are grouped by game
    noisy = reg(pairs[:, 0], step)
    return torch.stack([noisy, 2 * pairs[:, 1] - noisy], dim=1).view_as(x)


def _standard_points(k: int, dtype: torch.dtype) -> Tensor:
    q = (torch.arange(k, dtype=torch.float64) + 0.5) / k
    z = math.sqrt(2.0) * torch.erfinv(2 * q - 1)
    z = z - z.mean()
    return (z / z.square().mean().sqrt()).to(dtype)


# --------------------------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------------------------


def simulate(methods: Sequence[Method], *, n_d: int, lr: float, steps: int, start: Sequence[float],
             clip: float, seed: int, noise_samples: int) -> np.ndarray:
    """Run every method's update rule from ``start``; returns the trajectories, shape (steps + 1, games, 2).

    One iteration (the notebook's alternating order: G first):
      g    = dL_G/dtheta at (theta_k, psi_k);  theta_{k+1} = theta_k - h g
      D sees theta_D = theta_k (simultaneous) or theta_{k+1} (alternating), and takes n_d steps
      psi <- clip(psi - h dL_D/dpsi(theta_D, psi)).
    With n_d = 1, simultaneous is (theta, psi) <- (theta, psi) + h v(theta, psi).
    """
    # Consensus needs second-order graphs for every game of its batch: run those games as a batch of their own.
    parts = [[i for i, m in enumerate(methods) if (m.reg == "consensus") == cons] for cons in (False, True)]
    traj = np.empty((steps + 1, len(methods), 2))
    with torch.random.fork_rng(devices=[]), _single_thread():
        torch.manual_seed(seed)
        for idx in parts:
            if idx:
                traj[:, idx] = _simulate_batch([methods[i] for i in idx], n_d=n_d, lr=lr, steps=steps,
                                               start=start, clip=clip, noise_samples=noise_samples)
    return traj


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """The tensors are tiny: intra-op threads only add overhead (and stall badly when the cores are busy)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _simulate_batch(methods: Sequence[Method], *, n_d: int, lr: float, steps: int, start: Sequence[float],
                    clip: float, noise_samples: int) -> np.ndarray:
    # Games ordered by (noise?, loss, reg) so that most blocks are contiguous slices; results in the given order.
    order = sorted(range(len(methods)), key=lambda i: (methods[i].reg == "noise", methods[i].loss, methods[i].reg,
                                                       methods[i].mode))
    traj = _simulate_sorted([methods[i] for i in order], n_d=n_d, lr=lr, steps=steps, start=start, clip=clip,
                            noise_samples=noise_samples)
    out = np.empty_like(traj)
    out[:, order] = traj
    return out


def _simulate_sorted(methods: Sequence[Method], *, n_d: int, lr: float, steps: int, start: Sequence[float],
                     clip: float, noise_samples: int) -> np.ndarray:
    batch = _Batch(methods, clip=clip, noise_samples=noise_samples, expected_noise=False)
    n = batch.n
    theta = torch.full((n,), float(start[0]), dtype=torch.float64)
    psi = batch.clip_(torch.full((n,), float(start[1]), dtype=torch.float64))
    traj = torch.empty(steps + 1, n, 2, dtype=torch.float64)
    traj[0, :, 0], traj[0, :, 1] = theta, psi
    sim = batch.sim
    for k in range(steps):
        if batch.all_sim:
            g_theta, g_psi = batch.grads(theta, psi, k, want_g=True, want_d=True)
            theta_new = theta - lr * g_theta
            psi = batch.clip_(psi - lr * g_psi)
            for _ in range(n_d - 1):
                _, g_psi = batch.grads(theta, psi, k, want_g=False, want_d=True)
                psi = batch.clip_(psi - lr * g_psi)
        else:
            g_theta, _ = batch.grads(theta, psi, k, want_g=True, want_d=False)
            theta_new = theta - lr * g_theta
            theta_d = torch.where(sim, theta, theta_new)
            for _ in range(n_d):
                _, g_psi = batch.grads(theta_d, psi, k, want_g=False, want_d=True)
                psi = batch.clip_(psi - lr * g_psi)
        theta = theta_new
        traj[k + 1, :, 0], traj[k + 1, :, 1] = theta, psi
    return traj.numpy()


# --------------------------------------------------------------------------------------------------------------
# Linearisation at the equilibrium
# --------------------------------------------------------------------------------------------------------------


def jacobians(methods: Sequence[Method], *, clip: float = DEFAULTS["clip"]) -> np.ndarray:
    """Jacobian of each method's gradient vector field at (0, 0), by autograd; shape (games, 2, 2).

    v = (-dL_G/dtheta, -dL_D/dpsi) (consensus terms included). The games are independent, so
    d(sum_i v_i)/d(theta, psi) gives row one of every game's Jacobian in one backward pass.
    Instance noise enters in expectation (standardised points, exact at the equilibrium).
    """
    batch = _Batch(methods, clip=clip, noise_samples=1, expected_noise=True)
    theta = torch.zeros(batch.n, dtype=torch.float64, requires_grad=True)
    psi = torch.zeros(batch.n, dtype=torch.float64, requires_grad=True)
    g_theta, g_psi = batch.grads(theta, psi, 0, want_g=True, want_d=True, graph=True)
    jac = torch.zeros(batch.n, 2, 2, dtype=torch.float64)
    for row, v in enumerate((-g_theta, -g_psi)):
        d_theta, d_psi = torch.autograd.grad(v.sum(), (theta, psi), retain_graph=True, allow_unused=True)
        jac[:, row, 0] = 0 if d_theta is None else d_theta.detach()
        jac[:, row, 1] = 0 if d_psi is None else d_psi.detach()
    return jac.numpy()


def update_matrix(jac: np.ndarray, *, mode: str, lr: float, n_d: int) -> np.ndarray:
    """Linearisation of one iteration of ``simulate`` at the equilibrium, from the field's Jacobian J.

    G step A_G = [[1 + h J00, h J01], [0, 1]], D step A_D = [[1, 0], [h J10, 1 + h J11]];
    simultaneous: theta row of I + hJ, psi row of A_D^n_d (D steps against theta_k); n_d = 1 gives I + hJ;
    alternating: A_D^n_d A_G. (Clipping is inactive at psi = 0.)
    """
    h = lr
    a_g = np.array([[1 + h * jac[0, 0], h * jac[0, 1]], [0.0, 1.0]])
    a_d = np.array([[1.0, 0.0], [h * jac[1, 0], 1 + h * jac[1, 1]]])
    a_dn = np.linalg.matrix_power(a_d, n_d)
    if mode == "simultaneous":
        return np.array([a_g[0], a_dn[1]])
    return a_dn @ a_g


def vector_field(method: Method, thetas: np.ndarray, psis: np.ndarray, *, clip: float = DEFAULTS["clip"]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The gradient vector field v(theta, psi) of ``method`` on a grid (instance noise in expectation)."""
    return vector_fields([method], thetas, psis, clip=clip)[0]


def vector_fields(methods: Sequence[Method], thetas: np.ndarray, psis: np.ndarray, *,
                  clip: float = DEFAULTS["clip"]) -> list[tuple[np.ndarray, np.ndarray]]:
    tt, pp = np.meshgrid(np.asarray(thetas, dtype=float), np.asarray(psis, dtype=float))
    m = tt.size
    games = [mt for mt in methods for _ in range(m)]
    batch = _Batch(games, clip=clip, noise_samples=1, expected_noise=True)
    theta = torch.tensor(np.tile(tt.ravel(), len(methods)), dtype=torch.float64)
    psi = torch.tensor(np.tile(pp.ravel(), len(methods)), dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        g_theta, g_psi = batch.grads(theta, psi, 0, want_g=True, want_d=True)
    u = (-g_theta).numpy().reshape(len(methods), *tt.shape)
    v = (-g_psi).numpy().reshape(len(methods), *tt.shape)
    return [(u[i], v[i]) for i in range(len(methods))]


# --------------------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------------------


@dataclass
class DiracResult:
    """One method's run: trajectory, linearisation at the equilibrium and verdict."""

    loss: str
    reg: str
    mode: str
    weight: float
    n_d: int
    lr: float
    steps: int
    start: tuple[float, float]
    trajectory: np.ndarray = field(repr=False)   # (steps + 1, 2): theta, psi
    jacobian: np.ndarray = field(repr=False)     # (2, 2), of the gradient vector field at (0, 0)
    update: np.ndarray = field(repr=False)       # (2, 2), of one iteration at (0, 0)
    tol: float = DEFAULTS["tol"]
    tail: float = DEFAULTS["tail"]
    differentiable: bool = True

    @property
    def distances(self) -> np.ndarray:
        return np.hypot(self.trajectory[:, 0], self.trajectory[:, 1])

    @property
    def theta(self) -> float:
        return float(self.trajectory[-1, 0])

    @property
    def psi(self) -> float:
        return float(self.trajectory[-1, 1])

    @property
    def distance(self) -> float:
        return float(self.distances[-1])

    @property
    def eigenvalues(self) -> np.ndarray:
        ev = np.linalg.eigvals(self.jacobian)
        return ev[np.lexsort((ev.imag, ev.real))]

    @property
    def spectral_radius(self) -> float:
        return float(np.max(np.abs(np.linalg.eigvals(self.update))))

    @property
    def converged(self) -> bool:
        d = self.distances
        tail = d[len(d) - 1 - max(1, int(round(self.tail * (len(d) - 1)))):]
        return bool(np.all(np.isfinite(tail)) and tail.max() < self.tol)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss, "reg": self.reg, "mode": self.mode, "weight": self.weight, "n_d": self.n_d,
            "lr": self.lr, "steps": self.steps, "start": list(self.start),
            "theta": _finite(self.theta), "psi": _finite(self.psi), "distance": _finite(self.distance),
            "eigenvalues": [[_finite(z.real), _finite(z.imag)] for z in self.eigenvalues],
            "spectral_radius": _finite(self.spectral_radius), "converged": self.converged,
            "differentiable": self.differentiable,
        }


def _finite(x: float) -> float | None:
    """JSON has no NaN/inf: a diverged value is written as null."""
    x = float(x)
    return x if math.isfinite(x) else None


def run_methods(methods: Sequence[Method], *, n_d: int = DEFAULTS["n_d"], lr: float = DEFAULTS["lr"],
                steps: int = DEFAULTS["steps"], start: Sequence[float] = DEFAULTS["start"],
                clip: float = DEFAULTS["clip"], tol: float = DEFAULTS["tol"], tail: float = DEFAULTS["tail"],
                seed: int = DEFAULTS["seed"], noise_samples: int = DEFAULTS["noise_samples"]
                ) -> list[DiracResult]:
    """Simulate and linearise many methods at once (one batch); results in the order given."""
    for m in methods:
        validate(loss=m.loss, reg=m.reg, mode=m.mode, weight=m.weight)
    validate(n_d=n_d, lr=lr, steps=steps, start=start, clip=clip, tol=tol)
    if not 0 < tail <= 1:
        raise GankitError(f"tail must be in (0, 1], got {tail}")
    if noise_samples < 2 or noise_samples % 2:
        raise GankitError(f"noise_samples must be even and >= 2 (antithetic pairs), got {noise_samples}")
    if not methods:
        return []
    start_t = (float(start[0]), float(start[1]))
    traj = simulate(methods, n_d=n_d, lr=lr, steps=steps, start=start_t, clip=clip, seed=seed,
                    noise_samples=noise_samples)
    jac = jacobians(methods, clip=clip)
    results = []
    for i, m in enumerate(methods):
        results.append(DiracResult(
            loss=m.loss, reg=m.reg, mode=m.mode, weight=m.w, n_d=n_d, lr=lr, steps=steps, start=start_t,
            trajectory=traj[:, i, :].copy(), jacobian=jac[i],
            update=update_matrix(jac[i], mode=m.mode, lr=lr, n_d=n_d), tol=tol, tail=tail,
            differentiable=not uses_grad_norm(m)))
    return results


def run_method(loss: str = "gan", reg: str = "none", *, mode: str = DEFAULTS["mode"], weight: float | None = None,
               **kwargs: Any) -> DiracResult:
    """One method; keyword arguments as ``run_methods`` (n_d, lr, steps, start, clip, tol, tail, seed,
    noise_samples). ``weight`` None: the regularizer's default (DEFAULT_WEIGHTS)."""
    return run_methods([Method(loss, reg, mode, weight)], **kwargs)[0]


def grid_methods(losses: Sequence[str] = LOSS_NAMES, regs: Sequence[str] = REG_NAMES,
                 modes: Sequence[str] = MODES, weights: dict[str, float] | None = None) -> list[Method]:
    weights = weights or {}
    return [Method(lo, re, mo, weights.get(re)) for lo in losses for re in regs for mo in modes
            if not unsupported(lo, re)]


def unsupported(loss: str, reg: str) -> str | None:
    """Why the lab cannot run a loss with a regularizer setting, or None.

    Instance noise with a relativistic loss: the lab takes the expectation over the noise with the same 16 points
    for the real and the generated sample, so a loss of the pair's difference (RpGAN) would see the noise cancel
    instead of an independent draw on each side; its Jacobian would be wrong."""
    if reg == "noise" and loss in ("rpgan", "ragan"):
        return (f"--reg noise with --loss {loss}: the lab's expected instance noise draws the same points for real "
                "and generated samples, which a relativistic loss compares; choose another regularizer")
    return None


def run_grid(losses: Sequence[str] = LOSS_NAMES, regs: Sequence[str] = REG_NAMES, modes: Sequence[str] = MODES,
             *, weights: dict[str, float] | None = None, **kwargs: Any) -> list[DiracResult]:
    """Every loss x regularizer x update rule the lab supports (9 x 8 x 2 less the 4 relativistic-loss + noise
    cells = 140 by default) as one batch."""
    return run_methods(grid_methods(losses, regs, modes, weights), **kwargs)


# --------------------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------------------

TABLE_COLUMNS = ("loss", "reg", "weight", "mode", "theta", "psi", "distance", "eigenvalues", "spectral_radius",
                 "converged")


def _fmt(x: float, digits: int = 3) -> str:
    if not math.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}f}"


def format_eigenvalues(ev: np.ndarray) -> str:
    parts = []
    for z in ev:
        if abs(z.imag) < 1e-12:
            parts.append(_fmt(z.real))
        else:
            parts.append(f"{_fmt(z.real)}{'+' if z.imag >= 0 else '-'}{_fmt(abs(z.imag))}i")
    return ", ".join(parts)


def table_rows(results: Sequence[DiracResult]) -> list[list[str]]:
    rows = []
    for r in results:
        ev = format_eigenvalues(r.eigenvalues) + ("" if r.differentiable else " *")
        rows.append([r.loss, r.reg, _fmt(r.weight, 2), r.mode, _fmt(r.theta), _fmt(r.psi), _fmt(r.distance), ev,
                     _fmt(r.spectral_radius), "yes" if r.converged else "no"])
    return rows


def markdown_table(results: Sequence[DiracResult]) -> str:
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    if any(not r.differentiable for r in results):
        lines.append("")
        lines.append("\\* |dD/dx| penalty (gp, dragan): the field is not differentiable at psi = 0; the values "
                     "are those of gankit's eps-smoothed norm (see docs/dirac.md).")
    return "\n".join(lines) + "\n"


def verdict_matrix(results: Sequence[DiracResult]) -> str:
    """Compact Markdown: rows losses, columns regularizers, cell = verdict per update rule (sim/alt)."""
    losses = list(dict.fromkeys(r.loss for r in results))
    regs = list(dict.fromkeys(r.reg for r in results))
    modes = list(dict.fromkeys(r.mode for r in results))
    cell: dict[tuple[str, str], list[str]] = {}
    for r in results:
        cell.setdefault((r.loss, r.reg), []).append(("yes" if r.converged else "no"))
    head = "| loss \\ reg (" + " / ".join(m[:3] for m in modes) + ") | " + " | ".join(regs) + " |"
    lines = [head, "|" + "---|" * (len(regs) + 1)]
    for lo in losses:
        lines.append(f"| {lo} | " + " | ".join(" / ".join(cell.get((lo, re), ["-"])) for re in regs) + " |")
    return "\n".join(lines) + "\n"
