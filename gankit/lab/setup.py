"""What the lab page lets a user set, and how a setup becomes a gankit config.

A setup is a flat dict of the page's fields. It is applied to a base config (the CONFIG given to `gankit lab`, or
``LAB_BASE``) as the CLI's dotted overrides, so the page can set nothing the CLI cannot, and the YAML the page
shows is ``config.dump`` of the result: `gankit train that.yaml` trains the same run.
"""
from __future__ import annotations

import json
import math
from typing import Any

from gankit import config
from gankit.config import Config
from gankit.errors import ConfigError, GankitError
from gankit.registry import LOSSES, OPTIMIZERS, REGULARIZERS, load_builtins

# The 2-D data sets of the page: PacGAN's ring and grid, the reference study's Ring8 and Grid25 (scaled by 1/15
# as in gankit's ring_* and grid_* configs), and points drawn with the mouse.
DATASETS: dict[str, dict[str, Any]] = {
    "ring8": {"name": "ring", "radius": 0.6666667, "std": 0.0333333, "n": 3200, "balanced": True},
    "grid25": {"name": "grid", "spacing": 0.3333333, "std": 0.0333333, "n": 10000, "balanced": True},
    "ring": {"name": "ring"},
    "grid": {"name": "grid"},
    "drawn": {"name": "points", "std": 0.03},
}
DRAWN_LIMIT = 500

# The base of a page without a CONFIG: gankit's ring_gan recipe made small enough to watch on 2 cores (MLP 128 x 3,
# one D step per G step), 2-D latents so that the warped-manifold view is the whole latent space.
LAB_BASE: dict[str, Any] = {
    "name": "lab",
    "data": DATASETS["ring8"],
    "model": {"z_dim": 2,
              "generator": {"name": "mlp", "width": 128, "depth": 3, "activation": "leaky_relu", "output": "linear"},
              "discriminator": {"name": "mlp", "width": 128, "depth": 3, "activation": "leaky_relu"}},
    "loss": "ns",
    "regularizers": [],
    "optim": {"generator": {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.999]},
              "discriminator": {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.999]}},
    "train": {"steps": 2000, "batch_size": 256, "n_critic": 1, "seed": 0, "progress": False, "tensorboard": False},
}

# Numeric fields: (page label for messages, type, lower bound, lower bound allowed, upper bound).
NUMBERS: dict[str, tuple[str, type, float, bool, float]] = {
    "lr_g": ("G learning rate", float, 0.0, False, 1.0),
    "lr_d": ("D learning rate", float, 0.0, False, 1.0),
    "beta1": ("Adam beta1", float, 0.0, True, 0.999999),
    "beta2": ("Adam beta2", float, 0.0, True, 0.999999),
    "n_critic": ("D steps per G step", int, 1, True, 100),
    "batch_size": ("batch size", int, 1, True, 8192),
    "width": ("network width", int, 1, True, 1024),
    "depth": ("network depth", int, 0, True, 8),
    "pack": ("pack", int, 1, True, 16),
    "z_dim": ("latent size", int, 1, True, 256),
    "seed": ("seed", int, 0, True, 2**31 - 1),
    "steps": ("G steps", int, 1, True, 1_000_000),
}


def choices() -> dict[str, Any]:
    """What the page's menus offer, from gankit's registries (a new loss or regularizer appears by itself)."""
    load_builtins()
    return {"datasets": list(DATASETS), "losses": LOSSES.names(),
            "regularizers": [r for r in REGULARIZERS.names()], "optimizers": OPTIMIZERS.names(),
            "help": {**{f"loss:{n}": LOSSES.describe(n) for n in LOSSES.names()},
                     **{f"reg:{n}": REGULARIZERS.describe(n) for n in REGULARIZERS.names()}}}


def base_config(name: str | None) -> dict[str, Any]:
    """The base a setup is applied to: a 2-D config (shipped name or YAML path) or the lab's own."""
    if name is None:
        return json.loads(json.dumps(LAB_BASE))
    data = config.read_yaml(config.locate(name))
    cfg = config.load(name)
    if cfg.data["name"] not in {"ring", "grid", "points"}:
        raise GankitError(f"{name}: the lab trains on 2-D data (ring, grid, points); this config's data is "
                          f"{cfg.data['name']}")
    return {"name": cfg.name, **data}


