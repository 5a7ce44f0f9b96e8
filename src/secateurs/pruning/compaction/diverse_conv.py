"""A diverse group convolution: SG-CNN's grouped layer, computing only the kept connections.

SG-CNN clusters a convolution's filters into G groups; every filter of group g reads only g's set
of input channels (sets differ in size and may overlap). The masked form is a dense ``nn.Conv2d``
with W[i, c] = 0 wherever filter i's group does not read channel c. :class:`DiverseGroupConv2d`
computes the same output (up to float summation order) in one of two forms:

- ``"grouped"``: the input channels of every group gathered once, side by side (one
  ``index_select``), then ONE ``conv2d(groups=G)`` and one ``index_select`` putting the filters
  back in their original order. A grouped convolution needs equal groups, so each group's input
  set is padded with channels it does not read (the lowest-numbered ones) and each group's filters
  with extra filters, all with zero weights; padded filters' outputs are dropped. Work per output
  position: G x F_max x I_max x kh x kw (+ G x F_max bias adds).
- ``"per_group"``: one convolution per group on its own gathered input, the outputs concatenated
  and put back in the original order. Work: sum_g F_g x I_g x kh x kw (+ C_out bias adds), no
  padding, but G library calls and G gathers.

``"auto"`` takes the grouped form when its work is at most :data:`AUTO_PADDING_LIMIT` times the
per-group work. Which one is faster than the dense convolution depends on the shapes and the
library: measure (``benchmarks/diverse_conv.py``). The gathers are copies, not counted as MACs.

The parameters are the kept weights only, one (F_g, I_g, kh, kw) kernel per group (``weights``)
and one (F_g,) bias per group (``biases``): the same tensors in both forms, so a model can be
fine-tuned, saved to safetensors and reloaded in either form. The grouped form pads them into one
kernel at every call; without autograd (inference) the padded kernel is kept until a parameter
changes. A group that reads no channel computes a zero kernel on channel 0 (its output is its
bias) in both forms.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from secateurs.errors import SecateursError
from secateurs.models.modules import recorded_conv, swap_module

FORMS = ("grouped", "per_group")
AUTO_PADDING_LIMIT = 1.25  # "auto" accepts the grouped form's padding up to 25% more work
_GEOMETRY = ("kernel_size", "stride", "padding", "dilation")

# padded grouped kernels kept for inference: {module: (parameter state, (weight, bias))}; outside
# the module so that copies of a module never share or inherit a stale kernel
_PADDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    first, second = (int(v) for v in value)
    return (first, second)


@dataclass
class DiverseSpec:
    """The geometry of a diverse group convolution, in plain values (what rebuilds it from JSON).

    ``groups[g]`` = (output indices of group g's filters, input channels group g reads).
    ``form``: ``"grouped"``, ``"per_group"`` or ``"auto"`` (see the module docstring)."""

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    bias: bool
    groups: list[tuple[list[int], list[int]]]
    form: str = "auto"

    def __post_init__(self) -> None:
        for name in _GEOMETRY:
            setattr(self, name, _pair(getattr(self, name)))
        self.groups = [([int(i) for i in f], [int(c) for c in c_]) for f, c_ in self.groups]
        problem = self._problem()
        if problem:
            raise ValueError(f"invalid diverse group convolution: {problem}")

    def _problem(self) -> str | None:
        if self.form not in (*FORMS, "auto"):
            return f"form {self.form!r} is not one of {(*FORMS, 'auto')}"
        filters = sorted(i for group, _ in self.groups for i in group)
        if filters != list(range(self.out_channels)):
            return f"the groups' filters are not each of the {self.out_channels} outputs once"
        for index, (group, inputs) in enumerate(self.groups):
            if not group:
                return f"group {index} has no filter"
            if len(set(inputs)) != len(inputs) or not all(
                0 <= c < self.in_channels for c in inputs
            ):
                return f"group {index}'s input channels repeat or exceed {self.in_channels}"
        return None

    def to_json(self) -> dict[str, Any]:
        """Plain lists, ints and strings."""
        record = asdict(self)
        for name in _GEOMETRY:
            record[name] = list(record[name])
        record["groups"] = [[list(f), list(c)] for f, c in self.groups]
        return record

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DiverseSpec:
        """The spec :meth:`to_json` wrote; ValueError if it is not one."""
        try:
            return cls(**{**data, "groups": [(f, c) for f, c in data["groups"]]})
        except (TypeError, KeyError) as error:
            raise ValueError(f"not a diverse group convolution spec: {error}") from None

    # -- work -------------------------------------------------------------------------------
    def inputs_computed(self, group: int) -> int:
        """Input channels group ``group`` convolves in the per-group form (at least one)."""
        return max(len(self.groups[group][1]), 1)

    def grouped_shape(self) -> tuple[int, int, int]:
        """(G, filters per group, input channels per group) of the grouped form, padded."""
        filters = max(len(f) for f, _ in self.groups)
        inputs = max(self.inputs_computed(g) for g in range(len(self.groups)))
        return len(self.groups), filters, inputs

    def work(self, form: str) -> int:
        """Multiply-adds per output position in ``form``, padding and bias adds included."""
        taps = self.kernel_size[0] * self.kernel_size[1]
        if form == "grouped":
            groups, filters, inputs = self.grouped_shape()
            return groups * filters * (inputs * taps + int(self.bias))
        if form == "per_group":
            return sum(
                len(f) * (self.inputs_computed(g) * taps + int(self.bias))
                for g, (f, _) in enumerate(self.groups)
            )
        raise ValueError(f"form {form!r} is not one of {FORMS}")

    def resolved_form(self) -> str:
        """``form``, with ``"auto"`` replaced by the form it chooses."""
        if self.form != "auto":
            return self.form
        limit = AUTO_PADDING_LIMIT * self.work("per_group")
        return "grouped" if self.work("grouped") <= limit else "per_group"


class DiverseGroupConv2d(nn.Module):
    """A convolution whose filter groups each read their own set of input channels (SG-CNN),
    computing only those connections; built from a :class:`DiverseSpec` with zero weights (load
    them afterwards) or from a masked dense convolution by :meth:`from_masked`."""

    def __init__(self, spec: DiverseSpec) -> None:
        super().__init__()
        self.spec = spec
        self.in_channels, self.out_channels = spec.in_channels, spec.out_channels
        self.kernel_size, self.stride = spec.kernel_size, spec.stride
        self.padding, self.dilation = spec.padding, spec.dilation
        kh, kw = spec.kernel_size
        self.weights = nn.ParameterList(
            nn.Parameter(torch.zeros(len(f), len(c), kh, kw)) for f, c in spec.groups
        )
        self.biases = (
            nn.ParameterList(nn.Parameter(torch.zeros(len(f))) for f, _ in spec.groups)
            if spec.bias
            else None
        )
        self._index_per_group()
        self._index_grouped()
        self.form = spec.resolved_form()

    def _index_per_group(self) -> None:
        """Per group, the channels it gathers; the inverse of the group-by-group filter order."""
        everything = list(range(self.in_channels))
        self._gathers: list[bool] = []
        for index, (_, inputs) in enumerate(self.spec.groups):
            read = inputs or [0]
            self._gathers.append(read != everything)
            self.register_buffer(f"inputs_{index}", torch.tensor(read), persistent=False)
        order = torch.tensor([i for filters, _ in self.spec.groups for i in filters])
        self.register_buffer("per_group_output", torch.argsort(order), persistent=False)
        self._per_group_reorders = order.tolist() != list(range(self.out_channels))

    def _index_grouped(self) -> None:
        """The gathered input of the grouped form (every group's set padded to the same size)
        and, for each original filter, its position among the padded groups' outputs."""
        _, filters, inputs = self.spec.grouped_shape()
        gathered, positions = [], [0] * self.out_channels
        for index, (group, read) in enumerate(self.spec.groups):
            reads = set(read)
            unread = [c for c in range(self.in_channels) if c not in reads]
            gathered += read + unread[: inputs - len(read)]
            for slot, i in enumerate(group):
                positions[i] = index * filters + slot
        self.register_buffer("grouped_input", torch.tensor(gathered), persistent=False)
        self.register_buffer("grouped_output", torch.tensor(positions), persistent=False)
        self._grouped_gathers = gathered != list(range(self.in_channels))
        self._grouped_reorders = positions != list(range(len(self.spec.groups) * filters))

    @classmethod
    def from_masked(
        cls, conv: nn.Conv2d, labels: Sequence[int], keep: Tensor, form: str = "auto"
    ) -> DiverseGroupConv2d:
        """The module computing ``conv`` with weight W[i, c] used only where ``keep[i, c]``.

        ``labels[i]``: filter i's group (any ints; groups ordered by label); ``keep``: bool
        (C_out, C_in), equal rows within a group (ValueError otherwise). Weights where ``keep``
        is False are ignored, as the masked convolution's zeros would be."""
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("a diverse group convolution replaces a groups=1, zero-padded conv")
        labels = [int(label) for label in labels]
        keep = torch.as_tensor(keep).bool()
        if len(labels) != conv.out_channels or keep.shape != conv.weight.shape[:2]:
            raise ValueError(
                f"{len(labels)} labels and keep {tuple(keep.shape)} do not fit a conv of "
                f"{conv.in_channels} -> {conv.out_channels} channels"
            )
        groups = []
        for label in sorted(set(labels)):
            filters = [i for i, own in enumerate(labels) if own == label]
            rows = keep[filters]
            if not bool((rows == rows[0]).all()):
                raise ValueError(f"the filters of group {label} do not read the same channels")
            groups.append((filters, torch.nonzero(rows[0]).flatten().tolist()))
        spec = DiverseSpec(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.bias is not None,
            groups,
            form,
        )
        module = cls(spec)
        with torch.no_grad():
            for index, (filters, inputs) in enumerate(groups):
                chosen = conv.weight[filters][:, inputs]
                module.weights[index].copy_(chosen)
                if module.biases is not None:
                    module.biases[index].copy_(conv.bias[filters])
        return module

    # -- forms and cost ------------------------------------------------------------------------
    def forms_possible(self) -> list[str]:
        """The forms this module can run: both, since groups are padded to equal sizes."""
        return list(FORMS)

    def set_form(self, form: str) -> DiverseGroupConv2d:
        """Run as ``form`` from now on (``"auto"``: the spec's rule); the weights are unchanged."""
        self.form = replace(self.spec, form=form).resolved_form()
        return self

    def macs(self, output_size: tuple[int, int], form: str | None = None) -> int:
        """Multiply-adds of one image with output (H_out, W_out) in ``form`` (default: the one
        in use), padding and bias adds included: Torch-Pruning counts a dense conv's bias adds."""
        return self.spec.work(form or self.form) * output_size[0] * output_size[1]

    def padding_overhead(self) -> float:
        """The grouped form's work / the per-group form's (1.0: no padding)."""
        return self.spec.work("grouped") / self.spec.work("per_group")

    def record(self) -> dict[str, Any]:
        """The JSON spec that rebuilds this module, in the form it runs."""
        return replace(self.spec, form=self.form).to_json()

    def keep(self) -> Tensor:
        """bool (C_out, C_in): which input channels each filter reads."""
        keep = torch.zeros(self.out_channels, self.in_channels, dtype=torch.bool)
        for filters, inputs in self.spec.groups:
            keep[torch.tensor(filters).view(-1, 1), torch.tensor(inputs, dtype=torch.long)] = True
        return keep

    def masked_conv(self) -> nn.Conv2d:
        """The dense ``nn.Conv2d`` with zeros at the connections not kept: what this computes."""
        spec = self.spec
        conv = nn.Conv2d(
            spec.in_channels,
            spec.out_channels,
            spec.kernel_size,
            spec.stride,
            spec.padding,
            spec.dilation,
            bias=spec.bias,
        )
        with torch.no_grad():
            conv.weight.zero_()
            for index, (filters, inputs) in enumerate(spec.groups):
                rows = torch.tensor(filters).view(-1, 1)
                conv.weight[rows, torch.tensor(inputs, dtype=torch.long)] = self.weights[index]
                if self.biases is not None:
                    conv.bias[filters] = self.biases[index]
        return conv

    def extra_repr(self) -> str:
        kept = sum(len(f) * len(c) for f, c in self.spec.groups)
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, groups={len(self.spec.groups)}, "
            f"connections={kept}/{self.in_channels * self.out_channels}, form={self.form}"
        )

    # -- computation ---------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        if self.form == "grouped":
            return self._forward_grouped(x)
        return self._forward_per_group(x)

    def _forward_grouped(self, x: Tensor) -> Tensor:
        weight, bias = self._grouped_parameters()
        if self._grouped_gathers:
            x = x.index_select(1, self.grouped_input)
        groups = len(self.spec.groups)
        out = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)
        return out.index_select(1, self.grouped_output) if self._grouped_reorders else out

    def _forward_per_group(self, x: Tensor) -> Tensor:
        outputs = []
        for index, weight in enumerate(self.weights):
            if not self.spec.groups[index][1]:  # reads nothing: zero kernel on channel 0, bias only
                weight = weight.new_zeros(weight.shape[0], 1, *self.kernel_size)
            read = (
                x.index_select(1, getattr(self, f"inputs_{index}")) if self._gathers[index] else x
            )
            bias = None if self.biases is None else self.biases[index]
            outputs.append(F.conv2d(read, weight, bias, self.stride, self.padding, self.dilation))
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, 1)
        return out.index_select(1, self.per_group_output) if self._per_group_reorders else out

    def _grouped_parameters(self) -> tuple[Tensor, Tensor | None]:
        """The padded (G F_max, I_max, kh, kw) kernel and (G F_max,) bias; reused without
        autograd while no parameter has changed (same storage, same version)."""
        if torch.is_grad_enabled():
            return self._pad_grouped()
        state = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in self.parameters())
        cached = _PADDED.get(self)
        if cached is None or cached[0] != state:
            cached = (state, self._pad_grouped())
            _PADDED[self] = cached
        return cached[1]

    def _pad_grouped(self) -> tuple[Tensor, Tensor | None]:
        # zeros concatenated rather than F.pad, sizes from the spec: the exported ONNX graph then
        # knows the kernel's shape (the exporter needs it for a Conv)
        _, filters, inputs = self.spec.grouped_shape()
        kh, kw = self.kernel_size
        pieces, bias_pieces = [], []
        for index, (group, read) in enumerate(self.spec.groups):
            weight = self.weights[index]
            if inputs > len(read):
                missing = weight.new_zeros(len(group), inputs - len(read), kh, kw)
                weight = torch.cat([weight, missing], 1)
            pieces.append(weight)
            if filters > len(group):
                pieces.append(weight.new_zeros(filters - len(group), inputs, kh, kw))
            if self.biases is not None:
                bias_pieces += [self.biases[index], weight.new_zeros(filters - len(group))]
        bias = torch.cat(bias_pieces) if bias_pieces else None
        return torch.cat(pieces), bias


