"""``gankit train --nproc N``: N local processes started by torchrun's own launcher (torch.distributed.launcher),
exactly as ``torchrun --standalone --nproc-per-node N -m gankit train ...`` starts them.

The launcher watches the workers: when one fails or is killed, it stops the others, and this command prints one
line naming the rank and exits non-zero.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import uuid

from gankit.errors import GankitError

USER_ERROR = 2  # the rank printed its one-line error (gankit.cli)
PEER_FAILURE = 3  # the rank stopped because another one failed: not the cause


def threads_per_process(nproc: int) -> int:
    """CPU threads for each of nproc processes on this machine: the cores shared out (oversubscribed threads
    slow every process down many times over)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // nproc)


def launch_local(nproc: int, argv: list[str]) -> int:
    """Run ``python -m gankit ARGV`` in ``nproc`` processes on this machine; the exit status of the job."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise GankitError(f"--nproc must be >= 1, got {nproc}")
    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_process(nproc)))
    os.environ["GANKIT_LOCAL_LAUNCH"] = "1"  # workers leave the report of a lost peer to this process
    # The agent logs every step of a shutdown at WARNING; gankit reports the outcome in one line instead.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
                          start_method="spawn", shutdown_timeout=10)
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "gankit", *argv)
    except ChildFailedError as exc:
        # The cause first: a user error (already printed), then a crash or a kill, then the ranks that were
        # stopped because of it (the launcher ends the survivors with SIGTERM).
        order = {USER_ERROR: 0, -signal.SIGTERM: 2, PEER_FAILURE: 3}
        rank, failure = min(exc.failures.items(),
                            key=lambda item: (order.get(item[1].exitcode, 1), item[1].timestamp, item[0]))
        if failure.exitcode == USER_ERROR:
            return USER_ERROR  # the rank printed its one-line error already
        how = (f"was killed by {failure.signal_name()}" if failure.exitcode < 0
               else f"exited with status {failure.exitcode}")
        print(f"gankit: error: rank {rank} (pid {failure.pid}) {how}; the other ranks were stopped. A run continues "
              "from its last checkpoint with --resume DIR", file=sys.stderr)
        return 1
    return 0
