"""PyTorch twins of bsi_keras's models, for the benchmarks against PyTorch eager.

Each module computes what its Keras counterpart computes, in PyTorch's layout (NCHW
shapes; the benchmarks keep tensors channels-last in memory, PyTorch's faster layout on
both CPU and GPU). Batch norm follows `bsi_keras.layers.GhostBatchNormalization`: each
virtual batch of consecutive examples is normalized with its own biased statistics, and the
moving statistics move once per call by the example-weighted mean of the virtual batches'.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


class GhostBatchNorm2d(nn.Module):
    """Ghost batch normalization over NCHW inputs, vectorized over the virtual batches.

    Args:
        channels: number of channels.
        virtual_batch_size: examples per virtual batch (the last one of a batch that is not
            a multiple may be smaller, as in the Keras layer).
        momentum: PyTorch's convention (0.1 is Keras's 0.9).
        eps: added to the variance.
    """

    def __init__(self, channels: int, virtual_batch_size: int, momentum: float, eps: float):
        super().__init__()
        self.virtual_batch_size = virtual_batch_size
        self.momentum = momentum
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        batch = x.shape[0]
        size = min(self.virtual_batch_size, batch)
        full = batch // size * size
        out, mean_sum, var_sum = self._normalize(x[:full], size)
        if full < batch:
            rest, rest_mean, rest_var = self._normalize(x[full:], batch - full)
            out = torch.cat([out, rest])
            mean_sum, var_sum = mean_sum + rest_mean, var_sum + rest_var
        with torch.no_grad():
            self.running_mean.lerp_(mean_sum / batch, self.momentum)
            self.running_var.lerp_(var_sum / batch, self.momentum)
        return out

    def _normalize(
        self, x: torch.Tensor, size: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalize groups of ``size`` examples; return the output and the groups' mean
        and variance summed with weight ``size`` (the example-weighted sums)."""
        grouped = x.float().view(x.shape[0] // size, size, *x.shape[1:])
        var, mean = torch.var_mean(grouped, dim=(1, 3, 4), keepdim=True, correction=0)
        scale = self.weight.view(1, 1, -1, 1, 1) * torch.rsqrt(var + self.eps)
        shift = self.bias.view(1, 1, -1, 1, 1) - mean * scale
        out = (grouped * scale + shift).view_as(x).to(x.dtype)
        return (
            out,
            size * mean.detach().sum((0, 1)).flatten(),
            size * var.detach().sum((0, 1)).flatten(),
        )


def mnist_cnn(virtual_batch_size: int = 10) -> nn.Sequential:
    """`bsi_keras.models.mnist_cnn`: ghost BN, conv 8 3x3, max-pool 2, dense 10 (logits)."""
    return nn.Sequential(
        GhostBatchNorm2d(1, virtual_batch_size, momentum=0.1, eps=1e-3),
        nn.Conv2d(1, 8, 3),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 13 * 13, 10),
    )


class _Block(nn.Module):
    """Post-activation basic block (conv-BN-ReLU-conv-BN, add, ReLU), as in `wide_resnet`."""

    def __init__(self, inputs: int, filters: int, stride: int, virtual_batch_size: int):
        super().__init__()

        def norm(channels: int) -> GhostBatchNorm2d:
            return GhostBatchNorm2d(channels, virtual_batch_size, momentum=0.1, eps=1e-5)

        self.conv1 = nn.Conv2d(inputs, filters, 3, stride, padding=1, bias=False)
        self.bn1 = norm(filters)
        self.conv2 = nn.Conv2d(filters, filters, 3, 1, padding=1, bias=False)
        self.bn2 = norm(filters)
        self.shortcut = nn.Identity()
        if stride != 1 or inputs != filters:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, filters, 1, stride, bias=False), norm(filters)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def wide_resnet(
    depth: int = 16, width: int = 4, num_classes: int = 10, virtual_batch_size: int = 128
) -> nn.Sequential:
    """`bsi_keras.models.wide_resnet` in its default post-activation style (WRN-16-4)."""
    blocks = (depth - 2) // 6
    layers: list[nn.Module] = [
        nn.Conv2d(3, 16 * width, 3, padding=1, bias=False),
        GhostBatchNorm2d(16 * width, virtual_batch_size, momentum=0.1, eps=1e-5),
        nn.ReLU(),
    ]
    inputs = 16 * width
    for stage, filters in enumerate((16 * width, 32 * width, 64 * width)):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(_Block(inputs, filters, stride, virtual_batch_size))
            inputs = filters
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(inputs, num_classes)]
    return nn.Sequential(*layers)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    steps: int | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """One epoch (or ``steps`` steps) of shuffled mini-batch training; returns the last loss.

    Args:
        model: the network (in training mode).
        optimizer: its optimizer.
        x, y: the whole training set on the training device (x channels-last NCHW).
        batch_size: examples per step.
        steps: stop after this many steps (None: the whole epoch).
        autocast_dtype: run the forward pass under ``torch.autocast`` in this dtype.
    """
    order = torch.randperm(len(x), device=x.device)
    starts = list(range(0, len(x), batch_size))[:steps]
    loss = torch.zeros(())
    for start in starts:
        index = order[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        precision = (
            torch.autocast(x.device.type, autocast_dtype)
            if autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with precision:
            loss = F.cross_entropy(model(x[index]), y[index])
        loss.backward()
        optimizer.step()
    return float(loss.detach())
