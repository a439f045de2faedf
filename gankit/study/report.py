"""A study over seeds: train each config's seeds, then one table (mean ± standard error) and the figures.

Layout of ``out``: ``CONFIG/seed_S/`` (an ordinary run directory per seed, with ``snapshot_metrics.json``),
``results.json`` (every seed's value of every metric at every snapshot step and at the end), ``table.md`` (the final metrics, mean ± s.e. over
seeds), ``curves.png`` (each metric over G steps, mean ± s.e.) and ``samples.png`` (seed 0 of each config at
each snapshot step, the reference README's step tables).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gankit import config as config_mod
from gankit.errors import GankitError
from gankit.io import make_folder, write_json
from gankit.study.seeds import check_seed_folders, train_seeds

# Reported first, in this order, when present; then any other scalar metric of the runs.
PREFERRED = ["modes", "high_quality", "reverse_kl", "classes", "classes/covered", "cacc", "class_accuracy"]
SKIP = {"step", "n_samples", "n_modes"}


def mean_se(values: list[float]) -> dict[str, float]:
    """Mean and standard error of the mean (sample std / sqrt(n); 0 for one value)."""
    a = np.asarray(values, dtype=float)
    se = float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0
    return {"mean": float(a.mean()), "se": se}


def numeric(result: dict[str, Any]) -> dict[str, float]:
    from gankit.evaluation import scalars

    flat = scalars(result)
    flat.update({k: float(v) for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return {k: v for k, v in flat.items() if k not in SKIP}


def ordered(keys: set[str]) -> list[str]:
    return [k for k in PREFERRED if k in keys] + sorted(keys - set(PREFERRED))


def run_study(configs: list[str], n_seeds: int, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Train (or continue) every config's seeds into out/CONFIG/seed_S and write the study's record. Rerunning the
    same command continues a stopped study from its checkpoints; more --seeds trains only the new seeds.
    results.json and table.md are rewritten after each config, beside the entries of configs studied earlier."""
    if n_seeds < 1:
        raise GankitError(f"--seeds must be >= 1, got {n_seeds}")
    cfgs = [config_mod.load(name, overrides) for name in configs]  # every config error before any training
    names = [Path(c).stem if c.endswith((".yaml", ".yml")) else c for c in configs]
    if len(set(names)) != len(names):
        raise GankitError("each config may appear once in a study")
    if (out / "config.yaml").is_file():  # a single run's directory (gankit train --out): never train into it
        raise GankitError(f"--out: {out} holds a single run (config.yaml), not a study; choose another folder")
    plan = [(name, cfg, [cfg.train.seed + i for i in range(n_seeds)]) for name, cfg in zip(names, cfgs)]
    for name, cfg, seeds in plan:  # a folder of another config is an error before anything trains
        check_seed_folders(cfg, seeds, out / name)
    make_folder(out, "--out")
    study = read_results(out)
    for name, cfg, seeds in plan:
        print(f"study: {name}, seeds {seeds[0]}..{seeds[-1]}", file=sys.stderr, flush=True)
        results, info = train_seeds(cfg, seeds, out / name)
        if info["trained"] != seeds:
            done = sorted(set(seeds) - set(info["trained"]))
            print(f"study: {name}: seeds {', '.join(map(str, done))} were already trained; "
                  f"trained now: {', '.join(map(str, info['trained'])) or 'none'}", file=sys.stderr, flush=True)
        study[name] = config_entry(cfg, seeds, results, info, out / name)
        write_json(out / "results.json", study)  # after each config: a long study keeps what it has done
        (out / "table.md").write_text(markdown_table(study))
    curves_figure(study, out / "curves.png")
    samples_figure(study, out, out / "samples.png")
    return study


def read_results(out: Path) -> dict[str, Any]:
    """The study's record so far (configs studied by earlier invocations keep their entries)."""
    path = out / "results.json"
    if not path.is_file():
        return {}
    try:
        study = json.loads(path.read_text())
    except ValueError:
        raise GankitError(f"{path} is not valid JSON; remove it (the seeds' runs rebuild it)") from None
    if not isinstance(study, dict):
        raise GankitError(f"{path} is not a study's results.json; choose another --out")
    return study


