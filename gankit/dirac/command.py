"""``gankit dirac``: the Dirac-GAN convergence lab from the command line.

    gankit dirac --loss gan --reg r1 --mode alternating     one method: DIR/dirac.json + its figure
    gankit dirac --all                                      the grid: figure, tables, DIR/dirac.json
    gankit dirac --ui                                       a local Gradio page

The CLI calls ``add_arguments(parser)`` and ``run(args)``; bad input raises GankitError (one line) before any file
is written.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from gankit.dirac import lab
from gankit.errors import GankitError

DEFAULT_OUT = "runs/dirac"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``gankit dirac`` options to ``parser``."""
    d = lab.DEFAULTS
    g = parser.add_argument_group("method (one run)")
    g.add_argument("--loss", default=None, metavar="NAME",
                   help=f"adversarial loss: {', '.join(lab.LOSS_NAMES)} (default gan)")
    g.add_argument("--reg", default=None, metavar="NAME",
                   help=f"regularizer: {', '.join(lab.REG_NAMES)} (default none)")
    g.add_argument("--weight", type=float, default=None,
                   help="regularizer weight (gamma for r1/r2, sigma for noise, gamma for consensus); default: "
                        + ", ".join(f"{k} {v:g}" for k, v in lab.DEFAULT_WEIGHTS.items() if k != "none"))
    g.add_argument("--mode", default=None, metavar="RULE",
                   help="update rule: simultaneous or alternating (default simultaneous)")
    t = parser.add_argument_group("training")
    t.add_argument("--n-d", dest="n_d", type=int, default=d["n_d"],
                   help=f"discriminator steps per generator step (default {d['n_d']})")
    t.add_argument("--lr", type=float, default=d["lr"], help=f"step size h of both players (default {d['lr']:g})")
    t.add_argument("--steps", type=int, default=d["steps"], help=f"generator steps (default {d['steps']})")
    t.add_argument("--start", type=float, nargs=2, default=list(d["start"]), metavar=("THETA", "PSI"),
                   help="initial (theta, psi) (default 1 1)")
    t.add_argument("--clip", type=float, default=d["clip"], help=f"WGAN clip value for psi (default {d['clip']:g})")
    t.add_argument("--tol", type=float, default=d["tol"],
                   help=f"converged iff the distance to (0,0) stays below tol over the last 10%% of steps "
                        f"(default {d['tol']:g})")
    t.add_argument("--seed", type=int, default=d["seed"], help="seed of the instance noise / DRAGAN sampling")
    o = parser.add_argument_group("output")
    o.add_argument("--all", action="store_true",
                   help=f"run every loss x regularizer x update rule ({len(lab.LOSS_NAMES)} x {len(lab.REG_NAMES)} "
                        f"x {len(lab.MODES)}) and write the grid figure and tables")
    o.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output directory (default {DEFAULT_OUT})")
    o.add_argument("--ui", action="store_true", help="serve the interactive Gradio page (pip install 'gankit[ui]')")
    o.add_argument("--host", default="127.0.0.1", help="address the page binds to (default 127.0.0.1)")
    o.add_argument("--port", type=int, default=7860, help="port of the page (default 7860)")


def _check(args: argparse.Namespace) -> dict:
    """Validate everything (one-line GankitError naming the flag) and return run_methods keyword arguments."""
    if args.all and args.ui:
        raise GankitError("--all and --ui cannot be combined")
    if args.all:
        given = [f for f, v in (("--loss", args.loss), ("--reg", args.reg), ("--mode", args.mode),
                                ("--weight", args.weight)) if v is not None]
        if given:
            raise GankitError(f"{given[0]} selects one method; --all runs every loss, regularizer and update rule "
                              "with each regularizer's default weight")
    lab.validate(loss=args.loss, reg=args.reg, mode=args.mode, weight=args.weight, n_d=args.n_d, lr=args.lr,
                 steps=args.steps, start=args.start, clip=args.clip, tol=args.tol)
    if args.steps > 1_000_000:
        raise GankitError(f"--steps must be <= 1000000, got {args.steps}")
    if not 0 < args.port < 65536:
        raise GankitError(f"--port must be in 1..65535, got {args.port}")
    return {"n_d": args.n_d, "lr": args.lr, "steps": args.steps, "start": tuple(args.start), "clip": args.clip,
            "tol": args.tol, "seed": args.seed}


