"""Train N seeds of one config at once, as one batched model, and leave N ordinary run directories.

``train_seeds(cfg, seeds, out)`` builds one ``Experiment`` per seed (so each seed's initial weights and RNG
state are exactly those of `gankit train CONFIG train.seed=S`), stacks their networks into ``SeedStack``s,
and runs the ordinary training loop (``Trainer.d_step`` / ``g_step``) on the stack. At each snapshot step, and
at the end, the stacked weights are copied back into the per-seed experiments, which write their snapshots,
evaluation, figures and checkpoint with the same code as a single run: ``out/seed_S`` can be sampled,
evaluated and resumed like any run.

Studies survive time: each seed checkpoints every train.checkpoint_every steps (with its own RNG state; out/stack.pt holds
every seed's state and the shared penalty stream at once), and its snapshots' metrics live in its snapshot_metrics.json.
``train_seeds`` on a folder that already holds seeds reads the finished ones, resumes the stopped ones from their
last checkpoint (seeds at one step stack again, optimiser, schedule and EMA state included) and starts the new
ones, so a killed study loses at most one checkpoint interval and more seeds train only the new ones.

Equality with separate runs: each seed's data, latents, initial weights, gradients and optimiser steps are its
own run's, so the weights agree to float tolerance (different batch shapes round differently). Regularizers
that draw random numbers inside D's step (gp, dragan, noise; VEEGAN's noise on F(x)) draw them from one stream
for all seeds: the same
distribution as separate runs, not the same numbers. Stateful regularizers (rlc) and streaming image folders
cannot be stacked; ``compat.stack_blocker`` says why, and the study then trains those seeds one after another.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from collections.abc import Callable

from torch import Tensor

from gankit.config import Config
from gankit.errors import GankitError, TrainingDiverged
from gankit.losses import AdversarialLoss
from gankit.evaluation import evaluate, scalars
from gankit.experiment import Experiment, experiment_from_state
from gankit.io import atomic_path, make_folder, write_json
from gankit.optim import EMA
from gankit.run import RunDir, dump_config, load_checkpoint, save_checkpoint
from gankit.batch_layout import SeedLayout
from gankit.study.stack import RngStates, SeedData, SeedPrior, SeedStack
from gankit.tracking import LossTracker
from gankit.compat import stack_blocker
from gankit.train import Trainer, check_eval_config, restore_rng

def with_seed(cfg: Config, seed: int) -> Config:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))


class SeedwiseLoss(AdversarialLoss):
    """The stacked run's adversarial loss, computed exactly as before over the stacked batch (the gradient is
    unchanged), that also hands each seed's own value (the loss on that seed's rows, detached) to ``record``: a
    study seed's metrics.jsonl then holds its own losses, not the mean over seeds."""

    def __init__(self, base: AdversarialLoss, n_seeds: int, record: Callable[[str, Tensor], None]) -> None:
        self.base, self.n_seeds, self.record = base, n_seeds, record
        self.name = base.name
        self.needs_real_in_g, self.batch_coupled = base.needs_real_in_g, base.batch_coupled

    def _per_seed(self, fn: Callable[..., Tensor], *outputs: Tensor) -> Tensor:
        # Seed s owns rows s*B .. s*B + B - 1 of every stacked batch (stack.SeedStack): a [S, B] view splits them.
        return torch.vmap(fn)(*(o.detach().reshape(self.n_seeds, -1) for o in outputs))

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        self.record("d_loss", self._per_seed(self.base.d_loss, real, fake))
        return self.base.d_loss(real, fake)

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        if real is None:
            self.record("g_loss", self._per_seed(lambda f: self.base.g_loss(f), fake))
        else:
            self.record("g_loss", self._per_seed(self.base.g_loss, fake, real))
        return self.base.g_loss(fake, real)