def setup_of(cfg: Config) -> dict[str, Any]:
    """The page's fields for a config (the form's initial values)."""
    d = cfg.to_dict()
    g, og, od = d["model"]["generator"], d["optim"]["generator"], d["optim"]["discriminator"]
    data = d["data"]
    dataset = next((k for k, v in DATASETS.items() if all(data.get(a) == b for a, b in v.items())),
                   "drawn" if data["name"] == "points" else data["name"])
    return {
        "dataset": dataset, "points": data.get("points") or [],
        "loss": d["loss"]["name"],
        "regularizers": [{"name": r["name"], "weight": r.get("weight", 0.0)} for r in d["regularizers"]],
        "optimizer": og["name"], "lr_g": og.get("lr"), "lr_d": od.get("lr"),
        "beta1": (og.get("betas") or [0.5, 0.999])[0], "beta2": (og.get("betas") or [0.5, 0.999])[1],
        "n_critic": d["train"]["n_critic"], "batch_size": d["train"]["batch_size"],
        "width": g.get("width", 128), "depth": g.get("depth", 3), "pack": d["model"]["pack"],
        "z_dim": d["model"]["z_dim"], "seed": d["train"]["seed"], "steps": d["train"]["steps"],
    }


def _number(setup: dict[str, Any], key: str) -> float | int:
    label, kind, low, low_ok, high = NUMBERS[key]
    value = setup.get(key)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GankitError(f"{label} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise GankitError(f"{label} must be a finite number, got {value!r}")
    if kind is int and number != int(number):
        raise GankitError(f"{label} must be a whole number, got {value!r}")
    if number < low or (number == low and not low_ok) or number > high:
        lower = f">= {low:g}" if low_ok else f"> {low:g}"
        raise GankitError(f"{label} must be {lower} and <= {high:g}, got {value!r}")
    return int(number) if kind is int else number


def overrides(setup: dict[str, Any]) -> list[str]:
    """The CLI's dotted overrides for a setup (JSON is YAML, so specs go in as JSON); bad fields raise one line."""
    if not isinstance(setup, dict):
        raise GankitError("the setup must be an object of the page's fields")
    n = {key: _number(setup, key) for key in NUMBERS}
    dataset = setup.get("dataset")
    if dataset not in DATASETS:
        raise GankitError(f"unknown data set {dataset!r}; the lab offers {', '.join(DATASETS)}")
    data = dict(DATASETS[dataset])
    if dataset == "drawn":
        pts = setup.get("points") or []
        if not isinstance(pts, list) or not pts:
            raise GankitError("the drawing is empty: click on the plane to add points, then start")
        if len(pts) > DRAWN_LIMIT:
            raise GankitError(f"the drawing has {len(pts)} points; at most {DRAWN_LIMIT}")
        data["points"] = pts
    regs = setup.get("regularizers") or []
    if not isinstance(regs, list) or not all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in regs):
        raise GankitError("regularizers must be a list of {name, weight}")
    reg_specs = []
    for r in regs:
        w = r.get("weight")
        try:
            weight = float(w)
        except (TypeError, ValueError):
            raise GankitError(f"the weight of {r['name']} must be a number, got {w!r}") from None
        if not math.isfinite(weight) or weight < 0:
            raise GankitError(f"the weight of {r['name']} must be a finite number >= 0, got {w!r}")
        # clip's knob is its clip value; the others' is their weight
        reg_specs.append({"name": r["name"], "clip" if r["name"] == "clip" else "weight": weight})
    optimizer = setup.get("optimizer")
    load_builtins()
    if optimizer not in OPTIMIZERS.names():
        raise GankitError(f"unknown optimiser {optimizer!r}; choose one of {', '.join(OPTIMIZERS.names())}")

    def opt(lr: float) -> str:
        spec: dict[str, Any] = {"name": optimizer, "lr": lr}
        if optimizer == "adam":
            spec["betas"] = [n["beta1"], n["beta2"]]
        return json.dumps(spec)

    out = [f"data={json.dumps(data)}", f"loss={json.dumps(setup.get('loss'))}",
           f"regularizers={json.dumps(reg_specs)}", f"optim.generator={opt(n['lr_g'])}",
           f"optim.discriminator={opt(n['lr_d'])}", f"model.z_dim={n['z_dim']}", f"model.pack={n['pack']}",
           f"train.n_critic={n['n_critic']}", f"train.batch_size={n['batch_size']}", f"train.seed={n['seed']}",
           f"train.steps={n['steps']}"]
    for role in ("generator", "discriminator"):
        out += [f"model.{role}.width={n['width']}", f"model.{role}.depth={n['depth']}"]
    return out


def build_config(base: dict[str, Any], setup: dict[str, Any]) -> Config:
    """base + the setup's overrides, validated as `gankit train` validates a config."""
    try:
        return config.load(None, overrides(setup), base=json.loads(json.dumps(base)))
    except ConfigError as exc:
        raise GankitError(str(exc)) from None
