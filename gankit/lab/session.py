"""The lab's runs: gankit's own Trainer on 2-D data, advanced one phase at a time, and what the page draws of it.

A run is a ``Trainer`` made by ``Trainer.start`` (as `gankit train` makes it) and advanced by its ``d_phase`` and
``g_phase`` (what ``Trainer.train_step`` is made of), so the page shows what the CLI computes. Two runs live in one
process, so each keeps its own torch RNG state, swapped in around its phases: played along the schedule, a run's
weights equal those of `gankit train` on its YAML after as many G steps. Drawing never moves that state
(figures take their own generators, and ``torch.random.fork_rng`` guards the rest).
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gankit import config
from gankit.errors import GankitError
from gankit.evaluation import Generate, generate_from
from gankit.lab import setup as lab_setup
from gankit.metrics.toy import toy_metrics
from gankit.models.conditional import as_output

SHOWN_FAKES = 600  # generated points drawn per frame (from the run's fixed snapshot latents)
SHOWN_REALS = 600
HEAT_SIDE = 48  # D's output on a HEAT_SIDE x HEAT_SIDE grid over the view
ARROWS = 64  # generated points that get a gradient arrow
MANIFOLD_SIDE = 17  # the warped-manifold view: G of a MANIFOLD_SIDE^2 grid of latents
METRIC_SAMPLES = 2500
METRIC_EVERY = 25  # G steps between mode-metric evaluations
HISTORY = 4000  # loss points kept per curve (older ones are thinned)


def _round(a: Tensor | np.ndarray, digits: int = 4) -> list[Any]:
    """Rounded nested lists for JSON; NaN and infinities (a diverged run) become null."""
    arr = np.round((a.detach().cpu().numpy() if isinstance(a, Tensor) else a).astype(np.float64), digits)
    finite = np.isfinite(arr)
    if finite.all():
        return arr.tolist()
    obj = arr.astype(object)
    obj[~finite] = None
    return obj.tolist()


def view_box(points: Tensor) -> list[float]:
    """A square [x0, x1, y0, y1] around the data with a margin of 30% (and at least 0.5 on each side)."""
    lo, hi = points.min(0).values, points.max(0).values
    centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2
    half = max(half * 1.3, half + 0.5 * max(half, 0.5))
    cx, cy = float(centre[0]), float(centre[1])
    return [cx - half, cx + half, cy - half, cy + half]


class LabRun:
    """One run of the page: a Trainer, its schedule position, its RNG state and its curves."""

    def __init__(self, cfg: config.Config, workdir: Path) -> None:
        from gankit.train import Trainer

        self.cfg = cfg
        rng = torch.get_rng_state()
        try:
            self.trainer = Trainer.start(cfg, workdir)  # validates the whole config first, as `gankit train`
            self.rng = torch.get_rng_state()  # the run's stream, seeded by Trainer.start
        finally:
            torch.set_rng_state(rng)
        exp = self.trainer.exp
        if exp.domain.kind != "toy":
            raise GankitError("the lab trains on 2-D data only")
        self.exp = exp
        self.phase = 0  # D phases done in the current G step
        self.off_schedule = False  # a D or G step was taken out of the order D x n_critic, G
        self.d_steps = 0
        self.losses: dict[str, list[list[float]]] = {}  # name -> [[G step, value], ...]
        self.metrics: list[dict[str, Any]] = []
        self.real = exp.data.x[:: max(1, len(exp.data.x) // SHOWN_REALS)][:SHOWN_REALS].float()
        self.box = view_box(exp.data.x.float())
        self.means, self.std = exp.data.info["means"], exp.data.info["std"]
        self._metrics_now()

    @property
    def step(self) -> int:
        return self.trainer.step

    @property
    def done(self) -> bool:
        return self.trainer.step >= self.cfg.train.steps

    # -- training: the Trainer's own phases -------------------------------------------------------------
    def _in_own_stream(self, fn: Any) -> Any:
        outer = torch.get_rng_state()
        torch.set_rng_state(self.rng)
        try:
            return fn()
        finally:
            self.rng = torch.get_rng_state()
            torch.set_rng_state(outer)

    def _log(self, terms: dict[str, Tensor]) -> None:
        for name, value in terms.items():
            v = float(value)
            curve = self.losses.setdefault(name, [])
            curve.append([self.trainer.step, v if math.isfinite(v) else None])
            if len(curve) > HISTORY:
                del curve[1::2]

    def _check_finite(self, terms: dict[str, Tensor]) -> None:
        bad = [k for k, v in terms.items() if not math.isfinite(float(v))]
        if bad:
            raise GankitError(f"training diverged at G step {self.step}: {', '.join(bad)} became NaN or infinite; "
                              "lower the learning rates or add a regularizer, then start again")

    def d_step(self) -> None:
        """One D phase: the next one of the schedule, or an extra one (then the run is off the schedule)."""
        if self.phase >= self.trainer.n_critic:
            self.off_schedule = True
        terms = self._in_own_stream(lambda: self.trainer.d_phase(self.phase))
        self.phase += 1
        self.d_steps += 1
        self._log(terms)
        self._check_finite(terms)

    def g_step(self) -> None:
        """G's phase, ending the G step (before n_critic D phases: off the schedule)."""
        if self.phase < self.trainer.n_critic:
            self.off_schedule = True
        terms = self._in_own_stream(self.trainer.g_phase)
        self.phase = 0
        self._log(terms)
        self._check_finite(terms)
        if self.step % METRIC_EVERY == 0:
            self._metrics_now()

    def train(self, g_steps: int) -> None:
        """Up to g_steps whole G steps along the schedule (finishing the current one first), stopping at
        train.steps."""
        for _ in range(g_steps):
            if self.done:
                return
            if self.cfg.train.updates == "simultaneous" and self.phase == 0:
                self.simultaneous_step()
                continue
            while self.phase < self.trainer.n_critic:
                self.d_step()
            self.g_step()

    def simultaneous_step(self) -> None:
        """A whole G step of a ``train.updates: simultaneous`` config: D's and G's updates from one forward pass
        (``Trainer.simultaneous_phase``), as `gankit train` runs it; the D and G buttons still step one player."""
        d_terms, g_terms = self._in_own_stream(self.trainer.simultaneous_phase)
        self.d_steps += 1
        for terms in (d_terms, g_terms):
            self._log(terms)
            self._check_finite(terms)
        if self.step % METRIC_EVERY == 0:
            self._metrics_now()

    # -- what the page draws ----------------------------------------------------------------------------
    def _metrics_now(self) -> None:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            samples = Generate(self.exp, seed=0).many(METRIC_SAMPLES).x
        m = toy_metrics(samples, self.means, self.std)
        if self.metrics and self.metrics[-1]["step"] == self.step:
            self.metrics.pop()
        self.metrics.append({"step": self.step, **m})

    def _d_logit(self, x: Tensor) -> Tensor:
        """D's score of each point: a packed D sees a pack of copies of the point."""
        pack = self.cfg.model.pack
        d = self.exp.discriminator
        y = torch.zeros(len(x) * pack, dtype=torch.long) if self.exp.conditional else None
        return as_output(d(x.repeat_interleave(pack, dim=0), y)).logit.float().reshape(-1)

    def _arrows(self, fake: Tensor) -> list[Any]:
        """-d(G's adversarial loss)/d x at ARROWS generated points: where G's step moves them (D as it is now)."""
        pack = self.cfg.model.pack
        k = ARROWS - ARROWS % pack
        x = fake[:k].detach().clone().requires_grad_(True)
        y = torch.zeros(k, dtype=torch.long) if self.exp.conditional else None
        logit = as_output(self.exp.discriminator(x, y)).logit.float()
        real_logit = None
        if self.exp.objective.loss.needs_real_in_g:
            ry = torch.zeros(k, dtype=torch.long) if self.exp.conditional else None
            with torch.no_grad():
                real_logit = as_output(self.exp.discriminator(self.real[:k], ry)).logit.float()
        loss = self.exp.objective.loss.g_loss(logit, real_logit) * len(logit)
        (grad,) = torch.autograd.grad(loss, x)
        return _round(torch.cat([x.detach(), -grad], dim=1))

    def frame(self) -> dict[str, Any]:
        """Everything the page draws of this run now (JSON-ready)."""
        exp = self.exp
        d = exp.discriminator
        was_training = d.training
        d.eval()
        try:
            with torch.random.fork_rng(devices=[]):
                z, y = self.trainer.fixed
                fake = generate_from(exp, z[:SHOWN_FAKES], None if y is None else y[:SHOWN_FAKES])
                x0, x1, y0, y1 = self.box
                gx = torch.linspace(x0, x1, HEAT_SIDE)
                gy = torch.linspace(y0, y1, HEAT_SIDE)
                plane = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1).reshape(-1, 2)
                heat = None
                if exp.objective.input_term is None:
                    with torch.no_grad():
                        heat = _round(self._d_logit(plane), 3)
                    arrows = self._arrows(fake)
                else:  # D takes codes as well (VEEGAN): there is no D(x) to draw
                    arrows = []
                manifold = self._manifold()
        finally:
            d.train(was_training)
        return {"step": self.step, "phase": self.phase, "d_steps": self.d_steps, "n_critic": self.trainer.n_critic,
                "steps": self.cfg.train.steps, "done": self.done, "off_schedule": self.off_schedule,
                "box": self.box, "real": _round(self.real), "fake": _round(fake), "heat": heat,
                "heat_side": HEAT_SIDE, "arrows": arrows, "manifold": manifold, "manifold_side": MANIFOLD_SIDE,
                "losses": self.losses, "metrics": self.metrics}

    def _manifold(self) -> list[Any]:
        """G of a grid of latents over +-2 (+-1 for uniform latents) in the first two latent coordinates, the
        others 0: with 2-D latents, the image of the whole latent plane (GAN Lab's manifold view)."""
        exp = self.exp
        z_like, y_like = exp.prior.sample(1, exp.device, torch.Generator().manual_seed(0))
        span = 1.0 if self.cfg.model.z_dist == "uniform" else 2.0
        t = torch.linspace(-span, span, MANIFOLD_SIDE)
        u, v = torch.meshgrid(t, t, indexing="xy")
        z = torch.zeros(MANIFOLD_SIDE ** 2, z_like.shape[1])
        z[:, 0] = u.reshape(-1)
        if z.shape[1] > 1:
            z[:, 1] = v.reshape(-1)
        y = None if y_like is None else torch.zeros(len(z), dtype=y_like.dtype)
        return _round(generate_from(exp, z, y))

    def yaml(self) -> str:
        note = ("# Trained in gankit lab. `gankit train THIS.yaml` trains the same run: its weights after N G steps\n"
                "# equal the page's after N G steps (played, not stepped off the schedule).\n")
        if self.off_schedule:
            note += ("# NOTE: this run was stepped off the schedule (D x n_critic, then G) on the page; `gankit train`\n"
                     "# follows the schedule, so it trains the same setup but not these weights.\n")
        return note + config.dump(self.cfg)


