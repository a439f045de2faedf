"""Every rule about combining features, in one place, fed by what the components declare.

The components say what they are (a loss ``needs_real_in_g`` or is ``batch_coupled``; a regularizer
``uses_input_gradient`` or is ``stateful``; an augmentation ``kinds`` and ``stateful``; a dataset ``in_memory``;
a D ``code_dim``); the rules below read those declarations, never a component's name. Each rule raises one
ConfigError naming the keys involved. They run at three moments:

* ``before_models(cfg, n_classes)``: what the config alone decides (classes, packs, codes), before any network
  is built, so a bad combination costs nothing;
* ``built(exp)``: what needs the built objects (D's codes and the penalties, augmentations and the data kind,
  schedules);
* ``batches(cfg, ranks)``: the global batch of a data-parallel run over ``ranks`` processes (also before a
  launcher starts any process).

``stack_blocker(exp)`` says why the seeds of a config cannot train as one stacked model (or None).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from gankit.errors import ConfigError

if TYPE_CHECKING:
    from gankit.config import Config
    from gankit.experiment import Experiment


def conditioning(cfg: "Config", n_labels: int) -> int:
    """The number of classes G and D are conditioned on (0 for an unconditional run), given the data's labels."""
    if not cfg.model.conditional:
        return 0
    if n_labels < 1:
        hint = " (set data.labels: true to take classes from subfolders)" if cfg.data["name"] == "image_folder" else ""
        raise ConfigError(f"model.conditional is true but data '{cfg.data['name']}' has no class labels{hint}")
    if n_labels < 2:
        raise ConfigError(f"model.conditional is true but data '{cfg.data['name']}' has a single class")
    return n_labels


def before_models(cfg: "Config", n_classes: int) -> None:
    m = cfg.model
    codes = bool(m.codes.categorical or m.codes.continuous)
    if m.pack > 1 and n_classes:
        raise ConfigError("model.pack > 1 does not combine with model.conditional: true (a pack has one score)")
    if codes and n_classes:
        raise ConfigError("model.codes does not combine with model.conditional: true (give G either class labels "
                          "or InfoGAN codes)")
    if codes and m.pack > 1:
        raise ConfigError("model.codes does not combine with model.pack > 1 (Q reads one sample, a pack has many)")
    if m.discriminator.get("q_head", False) and not codes:
        raise ConfigError("model.discriminator.q_head is true but the run has no codes; set "
                          "model.codes.categorical and/or model.codes.continuous")
    batches(cfg, 1)


