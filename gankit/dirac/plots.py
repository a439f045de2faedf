"""Figures of the Dirac-GAN lab: trajectories over the gradient vector field, distance curves, the grid.

Uses matplotlib's object API (``matplotlib.figure.Figure``, rendered by Agg) and never pyplot, so it has no global
state, needs no display and is safe to call from the Gradio server's worker threads.
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gankit.dirac.lab import DiracResult, Method, format_eigenvalues, vector_fields

MODE_COLORS = {"simultaneous": "tab:red", "alternating": "tab:blue"}
FIELD_POINTS = 13


def _limit(results: Sequence[DiracResult]) -> float:
    """Half-width of the plotted square: at least the notebook's 2, grown (up to 4) to show the trajectories."""
    extent = 2.0
    for r in results:
        finite = r.trajectory[np.all(np.isfinite(r.trajectory), axis=1)]
        if len(finite):
            extent = max(extent, float(np.abs(finite).max()) * 1.05)
    return min(extent, 4.0)


def draw_field(ax: Axes, method: Method, lim: float, *, clip: float = 1.0, field: tuple | None = None) -> None:
    """The gradient vector field v = (-dL_G/dtheta, -dL_D/dpsi), arrows normalised to show direction."""
    grid = np.linspace(-lim, lim, FIELD_POINTS)
    if field is None:
        field = vector_fields([method], grid, grid, clip=clip)[0]
    u, v = field
    norm = np.hypot(u, v)
    norm[norm == 0] = 1.0
    tt, pp = np.meshgrid(grid, grid)
    ax.quiver(tt, pp, u / norm, v / norm, color="0.6", angles="xy", scale_units="xy",
              scale=FIELD_POINTS / (1.6 * lim), width=0.004)
    if method.loss == "wgan":
        for s in (-clip, clip):
            ax.axhline(s, color="0.4", lw=0.6, ls="--")
    ax.plot([0], [0], marker="*", color="gold", markeredgecolor="k", markersize=10, zorder=5)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")


def draw_trajectory(ax: Axes, result: DiracResult, *, color: str | None = None, label: str | None = None) -> None:
    color = color or MODE_COLORS.get(result.mode, "tab:red")
    traj = result.trajectory
    ax.plot(traj[:, 0], traj[:, 1], color=color, lw=1.2, label=label)
    ax.plot(traj[0, 0], traj[0, 1], marker="o", color=color, markersize=4)
    if np.all(np.isfinite(traj[-1])):
        ax.plot(traj[-1, 0], traj[-1, 1], marker="x", color=color, markersize=6)


def method_figure(result: DiracResult, *, clip: float = 1.0) -> Figure:
    """Left: the trajectory over the vector field. Right: distance to the equilibrium over the steps."""
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    ax, ax_d = fig.subplots(1, 2)
    method = Method(result.loss, result.reg, result.mode, result.weight)
    draw_field(ax, method, _limit([result]), clip=clip)
    draw_trajectory(ax, result)
    ax.set_xlabel(r"$\theta$ (generator)")
    ax.set_ylabel(r"$\psi$ (discriminator)")
    verdict = "converged" if result.converged else "not converged"
    ax.set_title(f"{result.loss} + {result.reg} (w={result.weight:g}), {result.mode}, n_d={result.n_d}: {verdict}",
                 fontsize=9)
    d = result.distances
    steps = np.arange(len(d))
    ok = np.isfinite(d) & (d > 0)
    ax_d.semilogy(steps[ok], d[ok], color=MODE_COLORS.get(result.mode, "tab:red"))
    ax_d.axhline(result.tol, color="0.4", ls="--", lw=0.8, label=f"tol = {result.tol:g}")
    ax_d.set_xlabel("step")
    ax_d.set_ylabel(r"distance to $(0, 0)$")
    ax_d.set_title(f"eigenvalues of J: {format_eigenvalues(result.eigenvalues)}; "
                   f"spectral radius {result.spectral_radius:.4g}", fontsize=9)
    ax_d.legend(loc="best", fontsize=8)
    ax_d.grid(True, which="both", alpha=0.3)
    return fig


def grid_figure(results: Sequence[DiracResult], *, clip: float = 1.0) -> Figure:
    """Rows: losses; columns: regularizers; each panel shows the field and one trajectory per update rule."""
    losses = list(dict.fromkeys(r.loss for r in results))
    regs = list(dict.fromkeys(r.reg for r in results))
    cells: dict[tuple[str, str], list[DiracResult]] = {}
    for r in results:
        cells.setdefault((r.loss, r.reg), []).append(r)
    lim = 2.0
    grid = np.linspace(-lim, lim, FIELD_POINTS)
    keys = [(lo, re) for lo in losses for re in regs if (lo, re) in cells]
    methods = [Method(lo, re, "simultaneous", cells[(lo, re)][0].weight) for lo, re in keys]
    fields = dict(zip(keys, vector_fields(methods, grid, grid, clip=clip)))
    fig = Figure(figsize=(2.3 * len(regs), 2.3 * len(losses) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(losses), len(regs), squeeze=False))
    for i, lo in enumerate(losses):
        for j, re in enumerate(regs):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (lo, re) not in cells:
                ax.set_axis_off()
                continue
            rs = cells[(lo, re)]
            draw_field(ax, Method(lo, re, "simultaneous", rs[0].weight), lim, clip=clip, field=fields[(lo, re)])
            for r in rs:
                draw_trajectory(ax, r)
            verdicts = " ".join(f"{r.mode[:3]}:{'✓' if r.converged else '✗'}" for r in rs)
            ax.set_title(verdicts, fontsize=8)
            if i == 0:
                ax.annotate(re, (0.5, 1.22), xycoords="axes fraction", ha="center", fontsize=11, weight="bold")
            if j == 0:
                ax.set_ylabel(lo, fontsize=11, weight="bold")
    first = results[0]
    fig.suptitle(f"Dirac-GAN: h={first.lr:g}, n_d={first.n_d}, {first.steps} steps from "
                 f"({first.start[0]:g}, {first.start[1]:g}); red = simultaneous, blue = alternating; "
                 f"✓ = converged (distance < {first.tol:g} over the last {first.tail:.0%} of steps)", fontsize=10)
    return fig


def figure_rgb(fig: Figure) -> np.ndarray:
    """The figure rendered by Agg as an (H, W, 3) uint8 array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()
