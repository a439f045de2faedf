"""The base of every augmentation, and the adaptive probability (ADA heuristic) that any of them can use."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.distributed.collectives import all_mean


class Augmentation(nn.Module):
    """Maps a batch D is about to see to an augmented batch of the same shape, differentiably (G's gradient
    passes through it). State that must survive a resume (the adaptive p) lives in buffers."""

    #: Whether the augmentation draws random numbers (compat: studies of such configs are not bit-exact).
    random: bool = True
    #: The data kinds it applies to ("image", "toy").
    kinds: tuple[str, ...] = ("image", "toy")

    @property
    def stateful(self) -> bool:
        """State that adapts during training (a study cannot share it between stacked seeds, and a schedule may
        not set what it adapts)."""
        return False

    def __init__(self) -> None:
        super().__init__()
        # The probability p with which it is applied per sample, when it has one (a schedule may set p). An instance
        # attribute, not a class one: nn.Module would never find a submodule assigned later behind a class attribute.
        self.probability: AdaptiveProbability | None = None

    def forward(self, x: Tensor, step: int) -> Tensor:
        raise NotImplementedError

    def observe(self, real_logits: Tensor) -> None:
        """D's outputs on the real batch of a D step (only adaptive augmentations use them)."""


class AdaptiveProbability(nn.Module):
    """The probability p with which an augmentation is applied to each sample, fixed or adapted by the ADA
    heuristic (Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data", sec. 3):

        r_t = E[sign(D(x_real))]   over the real batches of the last ``interval`` D steps,
        p  <- clamp(p + sign(r_t - target) * interval * batch / speed_images, 0, 1),

    so that p can move from 0 to 1 in ``speed_images`` real images (500k in the paper; adjusted every 4 D steps).
    Everything stays on the device: no host sync per step. ``target: null`` keeps p fixed (a schedule may still
    set it, through ``value``).
    """

    def __init__(self, p: float, target: float | None, interval: int, speed_images: int) -> None:
        super().__init__()
        self.target, self.interval, self.speed_images = target, interval, speed_images
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("sign_sum", torch.zeros(()))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))  # D steps since the last adjustment
        self.register_buffer("images", torch.zeros((), dtype=torch.long))  # real images since the last adjustment

    @property
    def value(self) -> float:
        return float(self.p)

    @value.setter
    def value(self, p: float) -> None:
        self.p.fill_(p)

    def observe(self, real_logits: Tensor) -> None:
        if self.target is None:
            return
        logits = real_logits.detach().float().reshape(len(real_logits), -1)[:, 0]
        # Data-parallel runs: every rank sees the global mean sign, so p stays equal on every rank.
        self.sign_sum += all_mean(torch.sign(logits).mean())
        self.seen += 1
        self.images += len(logits)
        # Adjust on every interval-th D step; torch.where keeps the decision on the device (no host sync).
        due = self.seen % self.interval == 0
        r_t = self.sign_sum / self.seen.clamp(min=1)
        moved = (self.p + torch.sign(r_t - self.target) * self.images.float() / self.speed_images).clamp(0.0, 1.0)
        self.p.copy_(torch.where(due, moved, self.p))
        for counter in (self.sign_sum, self.seen, self.images):
            counter.copy_(torch.where(due, torch.zeros_like(counter), counter))

    def mask(self, x: Tensor) -> Tensor:
        """One Bernoulli(p) draw per sample, shaped to broadcast over the sample's dimensions."""
        keep = torch.rand(x.shape[0], device=x.device) < self.p
        return keep.view(-1, *([1] * (x.dim() - 1)))

    def extra_repr(self) -> str:
        return f"target={self.target}, interval={self.interval}, speed_images={self.speed_images}"