def config_entry(cfg: Any, seeds: list[int], results: list[dict[str, Any]], info: dict[str, Any],
                 folder: Path) -> dict[str, Any]:
    """One config's record: final metrics (mean ± s.e. and each seed's value) and each snapshot's, read from the
    seeds' runs."""
    from gankit.run import RunDir
    from gankit.study.seeds import read_snapshot_metrics

    finals = [numeric(r) for r in results]
    keys = set.intersection(*(set(f) for f in finals))
    per_seed = [read_snapshot_metrics(RunDir(folder / f"seed_{s}")) for s in seeds]
    steps = sorted(set.intersection(*(set(p) for p in per_seed)))
    curves = {}
    for step in steps:
        ms = [p[step] for p in per_seed]
        curves[str(step)] = {k: [m[k] for m in ms] for k in ordered(set.intersection(*(set(m) for m in ms)))}
    return {
        "seeds": seeds,
        "steps": cfg.train.steps,
        "batched": info["batched"],
        "not_batched_because": info["reason"],
        "seconds": round(info["seconds"], 1),
        "final": {k: {**mean_se([f[k] for f in finals]), "values": [f[k] for f in finals]} for k in ordered(keys)},
        "curves": curves,
    }


def _fmt(entry: dict[str, float]) -> str:
    m, se = entry["mean"], entry["se"]
    digits = 3 if abs(m) < 10 else 1
    return f"{m:.{digits}f} ± {se:.{digits}f}"


def markdown_table(study: dict[str, Any]) -> str:
    keys = ordered(set().union(*(set(s["final"]) for s in study.values())) if study else set())
    lines = ["| config | seeds | steps | " + " | ".join(keys) + " | wall s |",
             "|---|---|---|" + "---|" * len(keys) + "---|"]
    for name, s in study.items():
        cells = [_fmt(s["final"][k]) if k in s["final"] else "" for k in keys]
        lines.append(f"| {name} | {len(s['seeds'])} | {s['steps']} | " + " | ".join(cells) + f" | {s['seconds']} |")
    return "\n".join(lines) + "\n"


def curves_figure(study: dict[str, Any], path: Path) -> None:
    """Each metric over G steps: the mean over seeds with a ± s.e. band, one line per config."""
    from gankit.viz import plt, _save

    keys = [k for k in ordered(set().union(*(set(v) for s in study.values() for v in s["curves"].values())))
            if k in PREFERRED][:3]
    if not keys:
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, s in study.items():
            steps = [int(st) for st, m in s["curves"].items() if key in m]
            if not steps:
                continue
            stats = [mean_se(s["curves"][str(st)][key]) for st in steps]
            mean = np.array([x["mean"] for x in stats])
            se = np.array([x["se"] for x in stats])
            ax.plot(steps, mean, marker="o", markersize=3, linewidth=1.2, label=name)
            ax.fill_between(steps, mean - se, mean + se, alpha=0.2)
        ax.set_xlabel("generator step")
        ax.set_title(f"{key} (mean ± s.e. over seeds)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    _save(fig, path)


def samples_figure(study: dict[str, Any], out: Path, path: Path) -> None:
    """Seed 0 of each toy config at each snapshot step (rows: configs; columns: steps)."""
    from gankit.run import RunDir
    from gankit.viz import _limit, _save, _scatter, plt

    rows = []
    for name, s in study.items():
        run = RunDir(out / name / f"seed_{s['seeds'][0]}")
        snaps = [(step, np.load(p)["samples"]) for step, p in run.snapshots()]
        if snaps and snaps[0][1].ndim == 2 and snaps[0][1].shape[1] == 2:
            rows.append((name, run, snaps))
    if not rows:
        return
    from gankit.api import load_trained

    cols = max(len(r[2]) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.9 * cols, 1.9 * len(rows)), squeeze=False)
    for r, (name, run, snaps) in enumerate(rows):
        exp, _ = load_trained(run.root, device="cpu")
        real = exp.data.real_batch(2500).numpy()
        for c in range(cols):
            ax = axes[r][c]
            if c < len(snaps):
                _scatter(ax, real, snaps[c][1], f"{name} {snaps[c][0]}", _limit(real))
            else:
                ax.axis("off")
    _save(fig, path)
