"""Everything a config describes, built and on its device: data, G, D, loss, regularizers, optimisers, EMA.

The training loop (train.py), sampling and evaluation (run.py) all start from here, so a method is fully
described by its config and there is one place that turns names into objects.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from gankit import compat, distributed
from gankit.batch_layout import RowLayout
from gankit.config import Config
from gankit.data import InMemoryData
from gankit.data.base import class_frequencies
from gankit.data.stream import StreamingImageData
from gankit.domain import domain_of
from gankit.distributed.process import rank_device
from gankit.distributed.sync_batch_norm import convert_sync_batch_norm
from gankit.errors import ConfigError, GankitError
from gankit.models.packing import PackedDiscriminator, packed_shape
from gankit.objective import Objective, Player, Term
from gankit.optim import EMA, linear_decay
from gankit.precision import NAMES, measured_cpu_precision, resolve_precision
from gankit.prior import CodeSpec, Prior
from gankit.run import RunDir, load_checkpoint
from gankit.registry import (AUGMENTATIONS, DATASETS, LOSSES, MODELS, OPTIMIZERS, REGULARIZERS, SCHEDULES, TERMS,
                             load_builtins)
from gankit.augment import Augmentation
from gankit.regularizers import Regularizer
from gankit.schedules import Schedules, setter


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


def build_data(cfg: Config, device: torch.device) -> Dataset:
    return DATASETS.build(cfg.data, "data").to(device)


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def attach_q_head(cfg: Config, prior: Prior, discriminator: nn.Module) -> None:
    """Give D the Q head it asks for (model.discriminator.q_head: true), sized by the prior's codes."""
    if cfg.model.discriminator.get("q_head", False):
        discriminator.attach_q_head(prior.codes)