def batches(cfg: "Config", ranks: int) -> None:
    """train.batch_size (and g_batch_size) is the global batch: it must split evenly over the ``ranks``
    processes, into whole packs (D judges whole packs)."""
    t, pack = cfg.train, cfg.model.pack
    for key, value in (("train.batch_size", t.batch_size), ("train.g_batch_size", t.g_batch_size)):
        if value is None:
            continue
        if value % ranks:
            raise ConfigError(f"{key} ({value}) must be a multiple of the {ranks} processes: it is the global batch, "
                              "and each process draws an equal share")
        if ranks == 1 and value % pack:
            raise ConfigError(f"{key} ({value}) must be a multiple of model.pack ({pack}): D judges whole packs")
        if (value // ranks) % pack:
            raise ConfigError(f"{key} ({value}) over {ranks} processes gives {value // ranks} samples each, not a "
                              f"multiple of model.pack ({pack})")


def built(exp: "Experiment") -> None:
    cfg = exp.cfg
    if exp.n_classes and not getattr(exp.generator, "uses_labels", False):
        raise ConfigError("model.conditional is true but model.generator ignores the labels; give it a "
                          "condition (e.g. condition: concat or cbn)")
    _codes(exp)
    for i, (spec, aug) in enumerate(zip(cfg.augment, exp.augmentations)):
        if exp.data.kind not in aug.kinds:
            raise ConfigError(f"augment.{i} ({spec['name']}) applies to {' or '.join(aug.kinds)} data, not to "
                              f"{exp.data.kind} data")
    _schedules(exp)
    _simultaneous(exp)


def _simultaneous(exp: "Experiment") -> None:
    """Simultaneous updates take D's and G's gradients from one forward pass: one D step per G step, one G update,
    G's loss on D's batch of fakes, and no step that needs D's outputs on inputs of its own."""
    t = exp.cfg.train
    if t.updates != "simultaneous":
        return
    for key, value, need in (("train.n_critic", t.n_critic, 1), ("train.g_updates", t.g_updates, 1)):
        if value != need:
            raise ConfigError(f"train.updates: simultaneous takes one D and one G update per step from one forward "
                              f"pass; {key} is {value}, set it to {need}")
    if t.g_batch_size not in (None, t.batch_size):
        raise ConfigError(f"train.updates: simultaneous scores one batch for D and G; train.g_batch_size "
                          f"({t.g_batch_size}) must be null or equal train.batch_size ({t.batch_size})")
    if exp.objective.input_term is not None:
        raise ConfigError("train.updates: simultaneous does not combine with a term that gives D inputs of its own "
                          "(VEEGAN's codes)")
    if exp.optim_ratio:
        raise ConfigError("train.updates: simultaneous does not combine with train.lazy_regularization: separate "
                          "(a D step of its own); use joint")


def _codes(exp: "Experiment") -> None:
    """A discriminator that scores (code, sample) pairs needs a term that gives the codes, and the gradient
    penalties, which differentiate D(x) of the sample alone, do not apply to it."""
    takes_codes = getattr(exp.discriminator, "code_dim", None) is not None
    coder = exp.objective.input_term
    if takes_codes and coder is None:
        raise ConfigError(f"model.discriminator ({exp.cfg.model.discriminator['name']}) scores (code, sample) pairs "
                          "and needs a term that gives the codes, e.g. terms: [{name: veegan}]")
    if coder is None:
        return
    for i, (name, reg) in enumerate(zip(exp.regularizer_names, exp.regularizers)):
        if reg.uses_input_gradient:
            raise ConfigError(f"regularizers.{i} ({name}) differentiates D of a sample alone, but D scores (code, "
                              "sample) pairs here; use clip or rlc, or no regularizer")


def _schedules(exp: "Experiment") -> None:
    cfg = exp.cfg
    seen: set[str] = set()
    for i, schedule in enumerate(exp.schedules.schedules):
        where, key = f"schedules.{i}", schedule.key
        if key.endswith(".lr") and cfg.optim.lr_decay != "none":
            raise ConfigError(f"{where} sets {key}, but optim.lr_decay ({cfg.optim.lr_decay}) decays it too; set "
                              "optim.lr_decay: none")
        if key in seen:
            raise ConfigError(f"{where}: {key} already has a schedule")
        seen.add(key)
        if key.startswith("augment.") and exp.augmentations[int(key.split(".")[1])].stateful:
            raise ConfigError(f"{where} sets {key}, but that augmentation adapts p (target is set); use one or the "
                              "other")


def lazy_interval(exp: "Experiment") -> int | None:
    """train.lazy_regularization: separate runs D's lazy penalties (every k > 1) in a D step of their own: they must
    share one k (the optimiser's lr and betas are scaled by k/(k+1)) and evaluate D themselves (an input-gradient
    penalty; one that reads the main step's outputs, such as rlc, cannot run after that step). Returns k, or None
    when no separate phase runs."""
    if exp.cfg.train.lazy_regularization != "separate":
        return None
    lazy = [(i, spec, reg) for i, (spec, reg) in enumerate(zip(exp.cfg.regularizers, exp.regularizers))
            if reg.every > 1]
    for i, spec, reg in lazy:
        if not reg.uses_input_gradient:
            raise ConfigError(f"regularizers.{i} ({spec['name']}) reads the main D step's outputs and cannot run in a "
                              "separate lazy step; use every: 1 or train.lazy_regularization: joint")
    intervals = sorted({reg.every for _, _, reg in lazy})
    if len(intervals) > 1:
        raise ConfigError(f"train.lazy_regularization: separate needs one interval for every lazy regularizer, got "
                          f"every: {', '.join(map(str, intervals))}")
    if not intervals:
        raise ConfigError("train.lazy_regularization is separate but no regularizer is lazy (every > 1)")
    return intervals[0]


def stack_blocker(exp: "Experiment") -> str | None:
    """None when the seeds of this config can train as one stacked model, else the reason they cannot."""
    cfg = exp.cfg
    for spec, reg in zip(cfg.regularizers, exp.regularizers):
        if reg.stateful:
            return f"regularizer {spec['name']}: its state (e.g. moving-average anchors) is shared by the seeds"
    if not exp.data.in_memory:
        return "streaming image data (an image folder too large to hold in memory)"
    if cfg.train.compile:
        return "train.compile"
    if exp.objective.loss.batch_coupled:
        return f"loss {cfg.loss['name']}: it compares each sample with batch means, which would mix the seeds"
    for i, aug in enumerate(exp.augmentations):
        if aug.stateful:
            return f"augment.{i}: its adaptive p is shared state"
    return None