def _prepare_out(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise GankitError(f"--out {path} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GankitError(f"--out {path}: cannot create the directory ({exc.strerror})") from None
    if not os.access(out, os.W_OK):
        raise GankitError(f"--out {path}: directory is not writable")
    return out


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temporary file in the same directory, then os.replace: readers never see a partial file."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def results_json(results: Sequence[lab.DiracResult]) -> str:
    return json.dumps([r.to_dict() for r in results], indent=2, allow_nan=False) + "\n"


def results_csv(results: Sequence[lab.DiracResult]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["loss", "reg", "weight", "mode", "n_d", "lr", "steps", "theta", "psi", "distance", "eig1_re",
                "eig1_im", "eig2_re", "eig2_im", "spectral_radius", "converged", "differentiable"])
    for r in results:
        ev = r.eigenvalues
        w.writerow([r.loss, r.reg, r.weight, r.mode, r.n_d, r.lr, r.steps, r.theta, r.psi, r.distance,
                    ev[0].real, ev[0].imag, ev[1].real, ev[1].imag, r.spectral_radius, r.converged,
                    r.differentiable])
    return buf.getvalue()


def _write_all(out: Path, results: Sequence[lab.DiracResult], clip: float) -> list[Path]:
    from gankit.dirac import plots

    fig = plots.grid_figure(results, clip=clip)
    files = {
        "dirac_grid.png": plots.figure_bytes(fig, "png", dpi=90),
        "dirac_grid.pdf": plots.figure_bytes(fig, "pdf"),
        "dirac_table.md": lab.verdict_matrix(results) + "\n" + lab.markdown_table(results),
        "dirac_table.csv": results_csv(results),
        "dirac.json": results_json(results),
    }
    written = []
    for name, data in files.items():
        atomic_write(out / name, data)
        written.append(out / name)
    return written


def _write_one(out: Path, result: lab.DiracResult, clip: float) -> list[Path]:
    from gankit.dirac import plots

    fig = plots.method_figure(result, clip=clip)
    stem = f"dirac_{result.loss}_{result.reg}_{result.mode}"
    files = {f"{stem}.png": plots.figure_bytes(fig, "png"), f"{stem}.pdf": plots.figure_bytes(fig, "pdf"),
             "dirac.json": results_json([result])}
    written = []
    for name, data in files.items():
        atomic_write(out / name, data)
        written.append(out / name)
    return written


def _summary(r: lab.DiracResult) -> str:
    ev = lab.format_eigenvalues(r.eigenvalues)
    note = "" if r.differentiable else " (field not differentiable at psi=0: eps-smoothed)"
    return (f"{r.loss} + {r.reg} (weight {r.weight:g}), {r.mode}, n_d={r.n_d}, h={r.lr:g}, {r.steps} steps: "
            f"final (theta, psi) = ({r.theta:.4g}, {r.psi:.4g}), distance {r.distance:.3g}; "
            f"eigenvalues of J: {ev}{note}; spectral radius {r.spectral_radius:.4g}; "
            f"{'converged' if r.converged else 'not converged'}")


def run(args: argparse.Namespace) -> int:
    """Run ``gankit dirac``; returns the exit status (0). Bad input raises GankitError before any file is written."""
    kwargs = _check(args)
    if args.ui:
        from gankit.dirac import ui

        ui.launch(host=args.host, port=args.port)
        return 0
    out = _prepare_out(args.out)
    if args.all:
        results = lab.run_grid(**kwargs)
        written = _write_all(out, results, args.clip)
        print(lab.verdict_matrix(results))
        print(lab.markdown_table(results))
    else:
        result = lab.run_method(args.loss or "gan", args.reg or "none", mode=args.mode or "simultaneous",
                                weight=args.weight, **kwargs)
        written = _write_one(out, result, args.clip)
        print(_summary(result))
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m gankit.dirac.command``), with the CLI's error convention."""
    import sys

    parser = argparse.ArgumentParser(prog="gankit dirac", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except GankitError as exc:
        print(f"gankit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
