"""A convolution that computes only its kept im2col columns, and its record in a saved model.

A column is one (input channel, ky, kx) of a ``groups=1`` convolution. :class:`CompactConv2d`
splits the kept columns in two parts and adds their results:

- input channels that keep all kh * kw columns: an ordinary convolution over just those channels
  (the fast library kernel, on fewer input channels);
- the other kept columns: for every kernel offset (ky, kx) that keeps any, the strided window of
  the padded input at that offset and only those input channels, concatenated along the channel
  dimension (a gathered im2col with K rows instead of C_in * kh * kw), then one 1x1 convolution
  (a GEMM of C_out x K).

A layer pruned by whole input channels (``input_channel`` granularity) is thus a plain narrower
convolution. It computes what the dense convolution computes
with the pruned columns' weights at zero, up to float summation order, and exports to ONNX as
Gather, Conv, Pad, Slice, Concat and Add.

Whether it is faster than the dense convolution depends on K, the shapes and the library: the
dense kernel is a tuned direct or Winograd convolution, the compact one pays the gather copies.
:func:`secateurs.pruning.spp.compact.compact_conv` measures both and keeps the faster.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from secateurs.errors import SecateursError
from secateurs.models.modules import recorded_conv, swap_module


class CompactConv2d(nn.Module):
    """``conv`` (groups=1, zero padding) restricted to the columns where ``column_keep``
    ((C_in, kh, kw) bool) is True."""

    def __init__(self, conv: nn.Conv2d, column_keep: Tensor) -> None:
        super().__init__()
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise SecateursError(
                "CompactConv2d takes convolutions with groups=1 and numeric zero padding"
            )
        in_channels, kh, kw = column_keep.shape
        if (in_channels, kh, kw) != tuple(conv.weight.shape[1:]):
            raise SecateursError(f"column mask {tuple(column_keep.shape)} does not fit the conv")
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride = (kh, kw), tuple(conv.stride)
        self.padding, self.dilation = tuple(conv.padding), tuple(conv.dilation)
        weight = conv.weight.detach()
        # input channels keeping all kh * kw columns run as an ordinary convolution over those
        # channels; the remaining columns go through the gathered im2col
        whole = column_keep.flatten(1).all(1)
        self.register_buffer("whole_channels", torch.nonzero(whole).flatten())
        self.whole_weight = nn.Parameter(weight[:, whole].clone())
        partial = column_keep & ~whole.view(-1, 1, 1)
        self.offsets: list[tuple[int, int]] = []
        columns = []
        for ky in range(kh):
            for kx in range(kw):
                channels = torch.nonzero(partial[:, ky, kx]).flatten()
                if len(channels) == 0:
                    continue
                self.register_buffer(f"channels_{len(self.offsets)}", channels)
                self.offsets.append((ky, kx))
                columns.append(weight[:, channels, ky, kx])
        kept = torch.cat(columns, 1) if columns else weight.new_zeros(conv.out_channels, 0)
        self.kept_columns = int(column_keep.sum())
        self.weight = nn.Parameter(kept.clone().unsqueeze(-1).unsqueeze(-1))
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())

    def column_keep(self) -> Tensor:
        """The (C_in, kh, kw) bool mask of the columns this module computes (what rebuilds it)."""
        keep = torch.zeros(self.in_channels, *self.kernel_size, dtype=torch.bool)
        keep[self.whole_channels] = True
        for position, (ky, kx) in enumerate(self.offsets):
            keep[getattr(self, f"channels_{position}"), ky, kx] = True
        return keep

    def extra_repr(self) -> str:
        total = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, columns={self.kept_columns}/{total}"
        )

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        sizes = []
        for size, k, s, p, d in zip(
            (height, width),
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            strict=True,
        ):
            sizes.append((size + 2 * p - d * (k - 1) - 1) // s + 1)
        return sizes[0], sizes[1]

    def forward(self, x: Tensor) -> Tensor:
        out_h, out_w = self.output_size(x.shape[-2], x.shape[-1])
        out = None
        if len(self.whole_channels):
            out = F.conv2d(
                x.index_select(1, self.whole_channels),
                self.whole_weight,
                None,
                self.stride,
                self.padding,
                self.dilation,
            )
        if self.offsets:
            gathered = self._gather(x, out_h, out_w)
            partial = F.conv2d(gathered, self.weight)
            out = partial if out is None else out + partial
        if out is None:  # every column pruned: only the bias is left
            out = x.new_zeros(x.shape[0], self.out_channels, out_h, out_w)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)

    def _gather(self, x: Tensor, out_h: int, out_w: int) -> Tensor:
        """The kept partial columns of the im2col matrix, as (N, K, H_out, W_out)."""
        pad_h, pad_w = self.padding
        if pad_h or pad_w:
            x = F.pad(x, (pad_w, pad_w, pad_h, pad_h))
        (stride_h, stride_w), (dil_h, dil_w) = self.stride, self.dilation
        pieces = []
        for position, (ky, kx) in enumerate(self.offsets):
            top, left = ky * dil_h, kx * dil_w
            window = x[
                :,
                :,
                top : top + stride_h * (out_h - 1) + 1 : stride_h,
                left : left + stride_w * (out_w - 1) + 1 : stride_w,
            ]
            pieces.append(window.index_select(1, getattr(self, f"channels_{position}")))
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, 1)


def compact_columns_record(model: nn.Module) -> dict[str, list[int]]:
    """{name: kept column indices (flattened (C_in, kh, kw))} of every compact convolution in
    ``model``: what :func:`replace_compact_convs` needs to rebuild them."""
    return {
        name: torch.nonzero(module.column_keep().flatten()).flatten().tolist()
        for name, module in model.named_modules()
        if isinstance(module, CompactConv2d)
    }


def replace_compact_convs(model: nn.Module, record: dict[str, list[int]]) -> None:
    """Replace each named convolution by a :class:`CompactConv2d` of its recorded columns (the
    weights are loaded afterwards, like every other parameter)."""
    for name, kept in record.items():
        conv = recorded_conv(model, name, "compact")
        keep = torch.zeros(conv.weight[0].numel(), dtype=torch.bool)
        try:
            keep[torch.tensor(kept, dtype=torch.long)] = True
        except IndexError:
            raise SecateursError(f"the recorded columns of {name!r} do not fit it") from None
        swap_module(model, name, CompactConv2d(conv, keep.view_as(conv.weight[0])))