class StackedTrainer(Trainer):
    """The training loop over a stacked experiment; one ``Trainer`` per seed writes that seed's run."""

    def __init__(self, stacked: Experiment, views: list[Trainer], rngs: RngStates) -> None:
        self.views, self.rngs = views, rngs
        # Called at every periodic checkpoint with the shared stream's state and every seed's checkpoint state.
        self.on_checkpoint: Callable[[Tensor, list[dict[str, Any]]], None] | None = None
        # Trainer.__init__ draws fixed latents for snapshots; the per-seed views own those.
        super().__init__(stacked, views[0].run, views[0].step)

    def _step(self, player: str, loss: torch.Tensor) -> None:
        # The loss is a mean over S * B rows: times S it is the sum of the S per-seed means, so each seed's
        # gradient is exactly that of its own run.
        super()._step(player, loss * len(self.views))

    def sync_views(self, with_optimizers: bool = False) -> None:
        """Copy the stacked weights (and optionally optimiser, scheduler and EMA state) into each seed's run."""
        exp = self.exp
        for s, view in enumerate(self.views):
            v = view.exp
            for name, stack in exp.networks.items():
                v.networks[name].load_state_dict(stack.unstack(s))
            if exp.ema is not None:
                v.ema.model.load_state_dict(exp.ema.model.unstack(s))
            if with_optimizers:
                for name, opt in exp.optimizers.items():
                    v.optimizers[name].load_state_dict(slice_optimizer_state(opt.state_dict(), s, len(self.views)))
                for name, sched in exp.schedulers.items():
                    v.schedulers[name].load_state_dict(sched.state_dict())
            view.step = self.step

    def _record(self, name: str, values: Tensor) -> None:
        """Each seed's value of a logged loss, into that seed's tracker (on the device: no sync)."""
        for s, tracker in enumerate(self.seed_trackers):
            tracker.add({name: values[s]})
            self.last_values[s] = values[s] if name == "d_loss" else self.last_values[s] + values[s]

    def _flush_seeds(self) -> None:
        """Each seed's metrics.jsonl gets its own losses; a seed whose loss is not finite stops the study with one
        line naming the config and the seed."""
        lrs = {"lr_g": self.exp.opt_g.param_groups[0]["lr"], "lr_d": self.exp.opt_d.param_groups[0]["lr"]}
        for view, tracker in zip(self.views, self.seed_trackers):
            record = tracker.flush(self.step, lrs)
            if "bad_step" in record:
                raise TrainingDiverged(f"study {self.cfg.name}: seed {view.cfg.train.seed} diverged (a loss became NaN "
                                       f"or infinite at step {record['bad_step']}); each seed keeps its last periodic "
                                       "checkpoint")

    def _checkpoint_seeds(self) -> None:
        """Every seed's checkpoint, each with its own RNG state; the shared stream the stack draws penalties from
        is left as it was. ``on_checkpoint`` first gets every seed's state and that stream at once (train_seeds
        writes them as one file): a kill between two seeds' files then loses nothing."""
        self.sync_views(with_optimizers=True)
        outer = self.rngs.current(self.exp.device)
        states = []
        for s, view in enumerate(self.views):
            self.rngs.activate(s)
            states.append(view._state())
        self.rngs._set(outer)
        if self.on_checkpoint is not None:
            self.on_checkpoint(outer, states)
        for view, state in zip(self.views, states):
            save_checkpoint(view.run.checkpoint, state)

    def train_all(self) -> list[dict[str, Any]]:
        """Train to train.steps; each snapshot's metrics go to each seed's snapshot_metrics.json. Returns each
        seed's final evaluation (as `gankit train` prints it). Each seed's losses go to its own metrics.jsonl every
        train.log_every steps; eval.every and train.checkpoint_every act on every seed."""
        t = self.cfg.train
        snapshot_steps = set(t.snapshot_steps) | {t.steps}
        for net in self.exp.networks.values():
            net.train()
        self.seed_trackers = [LossTracker(v.run.metrics, None, v.step, self.exp.device) for v in self.views]
        self.last_values: list[Tensor] = [torch.zeros((), device=self.exp.device) for _ in self.views]
        # A copy: the stacked experiment shares its objective with seed 0's own experiment (copy.copy in
        # stack_experiments), whose loss must stay the plain one.
        self.exp.objective = copy.copy(self.exp.objective)
        self.exp.objective.loss = SeedwiseLoss(self.exp.objective.loss, len(self.views), self._record)
        bar = tqdm(total=t.steps, initial=self.step, disable=not t.progress, unit="step", dynamic_ncols=True,
                   desc=f"{self.cfg.name} x{len(self.views)} seeds", file=sys.stderr)
        try:
            self._train_all(bar, snapshot_steps)
        finally:
            bar.close()
            for tracker in self.seed_trackers:
                tracker.close()
        self.sync_views(with_optimizers=True)
        results = []
        for s, view in enumerate(self.views):
            self.rngs.activate(s)
            view.save_checkpoint()  # with seed s's RNG state: resuming continues that seed's own stream
            tracker = LossTracker(view.run.metrics, None, view.step, view.exp.device)
            try:
                results.append(view.finish(tracker))
            finally:
                tracker.close()
        return results

    def _train_all(self, bar: tqdm, snapshot_steps: set[int]) -> None:
        t, e = self.cfg.train, self.cfg.eval
        while self.step < t.steps:
            self.train_step()
            for tracker, value in zip(self.seed_trackers, self.last_values):
                tracker.check_finite(self.step, value)  # the last D step's and the G step's loss of each seed
            bar.update(1)
            if self.step % t.log_every == 0 or self.step == t.steps:
                self._flush_seeds()
            if self.step in snapshot_steps or (t.sample_every and self.step % t.sample_every == 0):
                self.sync_views()
                for view in self.views:
                    view.snapshot()
                    record_snapshot(view)
            if e.every and self.step % e.every == 0 and self.step < t.steps:
                self.sync_views()
                for view, tracker in zip(self.views, self.seed_trackers):
                    view.evaluate(tracker)
            if self.step % t.checkpoint_every == 0 and self.step < t.steps:
                self._checkpoint_seeds()