class Replay:
    """A run directory trained by `gankit train`, replayed from its snapshots (.npz of generated points)."""

    def __init__(self, run_dir: Path) -> None:
        from gankit.experiment import build_data
        from gankit.run import RunDir
        from gankit.viz import read_metrics

        run = RunDir(run_dir)
        if not run.holds_run():
            raise GankitError(f"{run_dir} holds no gankit run (no config.yaml)")
        cfg = run.load_config()
        if cfg.data["name"] not in {"ring", "grid", "points"}:
            raise GankitError(f"{run_dir} is a run on {cfg.data['name']}; the lab replays runs on 2-D data")
        self.snapshots = [(step, np.load(path)["samples"]) for step, path in run.snapshots()]
        if not self.snapshots:
            raise GankitError(f"{run_dir} has no snapshots yet (samples/*.npz, written at train.snapshot_steps)")
        data = build_data(cfg, torch.device("cpu"))
        self.real = data.x[:: max(1, len(data.x) // SHOWN_REALS)][:SHOWN_REALS].float()
        self.box = view_box(data.x.float())
        self.means, self.std = data.info["means"], data.info["std"]
        self.name = cfg.name
        self.losses: dict[str, list[list[float]]] = {}
        for record in read_metrics(run.metrics):
            for key, value in record.items():
                if key.endswith("loss") and isinstance(value, (int, float)):
                    self.losses.setdefault(key, []).append([record["step"], value])

    def frame(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.snapshots):
            raise GankitError(f"snapshot {index} does not exist; this run has {len(self.snapshots)}")
        step, samples = self.snapshots[index]
        fake = torch.from_numpy(samples).float()
        metrics = [{"step": s, **toy_metrics(torch.from_numpy(x).float(), self.means, self.std)}
                   for s, x in self.snapshots[: index + 1]]
        return {"name": self.name, "index": index, "count": len(self.snapshots), "step": step,
                "steps": [s for s, _ in self.snapshots], "box": self.box, "real": _round(self.real),
                "fake": _round(fake[:SHOWN_FAKES]), "heat": None, "arrows": [], "manifold": [],
                "losses": self.losses, "metrics": metrics}


class Lab:
    """The page's state: up to two runs ("a", "b") on one base config, and an optional replay."""

    SLOTS = ("a", "b")

    def __init__(self, base: str | None = None, replay: Path | None = None) -> None:
        self.base = lab_setup.base_config(base)
        self.initial = lab_setup.setup_of(config.load(None, base=json_copy(self.base)))
        self.runs: dict[str, LabRun] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="gankit-lab-")
        self._count = 0
        self.replay = Replay(replay) if replay is not None else None

    def close(self) -> None:
        self._tmp.cleanup()

    def _slot(self, slot: Any) -> str:
        if slot not in self.SLOTS:
            raise GankitError(f"unknown run {slot!r}; the page has runs {' and '.join(self.SLOTS)}")
        return slot

    def start(self, slot: str, setup: dict[str, Any]) -> dict[str, Any]:
        """(Re)start a run from step 0 with the page's setup."""
        slot = self._slot(slot)
        cfg = lab_setup.build_config(self.base, setup)
        self._count += 1
        run = LabRun(cfg, Path(self._tmp.name) / f"{slot}-{self._count}")
        self.runs[slot] = run
        return self.frame(slot)

    def run(self, slot: Any) -> LabRun:
        slot = self._slot(slot)
        if slot not in self.runs:
            raise GankitError(f"run {slot} has not been started: press its Start button")
        return self.runs[slot]

    def advance(self, slot: Any, what: Any, n: Any = 1) -> dict[str, Any]:
        """'train' n G steps along the schedule, or one 'd' or 'g' phase; then the run's frame."""
        run = self.run(slot)
        if what == "train":
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1000:
                raise GankitError(f"steps per frame must be a whole number in [1, 1000], got {n!r}")
            run.train(n)
        elif what == "d":
            run.d_step()
        elif what == "g":
            run.g_step()
        else:
            raise GankitError(f"unknown step {what!r}: train, d or g")
        return self.frame(slot)

    def frame(self, slot: Any) -> dict[str, Any]:
        run = self.run(slot)
        return {"slot": slot, **run.frame()}

    def yaml(self, slot: Any) -> str:
        return self.run(slot).yaml()

    def replay_frame(self, index: Any) -> dict[str, Any]:
        if self.replay is None:
            raise GankitError("no run directory is open: give one in the replay box (or gankit lab --run DIR)")
        if not isinstance(index, int) or isinstance(index, bool):
            raise GankitError(f"snapshot index must be a whole number, got {index!r}")
        return self.replay.frame(index)

    def open_replay(self, path: Any) -> dict[str, Any]:
        if not isinstance(path, str) or not path.strip():
            raise GankitError("give the path of a run directory to replay")
        self.replay = Replay(Path(path.strip()).expanduser())
        return self.replay_frame(0)


def json_copy(data: Any) -> Any:
    import json

    return json.loads(json.dumps(data))
