"""Everything a config describes, built and on its device: data, G, D, loss, regularizers, optimisers, EMA.

The training loop (train.py), sampling and evaluation (run.py) all start from here, so a method is fully
described by its config and there is one place that turns names into objects.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gankit.config import Config
from gankit.data import InMemoryData
from gankit.data.stream import StreamingImageData
from gankit.errors import ConfigError, GankitError
from gankit.optim import EMA, linear_decay
from gankit.run import load_checkpoint
from gankit.registry import DATASETS, LOSSES, MODELS, OPTIMIZERS, REGULARIZERS, load_builtins
from gankit.regularizers import Regularizer


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device '{name}' is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device is '{name}' but no CUDA device is available; use auto or cpu")
    return device


Dataset = InMemoryData | StreamingImageData


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:  # private helpers; absent on some builds, where fp32 is the safe answer
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return torch.bfloat16 if name == "bf16" else torch.float32


def build_data(cfg: Config, device: torch.device) -> Dataset:
    return DATASETS.build(cfg.data, "data").to(device)


def build_generator(cfg: Config, data_shape: tuple[int, ...], device: torch.device) -> nn.Module:
    return MODELS.build(cfg.model.generator, "model.generator", "generator", data_shape, cfg.model.z_dim).to(device)


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class Experiment:
    """The built objects of one config. ``state_dict`` is everything a resume needs except the RNG."""

    def __init__(self, cfg: Config) -> None:
        load_builtins()
        self.cfg = cfg
        self.device = resolve_device(cfg.train.device)
        self.compute_dtype = resolve_precision(cfg.train.precision, self.device)
        if self.device.type == "cuda":
            # TF32 for fp32 matmuls/convs (fp32 runs only) and cuDNN autotuning: every batch has the same shape.
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(cfg.train.seed)  # model initialisation and the training noise both follow the seed
        self.data = build_data(cfg, self.device)
        self.generator = build_generator(cfg, self.data.shape, self.device)
        self.discriminator = MODELS.build(
            cfg.model.discriminator, "model.discriminator", "discriminator", self.data.shape, cfg.model.z_dim
        ).to(self.device)
        self.loss = LOSSES.build(cfg.loss, "loss")
        self.regularizers: list[Regularizer] = [
            REGULARIZERS.build(spec, f"regularizers.{i}").to(self.device) for i, spec in enumerate(cfg.regularizers)
        ]
        names = [spec["name"] for spec in cfg.regularizers]
        self.regularizer_names = [n if names.count(n) == 1 else f"{n}{i}" for i, n in enumerate(names)]
        self.opt_g = OPTIMIZERS.build(cfg.optim.generator, "optim.generator", self.generator.parameters())
        self.opt_d = OPTIMIZERS.build(cfg.optim.discriminator, "optim.discriminator", self.discriminator.parameters())
        self.schedulers = (
            [linear_decay(self.opt_g, cfg.train.steps), linear_decay(self.opt_d, cfg.train.steps)]
            if cfg.optim.lr_decay == "linear" else []
        )
        self.ema = EMA(self.generator, cfg.train.ema.decay) if cfg.train.ema.enabled else None
        # One D forward on real and fake together halves the launches, but batch norm would mix their statistics.
        self.joint_forward = not has_batch_norm(self.discriminator)
        self.channels_last = cfg.train.channels_last and len(self.data.shape) == 3
        if self.channels_last and cfg.train.compile:
            # Measured on an H100 (torch 2.11): inductor fails on channels_last transposed convolutions with a
            # stride assertion, and compile alone was not faster than channels_last alone.
            warnings.warn("train.compile is on, so train.channels_last is not applied (inductor fails on "
                          "channels_last transposed convolutions)")
            self.channels_last = False
        if self.channels_last:
            for model in (self.generator, self.discriminator):
                model.to(memory_format=torch.channels_last)
        # The training forwards; penalties call the eager D (a compiled graph has no double backward).
        self.g_forward: nn.Module = self.generator
        self.d_forward: nn.Module = self.discriminator
        if cfg.train.compile:
            self.g_forward = torch.compile(self.generator)
            self.d_forward = torch.compile(self.discriminator)

    def autocast(self) -> torch.autocast:
        """The region in which forward passes run: bf16 autocast when the precision says so."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.compute_dtype == torch.bfloat16)

    @property
    def sampler(self) -> nn.Module:
        """The generator used for samples and metrics: the EMA copy when enabled."""
        return self.ema.model if self.ema is not None else self.generator

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema": self.ema.model.state_dict() if self.ema is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "schedulers": [s.state_dict() for s in self.schedulers],
            "regularizers": [r.state_dict() for r in self.regularizers],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        if self.ema is not None:
            # A run that enables EMA only on resume starts its average from the current weights.
            self.ema.model.load_state_dict(state["ema"] if state["ema"] is not None else state["generator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for sched, sd in zip(self.schedulers, state["schedulers"]):
            sched.load_state_dict(sd)
        for reg, sd in zip(self.regularizers, state["regularizers"]):
            reg.load_state_dict(sd)


def restore(cfg: Config, checkpoint: Path) -> tuple[Experiment, dict[str, Any]]:
    """Build ``cfg`` and load a checkpoint into it; a checkpoint of another config is a one-line error."""
    state = load_checkpoint(checkpoint)
    exp = Experiment(cfg)
    try:
        exp.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise GankitError(f"checkpoint {checkpoint} does not match the run's config.yaml: {reason}") from None
    return exp, state
