"""Batch norm over the global batch (train.sync_batch_norm): every rank normalises with the statistics of all
ranks' samples, so N processes at batch B/N compute what one process computes at batch B.

On GPUs this is torch's SyncBatchNorm (fused NCCL kernels). torch's version refuses CPU tensors, so on CPUs
(gloo) the same statistics come from two differentiable all-reduces: the global mean, then the global sum of
squared deviations (exact, unlike E[x^2] - E[x]^2). Gradients flow through both, as through torch's.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gankit.distributed.process import world_size


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks, differentiable: each rank's input reaches every rank's output, so the gradient of an
    input is the sum of the output gradients over the ranks (torch.distributed.nn's version is deprecated)."""

    @staticmethod
    def forward(ctx: object, x: Tensor) -> Tensor:  # noqa: ARG004
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: object, grad: Tensor) -> Tensor:  # noqa: ARG004
        return _AllReduceSum.apply(grad)


def all_reduce_sum(x: Tensor) -> Tensor:
    return _AllReduceSum.apply(x.contiguous())


class SyncBatchNorm(nn.SyncBatchNorm):
    """torch.nn.SyncBatchNorm that also runs on CPUs; state dicts are those of BatchNorm1d/2d."""

    def forward(self, input: Tensor) -> Tensor:
        if input.device.type == "cuda" or not self.training or world_size() == 1:
            return super().forward(input)  # torch's: NCCL on GPUs; plain batch norm in eval or in one process
        return self._cpu_forward(input)

    def _cpu_forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        channels = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, channels] + [1] * (x.dim() - 2)
        xf = x.float()
        local = torch.tensor([xf.numel() / channels], dtype=torch.float32)
        sums = all_reduce_sum(torch.cat([xf.sum(dims), local]))
        n = sums[-1]
        mean = sums[:-1] / n
        centred = xf - mean.view(shape)
        var = all_reduce_sum(centred.square().sum(dims)) / n
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * (n / (n - 1)).clamp_min(0)
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(unbiased.detach(), factor)
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batch_norm(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm layer replaced by SyncBatchNorm, sharing its parameters and buffers (an
    optimiser built before or after sees the same tensors)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, SyncBatchNorm):
        sync = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                             module.track_running_stats)
        if module.affine:
            sync.weight, sync.bias = module.weight, module.bias
        if module.track_running_stats:
            sync.running_mean, sync.running_var = module.running_mean, module.running_var
            sync.num_batches_tracked = module.num_batches_tracked
        sync.train(module.training)
        return sync
    for name, child in module.named_children():
        module._modules[name] = convert_sync_batch_norm(child)
    return module
