"""Helpers shared by the tests. (Not named tests.*: torch-fidelity installs a top-level package `tests`.)"""
import os
import subprocess
import sys
from pathlib import Path

from typing import TYPE_CHECKING, Callable

import torch

# pyproject runs the suite in two pytest-xdist workers (most of its time is interpreter start-up of subprocess
# tests, which two workers overlap): one torch thread each then, so two workers do not fight over 2 cores.
XDIST = "PYTEST_XDIST_WORKER" in os.environ
THREADS = 1 if XDIST else 2
torch.set_num_threads(THREADS)
ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
if TYPE_CHECKING:
    from gankit.train import Trainer

# Short runs for tests: no progress bar, no TensorBoard writer, few steps.
FAST = ["train.progress=false", "train.tensorboard=false", "train.log_every=10", "model.generator.width=64",
        "model.discriminator.width=64", "model.generator.depth=2", "model.discriminator.depth=2",
        "data.n=5000", "eval.n_samples=500", "train.batch_size=64", "train.snapshot_steps=[5]"]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **({"OMP_NUM_THREADS": "1"} if XDIST else {})}
    return subprocess.run([sys.executable, "-m", "gankit", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def run_cli_here(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`gankit ARGS` in this process (main() with stderr captured): the exit status and stderr that run_cli
    returns, without a new interpreter's start-up (seconds each). test_cli.py's end-to-end tests keep real
    processes."""
    import contextlib
    import io
    import warnings

    from gankit.cli import main

    err, out, here = io.StringIO(), io.StringIO(), os.getcwd()
    with warnings.catch_warnings(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        warnings.simplefilter("ignore")
        threads = torch.get_num_threads()
        try:
            if cwd is not None:
                os.chdir(cwd)
            code = main(list(args))
        except SystemExit as exc:  # argparse errors
            code = exc.code
        finally:
            os.chdir(here)
            torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["gankit", *args], code, out.getvalue(), err.getvalue())


def assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit status 2, exactly one line on stderr, no traceback, and the line names what is wrong."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def full_and_resumed(start: Callable[[str], "Trainer"]) -> tuple["Trainer", "Trainer", int]:
    """``start(name)`` run to the end, and the same run killed right after its first checkpoint and resumed to the
    end: (uninterrupted, resumed, the step it resumed at). The resume tests compare the two."""
    import pytest

    from gankit.train import Trainer

    full = start("full")
    full.fit()
    part = start("part")
    save = part.save_checkpoint

    def save_then_crash() -> None:
        save()
        raise KeyboardInterrupt

    part.save_checkpoint = save_then_crash
    with pytest.raises(KeyboardInterrupt):
        part.fit()
    resumed = Trainer.resume(part.run.root)
    resumed_at = resumed.step
    resumed.fit()
    return full, resumed, resumed_at
