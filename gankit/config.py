"""Every default in one place. A YAML config states only what differs; unknown keys and bad values are errors.

The schema is a tree of dataclasses. Leaves that name a component (loss, models, dataset, regularizers,
optimizers) are *specs* checked against that component's factory in ``gankit.registry``, which fills in
the factory's own defaults, so the resolved ``config.yaml`` of a run states every value that was used.
"""
from __future__ import annotations

import copy
import re
import dataclasses
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from gankit.errors import ConfigError
from gankit.registry import (AUGMENTATIONS, DATASETS, LOSSES, MODELS, OPTIMIZERS, REGULARIZERS, SCHEDULES, TERMS,
                             Registry, coerce, load_builtins)

Spec = dict[str, Any]


class _Loader(yaml.SafeLoader):
    """The safe loader, reading 1e-3 as a number as YAML 1.2 does (PyYAML's YAML 1.1 reads it as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass: builds plain data only)


def _spec(registry: Registry, default: Spec) -> Any:
    return field(default_factory=lambda: dict(default), metadata={"registry": registry})


def _specs(registry: Registry) -> Any:
    """A mapping of name -> spec (extra networks, their optimisers)."""
    return field(default_factory=dict, metadata={"registry": registry, "named": True})


@dataclass
class CodesConfig:
    """InfoGAN's latent codes (Chen et al. 2016), joined to the noise in the z that G receives (gankit.prior)."""

    categorical: list[int] = field(default_factory=list)  # the size of each categorical code, e.g. [10]
    continuous: int = 0  # how many continuous codes
    continuous_dist: Literal["normal", "uniform"] = "uniform"  # each continuous code ~ N(0, 1) or U(-1, 1)


@dataclass
class ModelConfig:
    z_dim: int = 32
    z_dist: Literal["normal", "uniform"] = "normal"  # z ~ N(0, I) or U(-1, 1)
    # Conditional runs feed G and D the class labels of labelled data (image classes; a toy mixture's modes).
    conditional: bool = False
    class_dist: Literal["uniform", "data"] = "uniform"  # the classes G is asked for: uniform or the data's frequencies
    generator: Spec = _spec(MODELS, {"name": "mlp"})
    discriminator: Spec = _spec(MODELS, {"name": "mlp"})
    networks: dict[str, Spec] = _specs(MODELS)  # extra networks that objective terms name (e.g. a classifier)
    codes: CodesConfig = field(default_factory=CodesConfig)  # InfoGAN: categorical and continuous latent codes
    # PacGAN (Lin et al. 2018): D judges packs of this many samples, joined along channels (features for 2-D data).
    pack: int = 1


@dataclass
class OptimConfig:
    generator: Spec = _spec(OPTIMIZERS, {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.999]})
    discriminator: Spec = _spec(OPTIMIZERS, {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.999]})
    # Optimisers of model.networks, by name; a network without one uses a copy of its player's (G's or D's).
    networks: dict[str, Spec] = _specs(OPTIMIZERS)
    lr_decay: Literal["none", "linear"] = "none"  # linear: lr falls to 0 at the last G step


@dataclass
class EMAConfig:
    enabled: bool = False
    decay: float = 0.999
    start: int = 0  # G step from which the average is updated; before it, the copy follows G exactly


@dataclass
class TrainConfig:
    steps: int = 2000  # generator steps
    batch_size: int = 256
    g_batch_size: int | None = None  # samples per G step (default batch_size; SNGAN: 64 for D, 128 for G)
    n_critic: int = 1  # D steps per G step
    # G updates in each G step, all on the same latents (carpedm20's DCGAN, which PacGAN's Stacked MNIST code runs:
    # "Run g_optim twice to make sure that d_loss does not go to zero"). train.steps counts G steps either way.
    g_updates: int = 1
    # Conditional runs: the classes of D's generated batch: drawn from the prior, or those of the real batch
    # (as the reference CGAN/ACGAN code does); G's own step always draws from the prior.
    d_fake_classes: Literal["prior", "real"] = "prior"
    # fresh: every D step draws its own real batch; per_g_step: the n_critic D steps of one G step share one
    # (as afshindini/GAN-Methods-with-Pytorch's critic loop does)
    critic_real_batch: Literal["fresh", "per_g_step"] = "fresh"
    # alternating: D steps, then G steps against the updated D; simultaneous: D's and G's gradients from one forward
    # pass at the same weights, then both step (as PacGAN's and ALI's Theano code, one GradientDescent for both;
    # needs n_critic 1 and g_updates 1)
    updates: Literal["alternating", "simultaneous"] = "alternating"
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu
    # auto: bf16 autocast for images on a GPU with native bf16, and on a CPU where a one-off timing of the model
    # finds it faster (gankit/precision.py; config.yaml records the choice); fp32 for 2-D toy data (bf16 rounding
    # is as wide as a 0.01-std mode). Inputs, outputs and gradient penalties stay in fp32 (see models/layers.py).
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    log_every: int = 50  # read the on-device loss sums every N G steps
    checkpoint_every: int = 500
    snapshot_steps: list[int] = field(default_factory=lambda: [200, 400, 600, 800])  # plus the last step
    # Lazy regularizers (every: k > 1): joint = the penalty joins D's loss on its due steps (times k); separate = a D
    # step of its own on those steps, with D's lr and Adam betas scaled by k/(k+1) as stylegan2-ada's Dreg phase.
    lazy_regularization: Literal["joint", "separate"] = "joint"
    sample_every: int = 0  # also snapshot every N G steps (0: only at snapshot_steps); image runs: a grid PNG
    channels_last: bool = True  # NHWC memory format for image models (faster convolutions); ignored for 2-D data
    compile: bool = False  # torch.compile the forward passes (penalties keep the eager D: no double backward)
    ema: EMAConfig = field(default_factory=EMAConfig)
    tensorboard: bool = True
    progress: bool = True
    # Data-parallel runs (torchrun, accelerate launch, gankit train --nproc N; docs/distributed.md):
    sync_batch_norm: bool = False  # batch norm over the global batch instead of each rank's share
    dist_timeout: float = 1800.0  # seconds a rank waits for the others before the run stops with an error


