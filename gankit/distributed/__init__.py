"""Data-parallel training on torch.distributed (docs/distributed.md).

A process launched by torchrun, ``accelerate launch`` or ``gankit train --nproc N`` finds RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT in its environment; the first Experiment it builds joins the process
group (NCCL on GPUs, gloo on CPUs). With WORLD_SIZE 1, or no launcher, nothing here does anything: every
function below is then the identity or a no-op, and a one-process run is exactly a plain run.

* ``process``: joining the group, rank and world size, the per-rank device, what a lost peer looks like;
* ``collectives``: gradient and buffer averaging, object broadcast and gather, the training-state checks;
* ``sync_batch_norm``: batch norm over the global batch (train.sync_batch_norm), on GPUs and on CPUs;
* ``launch``: ``gankit train --nproc N``, torchrun's launcher run from gankit.
"""
from gankit.distributed.collectives import (SharedError, all_mean, average_buffers, broadcast_from_main,
                                            broadcast_state, check_same, gather_objects, machine_main_first, on_main,
                                            reduce_gradients)
from gankit.distributed.process import (exit_process, is_main, launched, local_rank, peer_failure, rank, setup,
                                        shutdown, world_size)

__all__ = ["SharedError", "all_mean", "average_buffers", "broadcast_from_main", "broadcast_state", "check_same",
           "exit_process",
           "gather_objects", "is_main", "launched", "local_rank", "machine_main_first", "on_main", "peer_failure",
           "rank", "reduce_gradients", "setup", "shutdown", "world_size"]
