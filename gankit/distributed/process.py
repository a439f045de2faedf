"""Joining the process group from a launcher's environment, and recognising a lost peer.

torchrun, ``accelerate launch`` and ``gankit train --nproc N`` all set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT; init_process_group reads them (the env:// method). Every collective then waits at most
``train.dist_timeout`` seconds for the other ranks, so a rank that died or hangs stops the run instead of
blocking it forever (gloo raises at once when a peer's socket closes; NCCL's watchdog aborts after the timeout).
"""
from __future__ import annotations

import os
import re
from datetime import timedelta

import torch
import torch.distributed as dist

from gankit.errors import ConfigError, GankitError

LAUNCHER_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise GankitError(f"environment variable {name}={value!r} is not an integer (launchers such as torchrun "
                          "set it)") from None


def launched() -> bool:
    """Whether a launcher started this process as one of several (WORLD_SIZE > 1)."""
    return _env_int("WORLD_SIZE", 1) > 1


def world_size() -> int:
    """The number of processes training together (1 until the group is joined, and without a launcher)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (the launcher's RANK before the group is joined; 0 without a launcher)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_int("RANK", 0)


def local_rank() -> int:
    """The rank on this machine: the index of this process's GPU."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """Rank 0 writes the run directory and prints; the other ranks only compute."""
    return rank() == 0


def uses_cuda(device: str) -> bool:
    return device != "cpu" and not device.startswith("cpu") and torch.cuda.is_available()


def setup(device: str, timeout_s: float) -> None:
    """Join the process group when a launcher started several processes (no-op otherwise, or if joined).

    NCCL when the run's device is a GPU, gloo on CPUs. Each rank takes GPU LOCAL_RANK, so train.device must be
    auto or cuda (not cuda:N, which would put every rank on one GPU)."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return
    if not dist.is_available():
        raise GankitError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    missing = [name for name in LAUNCHER_ENV if not os.environ.get(name)]
    if missing:
        raise GankitError(f"WORLD_SIZE > 1 but {', '.join(missing)} not set; launch with torchrun, accelerate launch "
                          "or gankit train --nproc N (docs/distributed.md)")
    cuda = uses_cuda(device)
    if cuda and device not in ("auto", "cuda"):
        raise ConfigError(f"train.device '{device}' names one GPU, but under a launcher each rank takes GPU "
                          "LOCAL_RANK; use auto or cuda")
    if cuda:
        if local_rank() >= torch.cuda.device_count():
            raise GankitError(f"LOCAL_RANK {local_rank()} but this machine has {torch.cuda.device_count()} GPU(s); "
                              "launch at most one process per GPU")
        torch.cuda.set_device(local_rank())
    backend = "nccl" if cuda else "gloo"
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s),
                                device_id=torch.device("cuda", local_rank()) if cuda else None)
    except (RuntimeError, ValueError) as exc:  # DistError is a RuntimeError
        where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        raise GankitError(f"rank {rank()} could not join the {backend} process group at {where}: "
                          f"{first_line(exc)}") from None


def rank_device(device: torch.device) -> torch.device:
    """The device of this rank: GPU LOCAL_RANK for a CUDA run in a process group."""
    if device.type == "cuda" and world_size() > 1:
        return torch.device("cuda", local_rank())
    return device


def first_line(exc: BaseException) -> str:
    """The first line of an error's message, without the source location that gloo and NCCL put first."""
    text = re.sub(r"^\[[^\]]*\.(cpp|cc|h):\d+\]\s*", "", str(exc).strip())
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


PEER_SIGNS = ("connection closed", "connection reset", "broken pipe", "timed out", "timeout", "socket", "gloo",
              "nccl", "peer", "eof")


def peer_failure(exc: BaseException) -> str | None:
    """One line for an error raised by a collective because another rank failed, was killed or timed out;
    None for any other error."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    text = str(exc).lower()
    if isinstance(exc, dist.DistError) or (isinstance(exc, RuntimeError) and any(s in text for s in PEER_SIGNS)):
        return (f"rank {rank()} stopped: another rank failed, was killed or stopped answering "
                f"({first_line(exc)}); the run continues from its last checkpoint with --resume DIR")
    return None


def shutdown(wait: bool = False) -> None:
    """Leave the process group at the end of a command (NCCL warns at exit otherwise). ``wait``: after a success,
    first wait for every rank, so that no rank tears its connections down while rank 0 still writes (a gloo
    peer that vanishes mid-teardown can abort the other process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if wait:
            dist.barrier()
        dist.destroy_process_group()
    except (RuntimeError, ValueError):  # a peer is gone already: nothing left to close cleanly
        pass


def exit_process(status: int) -> None:
    """End a launched rank now, after ``shutdown``: flush the standard streams and leave through ``os._exit``.

    Why: gloo's C++ worker and transport threads belong to objects that Python may free only during interpreter
    finalization (a Work or the group kept alive by a reference cycle). Freeing them there can destroy a joinable
    std::thread or take the GIL of a dying interpreter, and the process aborts ("terminate called without an active
    exception", SIGABRT) after a run that succeeded. By now every file is written and closed (atomic renames) and
    the group is destroyed, so nothing is lost by skipping finalization; the exit status is kept."""
    import gc
    import sys

    gc.collect()  # free what the group left in cycles while the interpreter is whole
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