@dataclass
class EvalConfig:
    n_samples: int = 2500  # samples for every evaluation (and the toy snapshots)
    grid_size: int = 64  # images in a sample grid
    metrics: list[str] = field(default_factory=list)  # image metrics (fid, is, kid, prc, cfd, cs, classes)
    every: int = 0  # G steps between evaluations during training (0: only at the end)
    best: str | None = None  # keep checkpoints/best.pt by this metric: one of `metrics`, or modes/reverse_kl/...
    split: str | None = None  # reference split of the image metrics (default: the data's own split)
    inception_weights: str | None = None  # a local Inception-v3 weights file (else $GANKIT_INCEPTION_WEIGHTS)
    extractor: str = "inception-v3-compat"  # feature extractor of fid/is/kid/prc ("random-test" in the tests)
    # resize of the Inception metrics' inputs: legacy (torch-fidelity's, comparable with the references' numbers)
    # or clean (Parmar et al. 2022: PIL bicubic, antialiased); recorded in every number's protocol
    protocol: Literal["legacy", "clean"] = "legacy"


@dataclass
class Config:
    """gankit's defaults: non-saturating GAN + R1 (gamma 1) on PacGAN's ring of 8 Gaussians, MLP 256 x 3. A config
    states what differs from them. The main job (`gankit train` without a config) is the shipped config `main`."""

    name: str = "default"
    data: Spec = _spec(DATASETS, {"name": "ring"})
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: Spec = _spec(LOSSES, {"name": "ns"})
    regularizers: list[Spec] = field(
        default_factory=lambda: [{"name": "r1", "weight": 1.0}], metadata={"registry": REGULARIZERS}
    )
    terms: list[Spec] = field(default_factory=list, metadata={"registry": TERMS})  # method terms (aux_class, ...)
    # Augmentations of every input D sees, real and generated, in every phase (diffaugment, noise): gankit/augment/.
    augment: list[Spec] = field(default_factory=list, metadata={"registry": AUGMENTATIONS})
    # Hyper-parameters that change over G steps (lr, Adam betas, penalty weights, augmentation p): schedules.py.
    schedules: list[Spec] = field(default_factory=list, metadata={"registry": SCHEDULES})
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Values that must be positive (or in range); checked after types, each naming its key.
_RANGES: list[tuple[str, str, Any]] = [
    ("model.z_dim", ">= 1", lambda v: v >= 1),
    ("model.codes.categorical", "a list of code sizes, each >= 2", lambda v: all(k >= 2 for k in v)),
    ("model.codes.continuous", ">= 0", lambda v: v >= 0),
    ("model.pack", ">= 1", lambda v: v >= 1),
    ("train.steps", ">= 1", lambda v: v >= 1),
    ("train.batch_size", ">= 1", lambda v: v >= 1),
    ("train.n_critic", ">= 1", lambda v: v >= 1),
    ("train.g_updates", ">= 1", lambda v: v >= 1),
    ("train.g_batch_size", ">= 1", lambda v: v is None or v >= 1),
    ("train.log_every", ">= 1", lambda v: v >= 1),
    ("train.checkpoint_every", ">= 1", lambda v: v >= 1),
    ("train.dist_timeout", "> 0", lambda v: v > 0),
    ("train.ema.decay", "in [0, 1)", lambda v: 0 <= v < 1),
    ("train.ema.start", ">= 0", lambda v: v >= 0),
    ("eval.n_samples", ">= 2", lambda v: v >= 2),
    ("eval.grid_size", ">= 1", lambda v: v >= 1),
    ("train.sample_every", ">= 0", lambda v: v >= 0),
    ("eval.every", ">= 0", lambda v: v >= 0),
]


