"""The sparse execution path available on this CPU for window (and unstructured) sparsity: the
convolution as im2col (``F.unfold``) times a CSR sparse weight (``torch.sparse.mm``). Neither
onnxruntime nor PyTorch has a sparse convolution kernel here, so this is the best path that
exists; it is timed against the dense layer, and the dense form is kept where it does not win."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CSRConv2d(nn.Module):
    """An ungrouped convolution computed with a CSR weight (inference only)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.geometry = (conv.kernel_size, conv.dilation, conv.padding, conv.stride)
        self.out_channels = conv.out_channels
        matrix = conv.weight.detach().reshape(conv.out_channels, -1)
        self.weight = matrix.to_sparse_csr()
        self.bias = conv.bias.detach() if conv.bias is not None else None

    def forward(self, x: Tensor) -> Tensor:
        kernel, dilation, padding, stride = self.geometry
        batch, _, height, width = x.shape
        columns = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)
        out_h = (height + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
        out_w = (width + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
        # (K, B * L) dense columns; the sparse weight multiplies them all at once
        stacked = columns.transpose(0, 1).reshape(columns.shape[1], -1)
        out = torch.sparse.mm(self.weight, stacked).reshape(self.out_channels, batch, -1)
        out = out.transpose(0, 1).reshape(batch, self.out_channels, out_h, out_w)
        if self.bias is not None:
            out = out + self.bias[:, None, None]
        return out