def diverse_convs_record(model: nn.Module) -> dict[str, dict[str, Any]]:
    """{name: JSON spec} of every diverse group convolution in ``model``: what
    :func:`replace_diverse_convs` needs to rebuild them (the manifest's ``diverse_groups``)."""
    return {
        name: module.record()
        for name, module in model.named_modules()
        if isinstance(module, DiverseGroupConv2d)
    }


def replace_diverse_convs(model: nn.Module, record: dict[str, dict[str, Any]]) -> None:
    """Replace each named ``nn.Conv2d`` of ``model`` by a :class:`DiverseGroupConv2d` of its
    recorded spec, with zero weights (they are loaded afterwards, like every other parameter)."""
    for name, data in record.items():
        conv = recorded_conv(model, name, "diverse")
        try:
            spec = DiverseSpec.from_json(data)
        except ValueError as error:
            raise SecateursError(f"the recorded diverse layer {name!r}: {error}") from None
        geometry = (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride)
        recorded = (spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride)
        if geometry != recorded or (conv.padding, conv.dilation) != (spec.padding, spec.dilation):
            raise SecateursError(f"the recorded diverse layer {name!r} does not fit the conv")
        if (conv.bias is not None) != spec.bias or conv.groups != 1:
            raise SecateursError(f"the recorded diverse layer {name!r} does not fit the conv")
        swap_module(model, name, DiverseGroupConv2d(spec))