def snapshot_metrics(view: Trainer) -> dict[str, Any]:
    """The run's evaluation at a snapshot (toy: modes, high_quality, reverse_kl; images: eval.metrics)."""
    e = view.cfg.eval
    result = evaluate(view.exp, view.step, e.n_samples, seed=view.cfg.train.seed + 2, metrics=e.metrics,
                      split=e.split, inception_weights=e.inception_weights, n_name="eval.n_samples")
    return scalars(result)


def slice_optimizer_state(state: dict[str, Any], s: int, n_seeds: int) -> dict[str, Any]:
    """Seed s's share of a stacked optimiser's state dict (per-parameter tensors carry the seed axis first)."""
    def pick(v: Any) -> Any:
        return v[s].clone() if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == n_seeds else v

    return {"state": {k: {n: pick(v) for n, v in st.items()} for k, st in state["state"].items()},
            "param_groups": copy.deepcopy(state["param_groups"])}


def stack_optimizer_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The inverse of ``slice_optimizer_state``: the seeds' optimiser state dicts (one step count, so one set of
    scalars such as Adam's ``step``) as one stacked optimiser's. A new run's state is empty and stays so."""
    def join(values: list[Any]) -> Any:
        v = values[0]
        return torch.stack(values) if torch.is_tensor(v) and v.dim() > 0 else copy.deepcopy(v)

    first = states[0]
    return {"state": {k: {n: join([st["state"][k][n] for st in states]) for n in per_param}
                      for k, per_param in first["state"].items()},
            "param_groups": copy.deepcopy(first["param_groups"])}


def stack_experiments(exps: list[Experiment], rngs: RngStates) -> Experiment:
    """One Experiment whose networks, optimisers, data and prior span every seed. The seeds' training state
    (optimisers, schedules, EMA) is stacked too, so seeds resumed from their checkpoints at one step continue
    as they would have; all seeds are at the same step, so seed 0's schedule state is every seed's."""
    base = exps[0]
    stacked = copy.copy(base)
    stacked.networks = {name: SeedStack([e.networks[name] for e in exps]).to(base.device) for name in base.networks}
    stacked.optimizers = {name: stacked.build_optimizer(name, net.parameters()) for name, net in stacked.networks.items()}
    for name, opt in stacked.optimizers.items():
        opt.load_state_dict(stack_optimizer_states([e.optimizers[name].state_dict() for e in exps]))
    stacked.schedulers = stacked.build_schedulers()
    for name, sched in stacked.schedulers.items():
        sched.load_state_dict(base.schedulers[name].state_dict())
    stacked.ema = EMA(stacked.networks["generator"], base.cfg.train.ema.decay) if base.ema is not None else None
    if stacked.ema is not None:
        stacked.ema.model.load_state_dict(SeedStack([e.ema.model for e in exps]).to(base.device).state_dict())
    stacked.data = SeedData(base.data, rngs)
    stacked.prior = SeedPrior(base.prior, rngs)
    stacked.g_forward = stacked.networks["generator"]
    stacked.d_forward = stacked.networks["discriminator"]
    stacked.batch_layout = SeedLayout(len(exps))  # D's joint [real; fake] call joins per seed
    stacked.channels_last = False
    return stacked


