"""Schedules: any hyper-parameter as a function of the G step (lr, Adam betas, penalty weights, augmentation p).

A schedule is a config spec under ``schedules:``, e.g. R3GAN's lr decay

    schedules:
      - {name: cosine, key: optim.generator.lr, start: 2.0e-4, end: 5.0e-5, steps: 39063}

Its value at G step t (t = 0 before the first G step) is

* constant: start
* linear:   start + (end - start) * min(t / steps, 1)
* cosine:   start + (end - start) * (1 - cos(pi * min(t / steps, 1))) / 2   (R3GAN's ``cosine_decay_with_warmup``
            without warm-up: brownvc/R3GAN training/training_loop.py)

with ``steps: null`` meaning train.steps. The trainer sets every scheduled value before each G step's phases,
so a value is a pure function of the step: a resumed run continues exactly. ``key`` names what it sets:

* ``optim.<network>.lr``, ``optim.<network>.betas.0``, ``optim.<network>.betas.1`` (network: generator,
  discriminator or a name of model.networks);
* ``regularizers.<i>.weight``; ``terms.<i>.weight``; ``augment.<i>.p`` (an augmentation with a probability).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from gankit.errors import ConfigError
from gankit.registry import AT_LEAST_ONE, SCHEDULES

Setter = Callable[[float], None]


@dataclass(frozen=True)
class Schedule:
    key: str
    shape: str
    start: float
    end: float
    steps: int | None

    def value(self, step: int, total_steps: int) -> float:
        if self.shape == "constant":
            return self.start
        frac = min(step / (self.steps or total_steps), 1.0)
        if self.shape == "cosine":
            frac = (1.0 - math.cos(math.pi * frac)) / 2.0
        return self.start + (self.end - self.start) * frac


# regularizers / terms / augment entries by index (regularizers.0.weight) or by name (regularizers.r1.weight: the
# one entry of that name, so a schedule never lands on another entry when the list is overridden).
KEY = re.compile(r"^(optim\.[A-Za-z_]\w*\.(lr|betas\.[01])|(regularizers|terms)\.(\d+|[A-Za-z_]\w*)\.weight"
                 r"|augment\.(\d+|[A-Za-z_]\w*)\.p)$")


def _register(shape: str, help: str) -> None:
    def factory(*, key: str, start: float, end: float | None = None,
                steps: Annotated[int, AT_LEAST_ONE] | None = None) -> Schedule:
        return Schedule(key, shape, start, start if end is None else end, steps)

    factory.__doc__ = ("key: what the schedule sets (optim.generator.lr, optim.discriminator.betas.1, "
                       "regularizers.0.weight or regularizers.r1.weight, augment.0.p, ...). start, end: the values "
                       "at G step 0 and from `steps` on (null: train.steps).")
    SCHEDULES.register(shape, help)(factory)


_register("constant", "a fixed value (start)")
_register("linear", "start + (end - start) * t / steps, then end")
_register("cosine", "start + (end - start) * (1 - cos(pi t / steps)) / 2, then end (R3GAN's decay)")


def check_key(key: str, where: str) -> None:
    if not KEY.match(key):
        raise ConfigError(f"{where}.key '{key}' is not schedulable; use optim.<network>.lr, optim.<network>.betas.0 "
                          "or .1, regularizers.<i or name>.weight, terms.<i or name>.weight or augment.<i or name>.p")


def setter(exp: Any, key: str, where: str) -> Setter | None:
    """The function that sets ``key`` on the built experiment ``exp`` (a one-line error when it names nothing).
    None for an entry named by its name that the run does not have: a schedule of R1's weight has nothing to
    set in a run without R1, which is what overriding regularizers asks for (the caller says so on stderr)."""
    check_key(key, where)
    parts = key.split(".")
    if parts[0] == "optim":
        name = parts[1]
        if name not in exp.optimizers:
            raise ConfigError(f"{where}.key '{key}': no network '{name}'; choose one of {', '.join(exp.optimizers)}")
        optimizer = exp.optimizers[name]
        # param_groups is looked up at each call: load_state_dict (a resume) replaces the list and its dicts.
        if parts[2] == "lr":
            ratio = exp.optim_ratio.get(name, 1.0)  # a separate lazy-regularization phase scales D's lr

            def set_lr(v: float) -> None:
                for g in optimizer.param_groups:
                    g["lr"] = v * ratio

            return set_lr
        index = int(parts[3])
        if "betas" not in optimizer.param_groups[0]:
            raise ConfigError(f"{where}.key '{key}': the optimizer of '{name}' has no betas")

        beta_ratio = exp.optim_ratio.get(name, 1.0)

        def set_beta(v: float) -> None:
            for g in optimizer.param_groups:
                betas = list(g["betas"])
                betas[index] = v ** beta_ratio
                g["betas"] = tuple(betas)

        return set_beta
    items = {"regularizers": exp.regularizers, "terms": exp.terms, "augment": exp.augmentations}[parts[0]]
    if parts[1].isdigit():
        index = int(parts[1])
        if index >= len(items):
            raise ConfigError(f"{where}.key '{key}': {parts[0]} has {len(items)} entries")
    else:
        names = [spec["name"] for spec in getattr(exp.cfg, parts[0])]
        count = names.count(parts[1])
        if count == 0:  # the entry it follows is not in this run (regularizers=[] over main)
            return None
        if count > 1:
            raise ConfigError(f"{where}.key '{key}': {parts[0]} has {count} entries named '{parts[1]}'; name one "
                              f"by its index ({parts[0]}.<i>.{parts[2]})")
        index = names.index(parts[1])
    item = items[index]
    if parts[2] == "p":
        probability = item.probability  # Augmentation declares it (None: applied to every sample)
        if probability is None:
            raise ConfigError(f"{where}.key '{key}': {type(item).__name__} has no probability p")
        return lambda v: setattr(probability, "value", v)
    if not hasattr(item, "weight"):
        raise ConfigError(f"{where}.key '{key}': {type(item).__name__} has no weight")
    return lambda v: setattr(item, "weight", v)


class Schedules:
    """The run's schedules, each bound to what it sets."""

    def __init__(self, schedules: list[Schedule], setters: list[Setter], total_steps: int) -> None:
        self.schedules, self.setters, self.total_steps = schedules, setters, total_steps

    def apply(self, step: int) -> None:
        for schedule, set_value in zip(self.schedules, self.setters):
            set_value(schedule.value(step, self.total_steps))

    def values(self, step: int) -> dict[str, float]:
        return {s.key: s.value(step, self.total_steps) for s in self.schedules}
