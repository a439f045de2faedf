"""The `gankit` command. It parses arguments and calls the Python API; user errors become one line, exit 2."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import NoReturn

from gankit import distributed
from gankit.errors import ConfigError, GankitError, TrainingDiverged

EXIT_USER_ERROR = 2
EXIT_PEER_FAILURE = 3  # a rank stopped because another failed (gankit train --nproc reports the cause)
# Errors that every rank of a data-parallel run raises together: rank 0 alone prints them.
SHARED_ERRORS = (ConfigError, TrainingDiverged, distributed.SharedError)
LOCAL_LAUNCH_ENV = "GANKIT_LOCAL_LAUNCH"  # set by gankit train --nproc for its workers


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def _train(args: argparse.Namespace) -> int:
    from gankit.api import train

    config = None
    overrides = []
    for item in args.items:
        if "=" in item:
            overrides.append(item)
        elif config is None and args.resume is None:
            config = item
        else:
            raise GankitError(f"unexpected argument '{item}': give one CONFIG and KEY=VALUE overrides")
    if args.resume is not None and args.out is not None:
        raise GankitError("--resume continues the run in its own directory; drop --out")
    if args.nproc is not None and args.nproc != 1:
        return _launch_train(args, config, overrides)
    run_dir, results = train(config, overrides, args.out, args.resume)
    if distributed.is_main():
        print(json.dumps(results))
        print(f"run directory: {run_dir}", file=sys.stderr)
    return 0


def _launch_train(args: argparse.Namespace, config: str | None, overrides: list[str]) -> int:
    """`gankit train --nproc N ...`: the same command in N processes on this machine (torchrun's launcher)."""
    from gankit import config as config_mod
    from gankit.distributed.launch import launch_local
    from gankit.compat import batches as check_global_batch
    from gankit.train import MAIN_JOB, default_out_dir

    if args.nproc < 1:
        raise GankitError(f"--nproc must be >= 1, got {args.nproc}")
    if distributed.launched():
        raise GankitError("--nproc starts the processes itself; do not also launch gankit with torchrun or accelerate")
    argv = ["train", *args.items]
    if args.resume is not None:
        argv += ["--resume", str(args.resume)]
    else:  # one directory for every rank, named now; the config's errors show before any process starts
        cfg = config_mod.load(config or MAIN_JOB, overrides)
        check_global_batch(cfg, args.nproc)
        argv += ["--out", str(args.out or default_out_dir(cfg.name))]
    return launch_local(args.nproc, argv)


def _one_process(command: str) -> None:
    if distributed.launched():
        raise GankitError(f"gankit {command} runs in one process; launch it without torchrun or accelerate")


def _sample(args: argparse.Namespace) -> int:
    from gankit.api import write_samples

    _one_process("sample")

    if args.traversal is not None:
        from gankit.traversal import write_traversal

        if args.class_index is not None or args.per_class:
            raise GankitError("give --traversal or --class/--per-class, not both (a traversal has one row per value "
                              "of the categorical code)")
        out = write_traversal(args.run_dir, args.traversal, args.out, args.seed, args.columns, args.span)
        print(f"wrote the traversal of continuous code {args.traversal} to {out}", file=sys.stderr)
        return 0
    out = write_samples(args.run_dir, args.n, args.out, args.seed, args.class_index, args.per_class)
    what = f" of class {args.class_index}" if args.class_index is not None else " of each class" if args.per_class else ""
    print(f"wrote {args.n} samples{what} to {out}", file=sys.stderr)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from gankit.api import evaluate_run

    result = evaluate_run(args.run_dir, args.n, args.seed, args.metrics, args.ref, args.inception_weights,
                          args.best, args.batch_size, args.extractor, args.protocol)
    if distributed.is_main():  # under a launcher the ranks shared the work; rank 0 reports
        print(json.dumps(result))
    return 0


def _study(args: argparse.Namespace) -> int:
    from gankit.study.report import run_study

    _one_process("study")
    configs = [item for item in args.items if "=" not in item]
    overrides = [item for item in args.items if "=" in item]
    if not configs:
        raise GankitError("give at least one CONFIG to study")
    out = args.out or Path("runs") / f"study-{time.strftime('%Y%m%d-%H%M%S')}"
    run_study(configs, args.seeds, out, overrides)
    print((out / "table.md").read_text(), end="")
    print(f"study directory: {out} (results.json, table.md, curves.png, samples.png)", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    from gankit.config import shipped_configs
    from gankit.registry import ALL, load_builtins

    from gankit.metrics import load_metrics

    load_builtins()
    metrics = load_metrics()
    width = max(len(name) for name in [*metrics, *(n for registry in ALL.values() for n in registry.names())])
    for kind, registry in ALL.items():
        print(f"{kind}:")
        for name in registry.names():
            print(f"  {name:<{width}} {registry.describe(name)}")
    print("metrics:")
    for name, metric in metrics.items():
        print(f"  {name:<{width}} {metric.help}")
    print("configs:")
    for name in shipped_configs():
        print(f"  {name}")
    return 0


def _dirac(args: argparse.Namespace) -> int:
    from gankit.dirac.command import run

    return run(args)


def _lab(args: argparse.Namespace) -> int:
    from gankit.lab.server import run

    if not 0 <= args.port <= 65535:
        raise GankitError(f"--port must be in [0, 65535], got {args.port}")
    return run(args.config, args.host, args.port, args.run)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gankit", description="Classic GANs under one engine: a method is a config.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a GAN from a config (a shipped name or a YAML path)")
    p.add_argument("items", nargs="*", metavar="CONFIG|KEY=VALUE",
                   help="a config name or YAML path, then dotted overrides such as train.steps=500")
    p.add_argument("--out", type=Path, help="run directory (default runs/NAME-TIMESTAMP)")
    p.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR from its last checkpoint")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="data-parallel training in N processes on this machine (one per GPU; gloo on CPUs), as "
                        "torchrun --standalone --nproc-per-node N would start them (docs/distributed.md)")
    p.set_defaults(func=_train)

    p = sub.add_parser("sample", help="write samples of a trained run (.npz or .png)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("-n", type=int, default=2500, help="number of samples (default 2500)")
    p.add_argument("--out", type=Path, required=True,
                   help="FILE.npz (arrays 'samples', and 'labels' for a conditional run), FILE.png, or a folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--class", dest="class_index", type=int, default=None, metavar="K",
                   help="conditional runs: N samples of class K; InfoGAN runs: with categorical code K")
    p.add_argument("--per-class", action="store_true", help="conditional runs: N samples of each class (a grid "
                                                             "with one row per class)")
    p.add_argument("--traversal", type=int, default=None, metavar="C",
                   help="InfoGAN runs: a PNG with one row per categorical value and continuous code C going from "
                        "-SPAN to SPAN along the columns, the other latents fixed (-n is ignored)")
    p.add_argument("--columns", type=int, default=10, help="--traversal: values of code C (default 10)")
    p.add_argument("--span", type=float, default=1.0, help="--traversal: code C goes from -SPAN to SPAN (default 1)")
    p.set_defaults(func=_sample)

    p = sub.add_parser("eval", help="evaluate a trained run; prints one JSON object")
    p.add_argument("run_dir", type=Path)
    p.add_argument("-n", type=int, default=None, help="number of samples (default: the config's eval.n_samples)")
    p.add_argument("--metrics", default=None, metavar="LIST",
                   help="image metrics, comma-separated (`gankit list` shows them all): e.g. fid,kid,prc,"
                        "density_coverage; conditional runs also intra_fid,intra_cfd,cacc (default: eval.metrics)")
    p.add_argument("--protocol", choices=("legacy", "clean"), default=None,
                   help="resize protocol of the Inception metrics: legacy (torch-fidelity's) or clean (Parmar et "
                        "al. 2022) (default: eval.protocol)")
    p.add_argument("--ref", default=None, metavar="SPLIT", help="reference split (default: the run's data split)")
    p.add_argument("--inception-weights", default=None, metavar="FILE",
                   help="local Inception-v3 weights (else $GANKIT_INCEPTION_WEIGHTS, else torch hub's cache)")
    p.add_argument("--extractor", default=None, help="feature extractor of fid/is/kid/prc (default: eval.extractor)")
    p.add_argument("--best", action="store_true", help="evaluate checkpoints/best.pt instead of last.pt")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_eval)

    p = sub.add_parser("study", help="train N seeds of each config together; a table of mean ± s.e. and figures")
    p.add_argument("items", nargs="*", metavar="CONFIG|KEY=VALUE",
                   help="config names or YAML paths (the main job is 'main'), then dotted overrides applied to "
                        "every config")
    p.add_argument("--seeds", type=int, default=10, help="seeds per config: train.seed, train.seed + 1, ... (default 10)")
    p.add_argument("--out", type=Path, help="study directory (default runs/study-TIMESTAMP)")
    p.set_defaults(func=_study)

    p = sub.add_parser("list", help="list registered losses, regularizers, models, datasets and configs")
    p.set_defaults(func=_list)

    p = sub.add_parser("lab", help="a local page that trains 2-D GANs while it draws them, two runs side by side")
    p.add_argument("config", nargs="?", default=None, metavar="CONFIG",
                   help="a 2-D config (shipped name or YAML path) whose settings the page starts from")
    p.add_argument("--port", type=int, default=7870, help="port of the page (default 7870; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address the page binds to (default 127.0.0.1)")
    p.add_argument("--run", type=Path, default=None, metavar="DIR", help="a 2-D run directory to replay")
    p.set_defaults(func=_lab)

    p = sub.add_parser("dirac", help="the Dirac-GAN convergence lab (Mescheder et al. 2018)")
    try:
        from gankit.dirac.command import add_arguments
    except ImportError:  # the lab is optional while it is being built
        pass
    else:
        add_arguments(p)
    p.set_defaults(func=_dirac)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"gankit: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    status = _main(argv)
    if distributed.launched():
        distributed.exit_process(status)
    return status


def _main(argv: list[str] | None) -> int:
    warnings.formatwarning = _one_line_warning  # e.g. "skipped 3 unreadable images": one line, no source line
    parser = build_parser()
    # parse_known_args, so that `train CONFIG --out DIR KEY=VALUE` may put overrides after an option too.
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if a.startswith("-") or args.command not in ("train", "study")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.items = [*args.items, *extra]
    try:
        status = args.func(args)
        distributed.shutdown(wait=True)
        return status
    except GankitError as exc:
        if distributed.is_main():
            print(f"gankit: error: {exc}", file=sys.stderr)
        elif not isinstance(exc, SHARED_ERRORS):  # the others are raised by every rank alike: rank 0 reports them
            print(f"gankit: error: rank {distributed.rank()}: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if distributed.is_main():
            print("gankit: interrupted; a run continues from its last checkpoint with --resume DIR", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - only a collective that lost its peers becomes one line
        line = distributed.peer_failure(exc)
        if line is None:
            raise
        if not os.environ.get(LOCAL_LAUNCH_ENV):  # gankit train --nproc names the rank that failed first
            print(f"gankit: error: {line}", file=sys.stderr)
        return EXIT_PEER_FAILURE
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
