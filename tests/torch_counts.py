"""Counts of a PyTorch module taken by running it: the outside measure the reports are compared with."""

from __future__ import annotations

import torch
from torch import nn


def weight_macs(module: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(parameters, MACs of conv and linear weights) of a hand-written module, by forward hooks, as
    torchvision's figures are computed: a conv's output elements x its input channels per group x kernel;
    a linear layer's output elements x its input features (per position on channels-last tensors)."""
    macs = 0

    def count(layer: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(layer, nn.Conv2d):
            per_output = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
            macs += out.numel() // out.shape[0] * per_output
        elif isinstance(layer, nn.Linear):
            macs += out.numel() // out.shape[0] * layer.in_features

    handles = [layer.register_forward_hook(count) for layer in module.modules()
               if isinstance(layer, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        module.eval()(x)
    for handle in handles:
        handle.remove()
    return sum(p.numel() for p in module.parameters()), macs
