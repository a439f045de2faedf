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
from gankit.errors import GankitError, TrainingDiverged
from gankit.experiment import Experiment
from gankit.io import write_json
from gankit.regularizers import DStepContext
from gankit.run import RunDir, dump_config, load_checkpoint, save_checkpoint, save_snapshot
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
        self.fixed_z = torch.randn(self.cfg.eval.n_samples, self.cfg.model.z_dim, generator=fixed).to(exp.device)

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def start(cls, cfg: Config, out_dir: Path) -> "Trainer":
        run = RunDir(out_dir)
        if run.holds_run():
            raise GankitError(f"{out_dir} already holds a run; continue it with --resume {out_dir} or choose another --out")
        exp = Experiment(cfg)  # every config error surfaces here, before anything is written
        run.root.mkdir(parents=True, exist_ok=True)
        dump_config(run.config, cfg)
        return cls(exp, run)

    @classmethod
    def resume(cls, run_dir: Path, overrides: list[str] | None = None) -> "Trainer":
        run = RunDir(run_dir)
        cfg = run.load_config(overrides)
        state = load_checkpoint(run.checkpoint)
        exp = Experiment(cfg)
        try:
            exp.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise GankitError(f"checkpoint {run.checkpoint} does not match {run.config}: {str(exc).splitlines()[0][:160]}") from None
        torch.set_rng_state(state["rng"]["cpu"])
        if exp.device.type == "cuda" and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        if overrides:
            dump_config(run.config, cfg)
        return cls(exp, run, step=int(state["step"]))

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

    def _eval_samples(self) -> Tensor:
        if self.exp.data.kind == "toy":
            return self.sample()
        chunks = [self.sample(z) for z in self.fixed_z[: self.cfg.eval.n_samples].split(256)]
        return torch.cat(chunks)

    def snapshot(self) -> None:
        """Samples from the fixed latents: an .npz of points for toy data, a PNG grid for images."""
        if self.exp.data.kind == "toy":
            save_snapshot(self.run.snapshot(self.step), self.sample())
            return
        grid = viz.image_grid(self.sample(self.fixed_z[: self.cfg.eval.grid_size]))
        viz.save_png(grid, self.run.grid(self.step))
        writer = getattr(self, "tracker", None) and self.tracker.writer
        if writer is not None:
            writer.add_image("samples", grid, self.step)

    def save_checkpoint(self) -> None:
        rng = {"cpu": torch.get_rng_state()}
        if self.exp.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        save_checkpoint(self.run.checkpoint, {"step": self.step, "config": self.cfg.to_dict(), "rng": rng,
                                              **self.exp.state_dict()})

    def finish(self, tracker: LossTracker) -> dict[str, Any]:
        """Final evaluation and figures: eval.json, samples/strip.png, loss.png."""
        results = evaluate(self.exp, self.step, self._eval_samples())
        write_json(self.run.eval, results)
        tracker.log_eval(self.step, results)
        if self.exp.data.kind == "toy":
            real = self.exp.data.real_batch(self.cfg.eval.n_samples).cpu().numpy()
            snaps = [(step, np.load(path)["samples"]) for step, path in self.run.snapshots()]
            viz.toy_strip(snaps, real, self.run.samples / "strip.png", title=self.cfg.name)
        else:
            viz.progress_gif([path for _, path in self.run.grids()], self.run.samples / "progress.gif")
        viz.loss_curves(self.run.metrics, self.run.root / "loss.png", title=self.cfg.name)
        return results


def evaluate(exp: Experiment, step: int, samples: Tensor) -> dict[str, Any]:
    """The run's metrics with their protocol: sample count, weights used, checkpoint step."""
    from gankit.metrics.toy import toy_metrics

    result: dict[str, Any] = {"step": step, "weights": "ema" if exp.ema is not None else "raw",
                              "n_samples": len(samples), "precision": str(exp.compute_dtype).removeprefix("torch.")}
    if exp.data.kind == "toy":
        result.update(toy_metrics(samples, exp.data.info["means"], exp.data.info["std"]))
    else:
        result.update(pixel_statistics(samples, exp.data.real_batch(len(samples))))
    return result


def pixel_statistics(fake: Tensor, real: Tensor) -> dict[str, Any]:
    """Per-channel mean and std of generated and real images in [-1, 1]: a first check that samples left the
    noise and approach the data (Inception metrics are the evaluation issue's)."""
    fake, real = fake.float().cpu(), real.float().cpu()
    dims = (0, 2, 3)
    return {
        "pixel_mean": [round(v, 4) for v in fake.mean(dims).tolist()],
        "pixel_std": [round(v, 4) for v in fake.std(dims).tolist()],
        "data_pixel_mean": [round(v, 4) for v in real.mean(dims).tolist()],
        "data_pixel_std": [round(v, 4) for v in real.std(dims).tolist()],
    }


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
