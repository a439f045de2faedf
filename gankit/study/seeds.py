"""Train N seeds of one config at once, as one batched model, and leave N ordinary run directories.

``train_seeds(cfg, seeds, out)`` builds one ``Experiment`` per seed (so each seed's initial weights and RNG
state are exactly those of `gankit train CONFIG train.seed=S`), stacks their networks into ``SeedStack``s,
and runs the ordinary training loop (``Trainer.d_step`` / ``g_step``) on the stack. At each snapshot step, and
at the end, the stacked weights are copied back into the per-seed experiments, which write their snapshots,
evaluation, figures and checkpoint with the same code as a single run: ``out/seed_S`` can be sampled,
evaluated and resumed like any run.

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
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from collections.abc import Callable

from torch import Tensor

from gankit.config import Config
from gankit.errors import TrainingDiverged
from gankit.losses import AdversarialLoss
from gankit.evaluation import evaluate, scalars
from gankit.experiment import Experiment
from gankit.io import make_folder
from gankit.optim import EMA
from gankit.run import RunDir, dump_config
from gankit.batch_layout import SeedLayout
from gankit.study.stack import RngStates, SeedData, SeedPrior, SeedStack
from gankit.tracking import LossTracker
from gankit.compat import stack_blocker
from gankit.train import Trainer, check_eval_config

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
        is left as it was."""
        self.sync_views(with_optimizers=True)
        outer = self.rngs.current(self.exp.device)
        for s, view in enumerate(self.views):
            self.rngs.activate(s)
            view.save_checkpoint()
        self.rngs._set(outer)

    def train_all(self, on_snapshot: Any = None) -> list[dict[str, Any]]:
        """Train to train.steps; at each snapshot step call ``on_snapshot(step, per-seed metrics)``. Returns each
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
            self._train_all(bar, snapshot_steps, on_snapshot)
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

    def _train_all(self, bar: tqdm, snapshot_steps: set[int], on_snapshot: Any) -> None:
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
                metrics = []
                for view in self.views:
                    view.snapshot()
                    metrics.append(snapshot_metrics(view))
                if on_snapshot is not None:
                    on_snapshot(self.step, metrics)
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


def stack_experiments(exps: list[Experiment], rngs: RngStates) -> Experiment:
    """One Experiment whose networks, optimisers, data and prior span every seed."""
    base = exps[0]
    stacked = copy.copy(base)
    stacked.networks = {name: SeedStack([e.networks[name] for e in exps]).to(base.device) for name in base.networks}
    stacked.optimizers = {name: stacked.build_optimizer(name, net.parameters()) for name, net in stacked.networks.items()}
    stacked.schedulers = stacked.build_schedulers()
    stacked.ema = EMA(stacked.networks["generator"], base.cfg.train.ema.decay) if base.ema is not None else None
    stacked.data = SeedData(base.data, rngs)
    stacked.prior = SeedPrior(base.prior, rngs)
    stacked.g_forward = stacked.networks["generator"]
    stacked.d_forward = stacked.networks["discriminator"]
    stacked.batch_layout = SeedLayout(len(exps))  # D's joint [real; fake] call joins per seed
    stacked.channels_last = False
    return stacked


def train_seeds(cfg: Config, seeds: list[int], out: Path, on_snapshot: Any = None,
                progress: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train ``cfg`` once per seed into out/seed_S. Returns each seed's final evaluation and how it ran
    ({"batched": bool, "reason": str | None, "seconds": float})."""
    start = time.perf_counter()
    views: list[Trainer] = []
    states: list[torch.Tensor] = []
    for seed in seeds:
        cfg_s = with_seed(cfg, seed)
        exp = Experiment(cfg_s)  # seeds torch's RNG and builds the seed's weights, as `gankit train` does
        states.append(RngStates.current(exp.device))
        check_eval_config(exp)
        run = RunDir(out / f"seed_{seed}")
        if run.holds_run():
            from gankit.errors import GankitError

            raise GankitError(f"{run.root} already holds a run; choose another --out")
        make_folder(run.root, "--out")
        dump_config(run.config, cfg_s)
        views.append(Trainer(exp, run))
    rngs = RngStates(states, views[0].exp.device)
    reason = stack_blocker(views[0].exp)
    if reason is None:
        trainer = StackedTrainer(stack_experiments([v.exp for v in views], rngs), views, rngs)
        results = trainer.train_all(on_snapshot)
    else:  # one after another, each exactly `gankit train`
        results = []
        for s, view in enumerate(views):
            rngs.activate(s)
            results.append(_fit_with_snapshots(view, on_snapshot))
    return results, {"batched": reason is None, "reason": reason, "seconds": time.perf_counter() - start}


def _fit_with_snapshots(view: Trainer, on_snapshot: Any) -> dict[str, Any]:
    """view.fit(), reporting each snapshot's metrics as the stacked trainer does."""
    original = view.snapshot

    def snapshot() -> None:
        original()
        if on_snapshot is not None:
            on_snapshot(view.step, [snapshot_metrics(view)])

    view.snapshot = snapshot  # type: ignore[method-assign]
    try:
        return view.fit()
    except TrainingDiverged as exc:
        raise TrainingDiverged(f"study {view.cfg.name}: seed {view.cfg.train.seed}: {exc}") from None