# -- a study's seeds on disk: what is done, what continues, what starts ------------------------------------------
SNAPSHOT_METRICS = "snapshot_metrics.json"  # per seed: {step: the metrics at that snapshot}, for the study's curves
STACK = "stack.pt"  # per config: the stacked run's last periodic checkpoint, every seed's state and the shared stream
PROGRESS = "progress.json"  # per config: wall seconds spent on it over every invocation


@dataclasses.dataclass
class SeedRun:
    """One seed of a study: a finished run (``result`` read from its eval.json) or a trainer to run, new or
    resumed from its last checkpoint, with its RNG state."""

    seed: int
    run: RunDir
    result: dict[str, Any] | None = None
    trainer: Trainer | None = None
    rng: Tensor | None = None

    @property
    def step(self) -> int:
        return self.trainer.step if self.trainer is not None else -1


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


IGNORED_KEYS = {"train.progress"}  # display only: a rerun may switch the progress bar on or off


def check_same_config(run: RunDir, cfg: Config) -> None:
    """A seed directory continues only under the config that started it: anything else is a one-line error."""
    saved, wanted = _flat(run.load_config().to_dict()), _flat(cfg.to_dict())
    differ = sorted(k for k in set(saved) | set(wanted) if k not in IGNORED_KEYS and saved.get(k) != wanted.get(k))
    if differ:
        k = differ[0]
        raise GankitError(f"{run.root} was trained with {k}={saved.get(k)!r}, this study asks for {wanted.get(k)!r}"
                          f"{f' (and {len(differ) - 1} more settings)' if len(differ) > 1 else ''}: rerun with the "
                          "same config and overrides to continue it, or choose another --out")


def check_seed_folders(cfg: Config, seeds: list[int], out: Path) -> None:
    """Every seed folder that already exists belongs to this config (run before any seed trains)."""
    for seed in seeds:
        run = RunDir(out / f"seed_{seed}")
        if run.root.exists() and not run.root.is_dir():
            raise GankitError(f"{run.root} is a file, not a seed's run directory; choose another --out")
        if run.config.is_file():
            check_same_config(run, with_seed(cfg, seed))


def read_snapshot_metrics(run: RunDir) -> dict[int, dict[str, Any]]:
    path = run.root / SNAPSHOT_METRICS
    if not path.is_file():
        return {}
    try:
        return {int(k): v for k, v in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError):
        raise GankitError(f"{path} is not a study's snapshot record; remove it, or choose another --out") from None


def _write_snapshot_metrics(run: RunDir, records: dict[int, dict[str, Any]]) -> None:
    write_json(run.root / SNAPSHOT_METRICS, {str(k): v for k, v in sorted(records.items())})


def record_snapshot(view: Trainer) -> None:
    """The seed's metrics at this snapshot, kept on disk beside its run (a resumed study rebuilds its curves)."""
    records = read_snapshot_metrics(view.run)
    records[view.step] = snapshot_metrics(view)
    _write_snapshot_metrics(view.run, records)


def prepare_seed(cfg: Config, seed: int, out: Path, saved: dict[str, Any] | None = None) -> SeedRun:
    """Seed ``seed`` of ``cfg`` in out/seed_S: finished (checkpoint at train.steps and eval.json), resumed from its
    last checkpoint (or from ``saved``, the stack's checkpoint state of this seed when that is newer), or new
    (nothing there, or a seed stopped before its first checkpoint)."""
    cfg_s = with_seed(cfg, seed)
    run = RunDir(out / f"seed_{seed}")
    own = load_checkpoint(run.checkpoint) if run.checkpoint.is_file() else None
    if own is not None and int(own["step"]) >= cfg.train.steps and run.eval.is_file():
        try:
            return SeedRun(seed, run, result=json.loads(run.eval.read_text()))
        except ValueError:
            pass  # a torn eval.json: evaluate again below
    newer = saved is not None and (own is None or int(saved["step"]) > int(own["step"]))
    state, where = (saved, out.parent / STACK) if newer else (own, run.checkpoint)
    if state is not None:
        exp = experiment_from_state(cfg_s, state, where)
        step = int(state["step"])
        restore_rng(state, exp, step)
        check_eval_config(exp)
        trainer = Trainer(exp, run, step=step)
        trainer.best = state.get("best")
    else:
        exp = Experiment(cfg_s)  # seeds torch's RNG and builds the seed's weights, as `gankit train` does
        check_eval_config(exp)
        make_folder(run.root, "--out")
        dump_config(run.config, exp.cfg)
        trainer = Trainer(exp, run)
    # what came after the checkpoint is redone: its snapshots' metrics go, as LossTracker drops its losses
    kept = {k: v for k, v in read_snapshot_metrics(run).items() if k <= trainer.step}
    _write_snapshot_metrics(run, kept)
    return SeedRun(seed, run, trainer=trainer, rng=RngStates.current(trainer.exp.device))


