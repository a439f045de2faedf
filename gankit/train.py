"""One training loop for every method: n_critic D steps, one G step (g_updates G updates, then the own step of
each ``phase: own`` term), EMA, logging, snapshots, checkpoints.

The loop knows nothing about any particular method: the loss object says what D and G minimise, the
regularizers add penalties or constrain D after its step (see regularizers.py), and the augmentations change
every input D sees (gankit/augment/). A term may give D extra inputs (VEEGAN's codes): they pass through
``run_d`` as opaque keyword arguments.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from gankit import config as config_mod
from gankit import compat, distributed
from gankit.config import Config
from gankit.errors import ConfigError, GankitError, TrainingDiverged
from gankit.evaluation import best_scalar, check_metric_names, evaluate, generate_from, scalars
from gankit.experiment import Experiment, load_run
from gankit.io import make_folder, write_json
from gankit.models.conditional import DOutput, as_output
from gankit.objective import DInputs, Player, StepContext, Term, logged_values, split_value
from gankit.regularizers import DStepContext, Regularizer
from gankit.run import RunDir, dump_config, save_checkpoint
from gankit.tracking import LossTracker
from gankit import viz


class Trainer:
    """Trains one run directory. Use ``Trainer.start`` for a new run and ``Trainer.resume`` to continue one."""

    def __init__(self, exp: Experiment, run: RunDir, step: int = 0) -> None:
        self.exp, self.run, self.step = exp, run, step
        self.cfg: Config = exp.cfg
        t = self.cfg.train
        # train.batch_size is the global batch: in a data-parallel run each rank draws its share.
        ranks = distributed.world_size()
        self.batch_size, self.n_critic = t.batch_size // ranks, t.n_critic
        self.g_batch_size = (t.g_batch_size or t.batch_size) // ranks
        # Snapshot latents are fixed by the seed and drawn from their own generator, so they never shift
        # the training noise (resume equivalence depends on that). A conditional grid has one row per class.
        self.fixed = exp.domain.fixed_latents(exp, torch.Generator().manual_seed(t.seed + 1))
        self.best: dict[str, Any] | None = None  # {"metric", "value", "step"} of checkpoints/best.pt
        self._held_real: tuple[Tensor, Tensor | None] | None = None  # train.critic_real_batch: per_g_step
        self.tracker: LossTracker | None = None  # set while fit() runs; snapshots log to its TensorBoard

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def start(cls, cfg: Config, out_dir: Path) -> "Trainer":
        run = RunDir(out_dir)

        def check_out() -> None:
            if run.root.exists() and not run.root.is_dir():
                raise GankitError(f"--out {out_dir} is a file; give a directory for the run")
            if run.holds_run():
                raise GankitError(f"{out_dir} already holds a run; continue it with --resume {out_dir} or choose "
                                  "another --out")

        def create() -> None:
            check_out()
            make_folder(run.root, "--out")
            dump_config(run.config, exp.cfg)  # exp.cfg: with what auto resolved to where it was measured

        check_out()  # every rank, before any rank can write (Experiment's first collective comes after)
        exp = Experiment(cfg)  # every config error surfaces here, before anything is written
        check_eval_config(exp)
        check_data_parallel(exp)
        distributed.on_main(create)  # rank 0 writes the run directory
        seed_rank_stream(cfg.train.seed, step=0)
        return cls(exp, run)

    @classmethod
    def resume(cls, run_dir: Path, overrides: list[str] | None = None) -> "Trainer":
        loaded = load_run(run_dir, overrides=overrides)
        exp, state = loaded.exp, loaded.state
        restore_rng(state, exp, loaded.step)
        check_eval_config(exp)
        check_data_parallel(exp)
        if overrides:
            distributed.on_main(lambda: dump_config(loaded.run.config, exp.cfg))
        trainer = cls(exp, loaded.run, step=loaded.step)
        trainer.best = state.get("best")
        return trainer

    # -- one D call, one step of each player ----------------------------------------------------------
    def augment(self, x: Tensor) -> Tensor:
        """Every augmentation of the config, in order: applied to each input D sees (real, generated, the points
        the penalties differentiate at), in every phase."""
        for aug in self.exp.augmentations:
            x = aug(x, self.step)
        return x

    def run_d(self, x: Tensor, y: Tensor | None = None, extra: dict[str, Tensor] | None = None) -> DOutput:
        """The one way D is called in training: augmentations, then D (the forward pass runs in the caller's
        autocast region). ``extra``: D's extra inputs that a term gives (``Term.d_inputs``); None for most methods."""
        return as_output(self.exp.d_forward(self.augment(x), y, **(extra or {})))

    def _critic(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """D's adversarial score of x (with labels y), through the same augmentations: what the penalties
        differentiate (R1 of augmented data is taken with respect to the data before augmentation, as in
        stylegan2-ada's loss). Penalties call the eager D: a compiled graph has no double backward."""
        return as_output(self.exp.discriminator(self.augment(x), y)).logit

    def _critic_pair(self, real: Tensor, real_y: Tensor | None, fake: Tensor, fake_y: Tensor | None,
                     inputs: DInputs | None = None) -> tuple[DOutput, DOutput]:
        real_extra, fake_extra = (inputs.real, inputs.fake) if inputs is not None else (None, None)
        if self.exp.joint_forward:  # one D call on [real; fake]: half the launches (no batch norm to mix)
            join = (layout := self.exp.batch_layout).join
            real, fake = self.augment(real), self.augment(fake)
            y = join(real_y, fake_y) if real_y is not None and fake_y is not None else None
            extra = {k: join(real_extra[k], fake_extra[k]) for k in fake_extra} if fake_extra else {}
            return as_output(self.exp.d_forward(join(real, fake), y, **extra)).split(len(real), layout)
        return self.run_d(real, real_y, real_extra), self.run_d(fake, fake_y, fake_extra)

    def _step(self, player: Player, loss: Tensor) -> None:
        """Backward through ``loss`` and step every optimiser of ``player``'s networks."""
        self._step_players({player: 1.0}, loss)

    def _step_players(self, weights: dict[Player, float], loss: Tensor) -> None:
        """One backward through ``loss``, then each player's networks step on ``weight`` times their gradient (a
        term's own step trains G and D on one graph with a weight each). A player of weight 0 must be frozen by the
        caller: it is not stepped."""
        exp = self.exp
        names = [name for player, w in weights.items() if w > 0 for name in exp.trained_with(player)]
        for name in names:
            exp.optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        scaled = [(p, w) for player, w in weights.items() if w not in (0.0, 1.0)
                  for name in exp.trained_with(player) for p in exp.networks[name].parameters() if p.grad is not None]
        for p, w in scaled:
            p.grad.mul_(w)
        # Data-parallel runs: the global batch's gradient, penalties included (autograd.grad's double backward
        # has reached the weights by now); only the stepping players' networks, so D is never reduced in G's step.
        distributed.reduce_gradients(p for name in names for p in exp.networks[name].parameters())
        for name in names:
            exp.optimizers[name].step()

    def _real_batch(self, n: int) -> tuple[Tensor, Tensor | None]:
        exp = self.exp
        real, real_y = exp.data.sample(n)
        if not exp.conditional:
            real_y = None  # labelled data in an unconditional run: the labels are not used
        if exp.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        return real, real_y

    def d_step(self, d_index: int) -> dict[str, Tensor]:
        """D's phase: one D step (d_index counts D steps over the run, from 0)."""
        exp = self.exp
        # per_g_step: drawn at each G step's first D step, which is also where every resume starts, so a
        # resumed run draws what an uninterrupted one draws
        if self.cfg.train.critic_real_batch == "fresh" or d_index % self.n_critic == 0 or self._held_real is None:
            self._held_real = self._real_batch(self.batch_size)
        real, real_y = self._held_real
        z, fake_y = exp.prior.sample(self.batch_size, exp.device)
        if fake_y is not None and self.cfg.train.d_fake_classes == "real":
            fake_y = real_y
        with torch.no_grad(), exp.autocast():
            fake = exp.g_forward(z, fake_y).float()
        inputs = exp.objective.d_inputs(z, real, exp.networks, exp.autocast)  # None unless a term gives D inputs
        with exp.autocast():
            real_out, fake_out = self._critic_pair(real, real_y, fake, fake_y, inputs)
        for aug in exp.augmentations:
            aug.observe(real_out.logit)
        ctx = StepContext(fake, fake_y, fake_out.float(), z, exp.networks, real, real_y, real_out.float(),
                          exp.autocast, inputs, phase="D", d_index=d_index, n_critic=self.n_critic)
        total, terms = exp.objective.d_loss(ctx)
        pctx = DStepContext(self._critic, real, fake, ctx.real_out.logit, ctx.fake_out.logit, real_y, fake_y)
        # Lazy penalties due now: in D's main step (joint), or in a step of their own right after it (separate).
        separate = exp.optim_ratio.get("discriminator", 1.0) != 1.0
        due = [(name, reg) for name, reg in zip(exp.regularizer_names, exp.regularizers)
               if reg.weight > 0 and reg.is_due(d_index)]
        total = self._add_penalties(total, terms, pctx, [(n, r) for n, r in due if not (separate and r.every > 1)])
        self._step("discriminator", total)
        for reg in exp.regularizers:
            reg.after_d_step(exp.discriminator)
        lazy = [(n, r) for n, r in due if separate and r.every > 1]
        if lazy:  # stylegan2-ada's Dreg phase: the penalties alone, at D's updated weights
            self._step("discriminator", self._add_penalties(None, terms, pctx, lazy))
            for reg in exp.regularizers:
                reg.after_d_step(exp.discriminator)
        return terms

    @staticmethod
    def _add_penalties(total: Tensor | None, terms: dict[str, Tensor], pctx: DStepContext,
                       regs: list[tuple[str, Regularizer]]) -> Tensor | None:
        """total + sum weight * every * penalty over ``regs`` (lazy regularization keeps the average strength)."""
        for name, reg in regs:
            penalty = reg.penalty(pctx)
            if penalty is not None:
                weighted = (reg.weight * reg.every) * penalty
                total = weighted if total is None else total + weighted
                terms[name] = penalty.detach()
        return total

    def g_step(self, latents: tuple[Tensor, Tensor | None] | None = None) -> dict[str, Tensor]:
        """One G update on ``latents`` (z and its classes; drawn from the prior when None). A loss that compares
        with real data (RpGAN, RaGAN) gets D's outputs on a real batch of its own; D is frozen here, so that batch
        is scored without a graph."""
        exp = self.exp
        self._freeze(["discriminator"])  # G's backward needs no gradients for D's weights
        z, fake_y = latents if latents is not None else exp.prior.sample(self.g_batch_size, exp.device)
        real_out = real = real_y = None
        if exp.objective.loss.needs_real_in_g:
            real, real_y = self._real_batch(self.g_batch_size)
            with torch.no_grad(), exp.autocast():
                real_out = self.run_d(real, real_y).float()
        inputs = exp.objective.d_inputs(z, None, exp.networks, exp.autocast)
        with exp.autocast():
            fake = exp.g_forward(z, fake_y).float()
            fake_out = self.run_d(fake, fake_y, inputs.fake if inputs is not None else None)
        loss, terms = exp.objective.g_loss(StepContext(fake, fake_y, fake_out.float(), z, exp.networks, real, real_y,
                                                       real_out, autocast=exp.autocast, d_inputs=inputs, phase="G"))
        self._step("generator", loss)
        self._freeze(["discriminator"], frozen=False)
        self._follow_g()
        return terms

    def _freeze(self, players: list[Player], frozen: bool = True) -> None:
        """Turn the weight gradients of ``players``' networks off (or back on)."""
        for player in players:
            for name in self.exp.trained_with(player):
                self.exp.networks[name].requires_grad_(not frozen)

    def _follow_g(self) -> None:
        """After every G update: the EMA averages G's weights as its optimiser leaves them."""
        if self.exp.ema is not None:
            self.exp.ema.update(follow_exactly=self.step < self.cfg.train.ema.start)

    def own_step(self, name: str, term: Term) -> dict[str, Tensor]:
        """A term's own step (``phase: own``; InfoGAN's Q step as the reference runs it): fresh latents, G and D
        in one graph through the one D call, G steps on ``weight * value`` and D's networks on ``d_weight * value``.
        Logged as the term's name (and ``<name>_<part>``)."""
        exp = self.exp
        weights: dict[Player, float] = {"generator": term.weight, "discriminator": term.d_weight}
        idle = [player for player, w in weights.items() if w == 0]
        self._freeze(idle)
        z, fake_y = exp.prior.sample(self.g_batch_size, exp.device)
        with exp.autocast():
            fake = exp.g_forward(z, fake_y).float()
            fake_out = self.run_d(fake, fake_y)
        value, parts = split_value(term.own_term(StepContext(fake, fake_y, fake_out.float(), z, exp.networks,
                                                             autocast=exp.autocast, phase="own")))
        self._step_players(weights, value)
        self._freeze(idle, frozen=False)
        if term.weight > 0:
            self._follow_g()
        return logged_values(name, value, parts)

    def train_step(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """One G step of training, the phase schedule every caller shares (`gankit train`, `gankit study`, the
        benchmarks, `gankit lab`): n_critic D phases, then G's phase. Returns the last D step's and the G step's
        logged values; ``self.step`` counts the G step."""
        if self.cfg.train.updates == "simultaneous":
            return self.simultaneous_phase()
        d_terms: dict[str, Tensor] = {}
        for i in range(self.n_critic):
            d_terms = self.d_phase(i)
        return d_terms, self.g_phase()

    def d_phase(self, i: int) -> dict[str, Tensor]:
        """The i-th D phase of the current G step (the scheduled hyper-parameters are set at the first). The lab
        steps phases one at a time; i >= n_critic is an extra D step off the schedule."""
        if i == 0:
            self.exp.schedules.apply(self.step)
        d_terms = self.d_step(self.step * self.n_critic + i)
        if self.tracker is not None:
            self.tracker.add(d_terms)
        return d_terms

    def g_phase(self) -> dict[str, Tensor]:
        """G's phase, which ends the G step: train.g_updates G updates, all on the latents the first one draws,
        then the own step of each ``phase: own`` term (returns the last G update's logged values and theirs)."""
        updates = self.cfg.train.g_updates
        # One draw shared by every update; a single update draws its own in g_step, as callers of g_step expect.
        latents = self.exp.prior.sample(self.g_batch_size, self.exp.device) if updates > 1 else None
        for _ in range(updates):
            g_terms = self.g_step(latents)
        for name, term in self.exp.objective.own_phase:  # terms with a step of their own (InfoGAN's Q step)
            g_terms = {**g_terms, **self.own_step(name, term)}
        for sched in self.exp.schedulers.values():  # the LR schedules count G steps, whatever g_updates is
            sched.step()
        if self.tracker is not None:
            self.tracker.add(g_terms)
        self.step += 1
        return g_terms

    def simultaneous_phase(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``train.updates: simultaneous``, the whole G step: one forward pass of G and D on a real batch and a
        batch of fakes; D's loss (with its due penalties) and G's loss are differentiated at the same weights, each
        only into its own player's networks, and then every optimiser steps (PacGAN's and ALI's code: one Theano
        GradientDescent over both losses). Then the own step of each ``phase: own`` term, as in ``g_phase``."""
        exp = self.exp
        self.exp.schedules.apply(self.step)
        real, real_y = self._real_batch(self.batch_size)
        z, fake_y = exp.prior.sample(self.batch_size, exp.device)
        if fake_y is not None and self.cfg.train.d_fake_classes == "real":
            fake_y = real_y
        with exp.autocast():
            fake = exp.g_forward(z, fake_y).float()
            real_out, fake_out = self._critic_pair(real, real_y, fake, fake_y)
        for aug in exp.augmentations:
            aug.observe(real_out.logit)
        real_out, fake_out = real_out.float(), fake_out.float()
        d_ctx = StepContext(fake, fake_y, fake_out, z, exp.networks, real, real_y, real_out, exp.autocast,
                            phase="D", d_index=self.step, n_critic=1)
        d_total, d_terms = exp.objective.d_loss(d_ctx)
        # The penalties see the fakes as data (no path back into G), as in D's step of the alternating schedule.
        pctx = DStepContext(self._critic, real, fake.detach(), real_out.logit, fake_out.logit, real_y, fake_y)
        due = [(name, reg) for name, reg in zip(exp.regularizer_names, exp.regularizers)
               if reg.weight > 0 and reg.is_due(self.step)]
        d_total = self._add_penalties(d_total, d_terms, pctx, due)
        g_ctx = StepContext(fake, fake_y, fake_out, z, exp.networks, real, real_y, real_out, exp.autocast, phase="G")
        g_total, g_terms = exp.objective.g_loss(g_ctx)
        players = {player: [name for name in exp.trained_with(player)] for player in ("discriminator", "generator")}
        for names in players.values():
            for name in names:
                exp.optimizers[name].zero_grad(set_to_none=True)
        # Each loss into its own player's weights only: backward(inputs=...) leaves the other player's .grad alone.
        for (player, names), loss in zip(players.items(), (d_total, g_total)):
            params = [p for name in names for p in exp.networks[name].parameters() if p.requires_grad]
            loss.backward(inputs=params, retain_graph=player == "discriminator")
        every = [p for names in players.values() for name in names for p in exp.networks[name].parameters()]
        distributed.reduce_gradients(every)
        for names in players.values():
            for name in names:
                exp.optimizers[name].step()
        for reg in exp.regularizers:
            reg.after_d_step(exp.discriminator)
        self._follow_g()
        for name, term in exp.objective.own_phase:
            g_terms = {**g_terms, **self.own_step(name, term)}
        for sched in exp.schedulers.values():
            sched.step()
        if self.tracker is not None:
            self.tracker.add(d_terms)
            self.tracker.add(g_terms)
        self.step += 1
        return d_terms, g_terms

    # -- the loop -----------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        t = self.cfg.train
        exp = self.exp
        main = distributed.is_main()
        tracker = LossTracker(self.run.metrics, self.run.tensorboard if t.tensorboard else None, self.step, exp.device,
                              write=main)
        self.tracker = tracker
        snapshot_steps = set(t.snapshot_steps) | {t.steps}
        bar = tqdm(total=t.steps, initial=self.step, disable=not (t.progress and main), desc=self.cfg.name,
                   unit="step", dynamic_ncols=True, file=sys.stderr)
        for net in exp.networks.values():
            net.train()
        try:
            while self.step < t.steps:
                terms, g_terms = self.train_step()
                # Every logged value (adversarial losses, penalties, method terms) must stay finite.
                tracker.check_finite(self.step, torch.stack([*terms.values(), *g_terms.values()]).sum())
                bar.update(1)
                checkpoint_due = self.step % t.checkpoint_every == 0 or self.step == t.steps
                if self.step % t.log_every == 0 or checkpoint_due:
                    self._flush(tracker, bar)
                if main and (self.step in snapshot_steps or (t.sample_every and self.step % t.sample_every == 0)):
                    self.snapshot()
                e = self.cfg.eval
                if e.every and self.step % e.every == 0 and self.step < t.steps:
                    self.evaluate(tracker)
                if checkpoint_due:
                    self.save_checkpoint()
            bar.close()
            return self.finish(tracker)
        finally:
            bar.close()
            tracker.close()

    def _flush(self, tracker: LossTracker, bar: tqdm) -> None:
        lrs = {"lr_g": self.exp.opt_g.param_groups[0]["lr"], "lr_d": self.exp.opt_d.param_groups[0]["lr"]}
        record = tracker.flush(self.step, lrs)
        if "bad_step" in record:
            last = self.run.checkpoint
            kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint had been saved yet"
            raise TrainingDiverged(
                f"training diverged: a loss became NaN or infinite at step {record['bad_step']}; {kept}"
            )
        bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k.endswith("loss")}, refresh=False)

    def sample(self) -> Tensor:
        """Samples from the fixed snapshot latents."""
        return generate_from(self.exp, *self.fixed)

    def snapshot(self) -> None:
        """Samples from the fixed latents: an .npz of points for toy data, a PNG grid for images."""
        self.exp.domain.snapshot(self, self.sample())

    def save_checkpoint(self, path: Path | None = None) -> None:
        """Every rank calls this (the RNG states are gathered); rank 0 writes."""
        state = self._state()
        if distributed.is_main():
            save_checkpoint(path or self.run.checkpoint, state)

    def _sync_buffers(self) -> None:
        """Data-parallel runs: every rank's networks equal before they are sampled or saved (the batch-norm
        running statistics are each rank's own until then; see distributed.average_buffers)."""
        modules = list(self.exp.networks.values()) + ([self.exp.ema.model] if self.exp.ema is not None else [])
        distributed.average_buffers(modules)

    def _state(self) -> dict[str, Any]:
        self._sync_buffers()
        rng = {"cpu": torch.get_rng_state()}
        ranks = distributed.world_size()
        if self.exp.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all() if ranks == 1 else [torch.cuda.get_rng_state(self.exp.device)]
        extra = {"rng_ranks": distributed.gather_objects(rng)} if ranks > 1 else {}
        return {"step": self.step, "config": self.cfg.to_dict(), "rng": rng, "best": self.best,
                **extra, **self.exp.state_dict()}

    def evaluate(self, tracker: LossTracker) -> dict[str, Any]:
        """Evaluate on eval.n_samples fresh samples, log the results, and keep checkpoints/best.pt."""
        e = self.cfg.eval
        self._sync_buffers()
        results = evaluate(self.exp, self.step, e.n_samples, seed=self.cfg.train.seed + 2, metrics=e.metrics,
                           split=e.split, inception_weights=e.inception_weights, n_name="eval.n_samples")
        tracker.log_eval(self.step, results, scalars(results))
        if e.best is not None:
            value, higher = best_scalar(results, e.best)
            if self.best is None or (value > self.best["value"] if higher else value < self.best["value"]):
                self.best = {"metric": e.best, "value": value, "step": self.step}
                self.save_checkpoint(self.run.best_checkpoint)
        return results

    def finish(self, tracker: LossTracker) -> dict[str, Any]:
        """Final evaluation and figures: eval.json, samples/strip.png, loss.png."""
        results = self.evaluate(tracker)
        if self.best is not None:
            results["best"] = self.best
            self.save_checkpoint()  # last.pt carries the final evaluation's best (a resume compares against it)
        if not distributed.is_main():
            return results
        write_json(self.run.eval, results)
        self.exp.domain.final_figures(self)
        viz.loss_curves(self.run.metrics, self.run.root / "loss.png", title=self.cfg.name)
        return results


def check_data_parallel(exp: Experiment) -> None:
    compat.batches(exp.cfg, distributed.world_size())


def rank_stream_seed(seed: int, rank: int, step: int) -> int:
    """The seed of rank ``rank``'s training noise from G step ``step`` on (a new run: step 0)."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


def seed_rank_stream(seed: int, step: int) -> None:
    """Give each rank its own noise stream (data indices, latents, penalties' draws). Rank 0 keeps the stream of
    the seed at a new run's start, so one process under a launcher trains exactly as without one."""
    rank = distributed.rank()
    if distributed.world_size() > 1 and (rank > 0 or step > 0):
        torch.manual_seed(rank_stream_seed(seed, rank, step))


def restore_rng(state: dict[str, Any], exp: Experiment, step: int) -> None:
    """Resume each rank's noise stream: exactly, when the run resumes with as many processes as it was saved
    with; otherwise each rank starts a new stream, fixed by (seed, step, rank)."""
    ranks = distributed.world_size()
    saved = state.get("rng_ranks") or [state["rng"]]
    if len(saved) != ranks:
        seed_rank_stream(exp.cfg.train.seed, step)
        return
    own = saved[distributed.rank()]
    torch.set_rng_state(own["cpu"])
    if exp.device.type == "cuda" and own.get("cuda"):
        if ranks == 1:
            torch.cuda.set_rng_state_all(own["cuda"])
        else:
            torch.cuda.set_rng_state(own["cuda"][0], exp.device)


def check_eval_config(exp: Experiment) -> None:
    """eval.metrics and eval.best must make sense for the run's data, before anything is written."""
    e = exp.cfg.eval
    try:
        names = check_metric_names(exp, e.metrics)
    except GankitError as exc:
        raise ConfigError(f"eval.metrics: {exc}") from None
    if names:
        from gankit.metrics import check_sample_count, get_metric, resolve_reference

        try:
            samples = [n for n in names if get_metric(n).scope == "samples"]
            check_sample_count(samples, e.n_samples, "eval.n_samples")
            resolve_reference(exp.cfg.data, e.split)
        except GankitError as exc:
            raise ConfigError(str(exc).replace("--ref", "eval.split")) from None
    valid = exp.domain.best_metrics(exp, names)
    if e.best is not None and e.best not in valid:
        raise ConfigError(f"eval.best '{e.best}' must be one of {', '.join(valid) or 'the eval.metrics (none given)'}")


MAIN_JOB = "main"  # the shipped config `gankit train` runs without a CONFIG (gankit/configs/main.yaml)


def train(config: str | None = None, overrides: list[str] | None = None, out_dir: Path | None = None,
          resume: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The Python API behind `gankit train` (no config: the main job). Returns the run directory and its final
    evaluation."""
    if resume is not None:
        trainer = Trainer.resume(resume, overrides)
    else:
        cfg = config_mod.load(config or MAIN_JOB, overrides)
        trainer = Trainer.start(cfg, out_dir or default_out_dir(cfg.name))
    return trainer.run.root, trainer.fit()


def default_out_dir(name: str) -> Path:
    import time

    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
