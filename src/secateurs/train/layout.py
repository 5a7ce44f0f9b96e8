"""Memory layout for training: channels-last only where PyTorch's CPU kernels survive it."""

from __future__ import annotations

from torch import nn

# Measured with torch 2.14.1 on the project machine (decisions.md, "Channels-last"): the backward
# pass of a 1x1 convolution with stride > 1 and fewer than 8 input channels per group corrupts
# the heap (segfault or abort) when its input is channels-last. 8 or more input channels, stride 1
# or a 3x3 kernel run fine (measured with groups = 1, batch 128, 32x32 inputs; grouped layers
# are checked per group as a precaution). Pruning makes exactly such layers: a ResNet's
# downsampling shortcut cut to 7 input channels.
MIN_SAFE_CHANNELS = 8


def channels_last_crashes(model: nn.Module) -> list[str]:
    """Names of the convolutions in ``model`` whose channels-last backward crashes PyTorch."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and module.stride != (1, 1)
        and module.in_channels // module.groups < MIN_SAFE_CHANNELS
    ]