class Experiment:
    """The built objects of one config. ``state_dict`` is everything a resume needs except the RNG.

    ``networks`` holds every network by name: "generator", "discriminator" and the extra networks that objective
    terms need (``model.networks``). Each has its own optimiser (``optimizers``) and is trained in the phase of
    its player (``players``: "discriminator" networks step with D, "generator" networks with G).
    """

    def __init__(self, cfg: Config) -> None:
        load_builtins()
        self.cfg = cfg
        # Under a launcher (torchrun, accelerate, --nproc) the first Experiment joins the process group; each
        # rank builds the same networks from the same seed, holds the data on its own device and draws its own
        # batches (Trainer gives each rank its own noise stream after this constructor).
        distributed.setup(cfg.train.device, cfg.train.dist_timeout)
        distributed.check_same(cfg.to_dict(), "the config")
        self.device = rank_device(resolve_device(cfg.train.device))
        if self.device.type == "cuda":
            # TF32 for fp32 matmuls/convs (fp32 runs only) and cuDNN autotuning: every batch has the same shape.
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(cfg.train.seed)  # model initialisation and the training noise both follow the seed
        with distributed.machine_main_first():  # a first-use download happens once per machine
            self.data = build_data(cfg, self.device)
        self.domain = domain_of(self.data)  # what differs between points and images (gankit/domain.py)
        self.compute_dtype = resolve_precision(cfg.train.precision, self.device, self.data.kind)
        m = cfg.model
        self.n_classes = compat.conditioning(cfg, self.data.n_classes)
        compat.before_models(cfg, self.n_classes)
        probs = class_frequencies(self.data.labels, self.n_classes) if self.n_classes and m.class_dist == "data" else None
        c = m.codes
        self.prior = Prior(m.z_dim, m.z_dist, self.n_classes, probs,
                           CodeSpec(tuple(c.categorical), c.continuous, c.continuous_dist))
        shape = self.data.shape

        def build(spec: dict[str, Any], where: str, role: str, data_shape: tuple[int, ...] = shape) -> nn.Module:
            return MODELS.build(spec, where, role, data_shape, self.prior.dim, self.n_classes).to(self.device)

        discriminator = build(m.discriminator, "model.discriminator", "discriminator", packed_shape(shape, m.pack))
        self.networks: dict[str, nn.Module] = {
            "generator": build(m.generator, "model.generator", "generator"),
            "discriminator": PackedDiscriminator(discriminator, m.pack) if m.pack > 1 else discriminator,
        }
        self.players: dict[str, Player] = {"generator": "generator", "discriminator": "discriminator"}
        attach_q_head(cfg, self.prior, self.networks["discriminator"])

        terms: list[Term] = [TERMS.build(spec, f"terms.{i}") for i, spec in enumerate(cfg.terms)]
        term_names = [spec["name"] for spec in cfg.terms]
        for i, term in enumerate(terms):
            for name, need in term.needs().items():
                if name in self.networks:
                    raise ConfigError(f"terms.{i}: network name '{name}' is taken; choose another")
                if name not in m.networks:
                    raise ConfigError(f"terms.{i} ({term_names[i]}) needs model.networks.{name}, which is not given")
                self.networks[name] = build(m.networks[name], f"model.networks.{name}", need.role)
                self.players[name] = need.player
        unused = sorted(set(m.networks) - set(self.networks))
        if unused:
            raise ConfigError(f"model.networks.{unused[0]} is not used by any term")
        for i, term in enumerate(terms):
            term.check(self.networks, self.n_classes, f"terms.{i}")
        self.terms = [t.to(self.device) for t in terms]
        self.objective = Objective(LOSSES.build(cfg.loss, "loss"), self.terms, unique_names(term_names))

        self.regularizers: list[Regularizer] = [
            REGULARIZERS.build(spec, f"regularizers.{i}").to(self.device) for i, spec in enumerate(cfg.regularizers)
        ]
        self.regularizer_names = unique_names([spec["name"] for spec in cfg.regularizers])
        self.augmentations: list[Augmentation] = []
        for i, spec in enumerate(cfg.augment):
            self.augmentations.append(AUGMENTATIONS.build(spec, f"augment.{i}").to(self.device))

        if cfg.train.sync_batch_norm and distributed.world_size() > 1:
            for net in self.networks.values():  # same parameter tensors: optimisers and EMA are built below
                convert_sync_batch_norm(net)
        # Equal on every rank already (same seed); rank 0's copy makes that exact, as DDP does when it wraps a module.
        distributed.broadcast_state(self.networks.values())

        extra_optims = sorted(set(cfg.optim.networks) - (set(self.networks) - {"generator", "discriminator"}))
        if extra_optims:
            raise ConfigError(f"optim.networks.{extra_optims[0]} names no extra network of model.networks (G's and "
                              "D's optimisers are optim.generator and optim.discriminator)")
        # Separate lazy-regularization steps take (k + 1) D steps per k: D's lr and betas shrink by k / (k + 1).
        lazy = compat.lazy_interval(self)
        self.optim_ratio = {"discriminator": lazy / (lazy + 1)} if lazy else {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        for name, net in self.networks.items():
            self.optimizers[name] = self.build_optimizer(name, net.parameters())
        self.schedulers = self.build_schedulers()
        self.schedules = self.build_schedules()
        compat.built(self)  # every rule about combining the built parts (gankit/compat.py)
        self.ema = EMA(self.generator, cfg.train.ema.decay) if cfg.train.ema.enabled else None
        # One D forward on real and fake together halves the launches, but batch norm would mix their statistics.
        # Packs must not mix real and generated samples: packed runs score them separately.
        self.joint_forward = not has_batch_norm(self.discriminator) and m.pack == 1
        self.batch_layout = RowLayout()  # how that call joins the two batches (a seed stack joins per seed)
        self.channels_last = cfg.train.channels_last and len(shape) == 3
        if self.channels_last and cfg.train.compile:
            # Measured on an H100 (torch 2.11): inductor fails on channels_last transposed convolutions with a
            # stride assertion, and compile alone was not faster than channels_last alone.
            warnings.warn("train.compile is on, so train.channels_last is not applied (inductor fails on "
                          "channels_last transposed convolutions)")
            self.channels_last = False
        if self.channels_last:
            for model in self.networks.values():
                model.to(memory_format=torch.channels_last)
            if self.ema is not None:
                self.ema.model.to(memory_format=torch.channels_last)
        if self.compute_dtype is None:  # auto for images on a CPU: timed on this machine (gankit/precision.py)
            self.compute_dtype = distributed.on_main(lambda: measured_cpu_precision(self))
            # config.yaml records the choice: a resumed or sampled run computes as it trained, on any machine.
            choice = NAMES[self.compute_dtype]
            self.cfg = cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=choice))
        # The training forwards; penalties call the eager D (a compiled graph has no double backward).
        self.g_forward: nn.Module = self.generator
        self.d_forward: nn.Module = self.discriminator
        if cfg.train.compile:
            self.g_forward = torch.compile(self.generator)
            self.d_forward = torch.compile(self.discriminator)

    def build_optimizer(self, name: str, params: Any) -> torch.optim.Optimizer:
        """The optimiser of network ``name`` over ``params``: optim.generator / optim.discriminator, its own
        optim.networks.NAME, or else a copy of its player's settings."""
        optim = self.cfg.optim
        if name in ("generator", "discriminator"):
            spec, where = getattr(optim, name), f"optim.{name}"
        elif name in optim.networks:
            spec, where = optim.networks[name], f"optim.networks.{name}"
        else:
            spec, where = getattr(optim, self.players[name]), f"optim.{self.players[name]}"
        ratio = self.optim_ratio.get(name, 1.0)
        if ratio != 1.0:  # stylegan2-ada's lazy regularization: lr * ratio, beta ** ratio (training_loop.py)
            spec = {**spec, "lr": spec["lr"] * ratio}
            if "betas" in spec:
                spec["betas"] = [b ** ratio for b in spec["betas"]]
        return OPTIMIZERS.build(spec, where, params)

    def build_schedulers(self) -> dict[str, Any]:
        if self.cfg.optim.lr_decay != "linear":
            return {}
        return {name: linear_decay(opt, self.cfg.train.steps) for name, opt in self.optimizers.items()}

    def build_schedules(self) -> Schedules:
        cfg = self.cfg
        built, setters = [], []
        for i, spec in enumerate(cfg.schedules):
            where = f"schedules.{i}"
            schedule = SCHEDULES.build(spec, where)
            set_value = setter(self, schedule.key, where)  # a one-line error when the key names nothing
            if set_value is None:
                warnings.warn(f"{where} ({schedule.key}) is not applied: this run has no such entry")
                continue
            built.append(schedule)
            setters.append(set_value)
        return Schedules(built, setters, cfg.train.steps)

    generator = property(lambda self: self.networks["generator"])
    discriminator = property(lambda self: self.networks["discriminator"])
    opt_g = property(lambda self: self.optimizers["generator"])
    opt_d = property(lambda self: self.optimizers["discriminator"])

    @property
    def conditional(self) -> bool:
        return self.n_classes > 0

    def trained_with(self, player: Player) -> list[str]:
        """The networks that step in ``player``'s phase."""
        return [name for name, p in self.players.items() if p == player]

    def autocast(self) -> torch.autocast:
        """The region in which forward passes run: bf16 autocast when the precision says so."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.compute_dtype == torch.bfloat16)

    @property
    def sampler(self) -> nn.Module:
        """The generator used for samples and metrics: the EMA copy when enabled."""
        return self.ema.model if self.ema is not None else self.generator

    def state_dict(self) -> dict[str, Any]:
        return {
            "networks": {name: net.state_dict() for name, net in self.networks.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "ema": self.ema.model.state_dict() if self.ema is not None else None,
            "schedulers": {name: s.state_dict() for name, s in self.schedulers.items()},
            "regularizers": [r.state_dict() for r in self.regularizers],
            "terms": [t.state_dict() for t in self.terms],
            "augment": [a.state_dict() for a in self.augmentations],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = sorted(set(self.networks) - set(state["networks"]))
        if missing:
            raise KeyError(f"the checkpoint has no network '{missing[0]}'")
        for name, net in self.networks.items():
            net.load_state_dict(state["networks"][name])
        if self.ema is not None:
            # A run that enables EMA only on resume starts its average from the current weights.
            self.ema.model.load_state_dict(state["ema"] if state["ema"] is not None else state["networks"]["generator"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in self.schedulers.items():
            if name in state["schedulers"]:
                sched.load_state_dict(state["schedulers"][name])
        for reg, sd in zip(self.regularizers, state["regularizers"]):
            reg.load_state_dict(sd)
        for term, sd in zip(self.terms, state["terms"]):
            term.load_state_dict(sd)
        for aug, sd in zip(self.augmentations, state.get("augment", [])):  # checkpoints before augment: none
            aug.load_state_dict(sd)


def unique_names(names: list[str]) -> list[str]:
    """Names for logging: a name used twice gets its index (r1 and r1 -> r10, r11)."""
    return [n if names.count(n) == 1 else f"{n}{i}" for i, n in enumerate(names)]


@dataclass
class LoadedRun:
    """A run directory's experiment with a checkpoint loaded: the one way gankit loads a run (resume, sample,
    eval)."""

    run: RunDir
    exp: Experiment
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])


def load_run(run_dir: Path, *, checkpoint: Literal["last", "best"] = "last", device: str | None = None,
             overrides: list[str] | None = None) -> LoadedRun:
    """Rebuild a run from its config.yaml (with ``overrides``; ``device`` replaces train.device, e.g. to sample on
    another machine) and load its last or best checkpoint. A checkpoint of another config is a one-line error."""
    run = RunDir(run_dir)
    cfg = run.load_config(overrides)
    if device is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, device=device))
    path = run.best_checkpoint if checkpoint == "best" else run.checkpoint
    state = load_checkpoint(path)
    return LoadedRun(run, experiment_from_state(cfg, state, path), state)


def experiment_from_state(cfg: Config, state: dict[str, Any], where: Path) -> Experiment:
    """``cfg``'s experiment with a checkpoint's state loaded (``where``: the checkpoint, named in errors)."""
    exp = Experiment(cfg)
    try:
        exp.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise GankitError(f"checkpoint {where} does not match the run's config.yaml: {reason}") from None
    return exp
