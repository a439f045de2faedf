"""One training loop for every method: n_critic D steps, one G step, EMA, logging, snapshots, checkpoints.

The loop knows nothing about any particular method: the loss object says what D and G minimise, the
regularizers add penalties, perturb D's inputs or constrain D after its step (see regularizers.py).
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
from gankit.config import Config
from gankit.errors import ConfigError, GankitError, TrainingDiverged
from gankit.evaluation import TOY_BEST, best_scalar, check_metric_names, evaluate, scalars
from gankit.experiment import Experiment, restore
from gankit.io import write_json
from gankit.regularizers import DStepContext
from gankit.run import RunDir, dump_config, save_checkpoint, save_snapshot
from gankit.tracking import LossTracker
from gankit import viz


class Trainer:
    """Trains one run directory. Use ``Trainer.start`` for a new run and ``Trainer.resume`` to continue one."""

    def __init__(self, exp: Experiment, run: RunDir, step: int = 0) -> None:
        self.exp, self.run, self.step = exp, run, step
        self.cfg: Config = exp.cfg
        t = self.cfg.train
        self.batch_size, self.n_critic = t.batch_size, t.n_critic
        # Snapshot latents are fixed by the seed and drawn from their own generator, so they never shift
        # the training noise (resume equivalence depends on that).
        fixed = torch.Generator().manual_seed(t.seed + 1)
        n_fixed = self.cfg.eval.n_samples if exp.data.kind == "toy" else self.cfg.eval.grid_size
        self.fixed_z = torch.randn(n_fixed, self.cfg.model.z_dim, generator=fixed).to(exp.device)
        self.best: dict[str, Any] | None = None  # {"metric", "value", "step"} of checkpoints/best.pt
        self.tracker: LossTracker | None = None  # set while fit() runs; snapshots log to its TensorBoard

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def start(cls, cfg: Config, out_dir: Path) -> "Trainer":
        run = RunDir(out_dir)
        if run.holds_run():
            raise GankitError(f"{out_dir} already holds a run; continue it with --resume {out_dir} or choose another --out")
        exp = Experiment(cfg)  # every config error surfaces here, before anything is written
        check_eval_config(exp)
        run.root.mkdir(parents=True, exist_ok=True)
        dump_config(run.config, cfg)
        return cls(exp, run)

    @classmethod
    def resume(cls, run_dir: Path, overrides: list[str] | None = None) -> "Trainer":
        run = RunDir(run_dir)
        exp, state = restore(run.load_config(overrides), run.checkpoint)
        cfg = exp.cfg
        torch.set_rng_state(state["rng"]["cpu"])
        if exp.device.type == "cuda" and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        check_eval_config(exp)
        if overrides:
            dump_config(run.config, cfg)
        trainer = cls(exp, run, step=int(state["step"]))
        trainer.best = state.get("best")
        return trainer

    # -- one step of each player --------------------------------------------------------------------
    def _noise(self, n: int) -> Tensor:
        return torch.randn(n, self.cfg.model.z_dim, device=self.exp.device)

    def _perturb(self, x: Tensor) -> Tensor:
        for reg in self.exp.regularizers:
            x = reg.perturb(x, self.step)
        return x

    def _critic_pair(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        D = self.exp.d_forward
        if self.exp.joint_forward:
            out = D(torch.cat([real, fake]))
            return out[: len(real)], out[len(real):]
        return D(real), D(fake)

    def d_step(self, d_index: int) -> dict[str, Tensor]:
        exp = self.exp
        real = exp.data.sample(self.batch_size)
        if exp.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), exp.autocast():
            fake = exp.g_forward(self._noise(self.batch_size)).float()
        real, fake = self._perturb(real), self._perturb(fake)
        with exp.autocast():
            real_out, fake_out = self._critic_pair(real, fake)
        loss = exp.loss.d_loss(real_out.float(), fake_out.float())
        terms = {"d_loss": loss.detach()}
        ctx = DStepContext(exp.discriminator, real, fake, real_out, fake_out)
        total = loss
        for name, reg in zip(exp.regularizer_names, exp.regularizers):
            if reg.weight > 0 and reg.is_due(d_index):
                penalty = reg.penalty(ctx)
                if penalty is not None:
                    total = total + (reg.weight * reg.every) * penalty
                    terms[name] = penalty.detach()
        exp.opt_d.zero_grad(set_to_none=True)
        total.backward()
        exp.opt_d.step()
        for reg in exp.regularizers:
            reg.after_d_step(exp.discriminator)
        return terms

    def g_step(self) -> Tensor:
        exp = self.exp
        exp.discriminator.requires_grad_(False)  # G's backward needs no gradients for D's weights
        with exp.autocast():
            fake = self._perturb(exp.g_forward(self._noise(self.batch_size)).float())
            fake_out = exp.d_forward(fake)
        loss = exp.loss.g_loss(fake_out.float())
        exp.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        exp.opt_g.step()
        exp.discriminator.requires_grad_(True)
        if exp.ema is not None:
            exp.ema.update(follow_exactly=self.step < self.cfg.train.ema.start)
        for sched in exp.schedulers:
            sched.step()
        return loss.detach()

    # -- the loop -----------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        t = self.cfg.train
        exp = self.exp
        tracker = LossTracker(self.run.metrics, self.run.tensorboard if t.tensorboard else None, self.step, exp.device)
        self.tracker = tracker
        snapshot_steps = set(t.snapshot_steps) | {t.steps}
        bar = tqdm(total=t.steps, initial=self.step, disable=not t.progress, desc=self.cfg.name,
                   unit="step", dynamic_ncols=True, file=sys.stderr)
        exp.generator.train()
        exp.discriminator.train()
        try:
            while self.step < t.steps:
                for i in range(self.n_critic):
                    terms = self.d_step(self.step * self.n_critic + i)
                    tracker.add(terms)
                g_loss = self.g_step()
                tracker.add({"g_loss": g_loss})
                tracker.check_finite(self.step + 1, terms["d_loss"] + g_loss)
                self.step += 1
                bar.update(1)
                checkpoint_due = self.step % t.checkpoint_every == 0 or self.step == t.steps
                if self.step % t.log_every == 0 or checkpoint_due:
                    self._flush(tracker, bar)
                if self.step in snapshot_steps or (t.sample_every and self.step % t.sample_every == 0):
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

    @torch.no_grad()
    def sample(self, z: Tensor | None = None) -> Tensor:
        sampler = self.exp.sampler
        was_training = sampler.training
        sampler.eval()
        with self.exp.autocast():
            out = sampler(self.fixed_z if z is None else z).float()
        sampler.train(was_training)
        return out

    def snapshot(self) -> None:
        """Samples from the fixed latents: an .npz of points for toy data, a PNG grid for images."""
        if self.exp.data.kind == "toy":
            save_snapshot(self.run.snapshot(self.step), self.sample())
            return
        grid = viz.image_grid(self.sample())
        viz.save_png(grid, self.run.grid(self.step))
        writer = self.tracker.writer if self.tracker is not None else None
        if writer is not None:
            writer.add_image("samples", grid, self.step)

    def save_checkpoint(self) -> None:
        save_checkpoint(self.run.checkpoint, self._state())

    def _state(self) -> dict[str, Any]:
        rng = {"cpu": torch.get_rng_state()}
        if self.exp.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"step": self.step, "config": self.cfg.to_dict(), "rng": rng, "best": self.best,
                **self.exp.state_dict()}

    def evaluate(self, tracker: LossTracker) -> dict[str, Any]:
        """Evaluate on eval.n_samples fresh samples, log the results, and keep checkpoints/best.pt."""
        e = self.cfg.eval
        results = evaluate(self.exp, self.step, e.n_samples, seed=self.cfg.train.seed + 2, metrics=e.metrics,
                           split=e.split, inception_weights=e.inception_weights, n_name="eval.n_samples")
        tracker.log_eval(self.step, results, scalars(results))
        if e.best is not None:
            value, higher = best_scalar(results, e.best)
            if self.best is None or (value > self.best["value"] if higher else value < self.best["value"]):
                self.best = {"metric": e.best, "value": value, "step": self.step}
                save_checkpoint(self.run.best_checkpoint, self._state())
        return results

    def finish(self, tracker: LossTracker) -> dict[str, Any]:
        """Final evaluation and figures: eval.json, samples/strip.png, loss.png."""
        results = self.evaluate(tracker)
        if self.best is not None:
            results["best"] = self.best
        write_json(self.run.eval, results)
        if self.exp.data.kind == "toy":
            real = self.exp.data.real_batch(self.cfg.eval.n_samples).cpu().numpy()
            snaps = [(step, np.load(path)["samples"]) for step, path in self.run.snapshots()]
            viz.toy_strip(snaps, real, self.run.samples / "strip.png", title=self.cfg.name)
        else:
            viz.progress_gif([path for _, path in self.run.grids()], self.run.samples / "progress.gif")
        viz.loss_curves(self.run.metrics, self.run.root / "loss.png", title=self.cfg.name)
        return results


def check_eval_config(exp: Experiment) -> None:
    """eval.metrics and eval.best must make sense for the run's data, before anything is written."""
    e = exp.cfg.eval
    try:
        names = check_metric_names(exp, e.metrics)
    except GankitError as exc:
        raise ConfigError(f"eval.metrics: {exc}") from None
    if names:
        from gankit.metrics import check_sample_count, resolve_reference

        try:
            check_sample_count(names, e.n_samples, "eval.n_samples")
            resolve_reference(exp.cfg.data, e.split)
        except GankitError as exc:
            raise ConfigError(str(exc).replace("--ref", "eval.split")) from None
    valid = list(TOY_BEST) if exp.data.kind == "toy" else names
    if e.best is not None and e.best not in valid:
        raise ConfigError(f"eval.best '{e.best}' must be one of {', '.join(valid) or 'the eval.metrics (none given)'}")


def train(config: str | None = None, overrides: list[str] | None = None, out_dir: Path | None = None,
          resume: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The Python API behind `gankit train`. Returns the run directory and its final evaluation."""
    if resume is not None:
        trainer = Trainer.resume(resume, overrides)
    else:
        cfg = config_mod.load(config, overrides)
        trainer = Trainer.start(cfg, out_dir or default_out_dir(cfg.name))
    return trainer.run.root, trainer.fit()


def default_out_dir(name: str) -> Path:
    import time

    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