def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _build(cls: type, data: Any, where: str) -> Any:
    """Instantiate dataclass ``cls`` from a (partial) mapping, defaults first, checking every key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown config key {key}; valid keys here: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        registry = f.metadata.get("registry")
        value = data.get(name, default)
        if registry is not None and typing.get_origin(hints[name]) is list:
            if not isinstance(value, list):
                raise ConfigError(f"{key} must be a list of {registry.kind} specs, got {value!r}")
            kwargs[name] = [registry.resolve(v, f"{key}.{i}") for i, v in enumerate(value)]
        elif registry is not None and f.metadata.get("named"):
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise ConfigError(f"{key} must map names to {registry.kind} specs, got {value!r}")
            kwargs[name] = {k: registry.resolve(v, f"{key}.{k}") for k, v in value.items()}
        elif registry is not None:
            kwargs[name] = registry.resolve(_merge_spec(default, value), key)
        elif dataclasses.is_dataclass(hints[name]):
            kwargs[name] = _build(hints[name], data.get(name, {}), key)
        else:
            kwargs[name] = coerce(value, hints[name], key)
    return cls(**kwargs)


def _merge_spec(default: Any, value: Any) -> Any:
    """A spec that keeps the default's name inherits its parameters; a new name starts from scratch."""
    if isinstance(value, str):
        value = {"name": value}
    if isinstance(default, dict) and isinstance(value, dict) and value.get("name", default["name"]) == default["name"]:
        return {**default, **value}
    return value


def from_dict(data: dict[str, Any]) -> Config:
    load_builtins()
    cfg = _build(Config, data, "")
    for key, rule, ok in _RANGES:
        value = _get(cfg, key)
        if not ok(value):
            raise ConfigError(f"{key} must be {rule}, got {value}")
    if any(s < 1 for s in cfg.train.snapshot_steps):
        raise ConfigError(f"train.snapshot_steps must be >= 1, got {cfg.train.snapshot_steps}")
    return cfg


def read_yaml(path: Path) -> dict[str, Any]:
    """Safe-load a YAML mapping; syntax errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not a text file (not UTF-8); give a YAML file") from None
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"malformed YAML in {path}{line}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, got {type(data).__name__}")
    return data


def shipped_configs() -> list[str]:
    folder = resources.files("gankit") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def locate(name_or_path: str) -> Path:
    """A shipped config name (``ring_gan_r1``) or a path to a YAML file."""
    path = Path(name_or_path)
    # A YAML suffix or an existing file means a path; a folder of the same name (say a run directory made by
    # `--out mnist_dcgan` in the working directory) never hides the shipped config of that name.
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    if name_or_path in shipped_configs():
        return Path(str(resources.files("gankit") / "configs" / f"{name_or_path}.yaml"))
    if path.is_dir():
        raise ConfigError(f"config {path} is a folder, not a YAML file (to continue a run there: --resume {path})")
    raise ConfigError(f"unknown config '{name_or_path}'; choose a YAML path or one of: {', '.join(shipped_configs())}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.steps=500`` -> (['train', 'steps'], 500); the value is read as YAML (numbers, lists, true)."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' must look like KEY=VALUE, e.g. train.steps=500")
    try:
        value = safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys in a nested mapping (integers index lists, e.g. regularizers.0.weight=1)."""
    data = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: i + 1]))
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, ".".join(parts))] = value
        else:
            node[last] = value
    return data


def _index(node: list[Any], part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override key {key}: '{part}' is not an index of a list of {len(node)}")
    return int(part)


def _child(node: Any, part: str, key: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, key)]
    if not isinstance(node, dict):
        raise ConfigError(f"override key {key}: its parent is not a mapping")
    if isinstance(node.get(part), str):  # a spec given by name alone, e.g. data=grid then data.n=10
        node[part] = {"name": node[part]}
    elif not isinstance(node.get(part), (dict, list)):
        node[part] = {}
    return node[part]


def load(config: str | None = None, overrides: list[str] | None = None, base: dict[str, Any] | None = None) -> Config:
    """Resolve a config: the defaults, then ``base`` or the YAML file, then the dotted overrides."""
    data = base if base is not None else (read_yaml(locate(config)) if config else {})
    if config and base is None and "name" not in data:
        data = {**data, "name": Path(config).stem}
    return from_dict(apply_overrides(with_default_lists(data, overrides or []), overrides or []))


def with_default_lists(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """An override into a list the YAML does not state (``regularizers.0.weight=0.1`` on the default config)
    edits the default list: copy it into ``data`` first."""
    defaults = Config().to_dict()  # the defaults as written, before any spec is resolved
    data = dict(data)
    for text in overrides:
        parts, _ = parse_override(text)
        if len(parts) > 1 and parts[0] not in data and isinstance(defaults.get(parts[0]), list):
            data[parts[0]] = copy.deepcopy(defaults[parts[0]])
    return data


def dump(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