class Progress:
    """Wall seconds a config's seeds have cost over every invocation of the study (out/CONFIG/progress.json)."""

    def __init__(self, out: Path) -> None:
        self.path = out / PROGRESS
        self.start = time.perf_counter()
        try:
            self.before = float(json.loads(self.path.read_text())["seconds"]) if self.path.is_file() else 0.0
        except (ValueError, KeyError, TypeError):
            self.before = 0.0  # a torn record: the time is only reported, never used to train

    @property
    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.start

    def save(self) -> None:
        write_json(self.path, {"seconds": round(self.seconds, 1)})


def train_seeds(cfg: Config, seeds: list[int], out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train ``cfg`` once per seed into out/seed_S, continuing whatever an earlier invocation left: finished seeds
    are read, stopped ones resume from their last checkpoint, new ones start. Seeds at one step train together as
    one stacked model. Returns each seed's final evaluation (in ``seeds`` order) and how it ran
    ({"batched": bool, "reason": str | None, "seconds": float, "trained": [seeds trained now]})."""
    check_seed_folders(cfg, seeds, out)
    make_folder(out, "--out")
    progress = Progress(out)
    stack = _read_stack(out)
    states = dict(zip(stack["seeds"], stack["states"])) if stack else {}
    runs = [prepare_seed(cfg, seed, out, states.get(seed)) for seed in seeds]
    todo = [r for r in runs if r.trainer is not None]
    reason = stack_blocker(todo[0].trainer.exp) if todo else stack_blocker(Experiment(cfg))
    for step in sorted({r.step for r in todo}):
        group = [r for r in todo if r.step == step]
        rngs = RngStates([r.rng for r in group], group[0].trainer.exp.device)
        views = [r.trainer for r in group]
        if reason is None:
            if stack and {"seeds": stack["seeds"], "step": stack["step"]} == _stack_key(group):
                rngs._set(stack["rng"])  # the shared penalty stream continues exactly
            trainer = StackedTrainer(stack_experiments([v.exp for v in views], rngs), views, rngs)
            trainer.on_checkpoint = lambda outer, st, g=group: _save_stack(out, g, outer, st, progress)
            results = trainer.train_all()
        else:  # one after another, each exactly `gankit train`
            results = []
            for s, view in enumerate(views):
                rngs.activate(s)
                results.append(_fit_with_snapshots(view))
                progress.save()
        for r, result in zip(group, results):
            r.result = result
        progress.save()
    info = {"batched": reason is None, "reason": reason, "seconds": progress.seconds,
            "trained": [r.seed for r in todo]}
    return [r.result for r in runs], info


def _stack_key(group: list[SeedRun]) -> dict[str, Any]:
    return {"seeds": [r.seed for r in group], "step": group[0].step}


def _read_stack(out: Path) -> dict[str, Any] | None:
    """The stacked run's last periodic checkpoint (None when there is none, or it is torn: then every seed
    resumes from its own checkpoint, and the shared stream goes on as it is, the same distribution)."""
    path = out / STACK
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, weights_only=True)
        return saved if {"seeds", "step", "rng", "states"} <= set(saved) else None
    except (RuntimeError, EOFError, OSError, TypeError, pickle.UnpicklingError):
        return None


def _save_stack(out: Path, group: list[SeedRun], outer: Tensor, states: list[dict[str, Any]],
                progress: Progress) -> None:
    """Written before the seeds' own checkpoints, atomically: the one record of where the whole stack was."""
    with atomic_path(out / STACK) as tmp:  # the views' step is the stack's step here (sync_views)
        torch.save({**_stack_key(group), "rng": outer, "states": states}, tmp)
    progress.save()


def _fit_with_snapshots(view: Trainer) -> dict[str, Any]:
    """view.fit(), recording each snapshot's metrics as the stacked trainer does."""
    original = view.snapshot

    def snapshot() -> None:
        original()
        record_snapshot(view)

    view.snapshot = snapshot  # type: ignore[method-assign]
    try:
        return view.fit()
    except TrainingDiverged as exc:
        raise TrainingDiverged(f"study {view.cfg.name}: seed {view.cfg.train.seed}: {exc}") from None
