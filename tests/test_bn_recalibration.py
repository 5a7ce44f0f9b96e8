"""BatchNorm recalibration after pruning: the statistics are the exact average over the given
batches of what the evaluated network feeds each BatchNorm; nothing else changes."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from secateurs.pruning.bn_recalibration import recalibrate_batchnorm


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Dropout(0.9),  # must stay in eval mode: the BatchNorm below sees undropped inputs
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 5 * 5, 6),
        nn.BatchNorm1d(6, momentum=0.3),
    )


def test_statistics_are_the_average_over_all_batches() -> None:
    model = net()
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randn(8, 3, 5, 5, generator=generator) * 2 + 1 for _ in range(3)]
    with torch.no_grad():
        conv_out = [model[0](b) for b in batches]
        linear_out = [model[5](model[4](model[3](model[2].eval()(c)))) for c in conv_out]
    # the second BatchNorm's inputs depend on the first one's new statistics: recompute them
    means = torch.stack([c.mean((0, 2, 3)) for c in conv_out]).mean(0)
    variances = torch.stack([c.var((0, 2, 3), unbiased=True) for c in conv_out]).mean(0)
    before = copy.deepcopy(model.state_dict())
    model.train()

    assert recalibrate_batchnorm(model, batches) == 3

    assert torch.allclose(model[2].running_mean, means, atol=1e-6)
    assert torch.allclose(model[2].running_var, variances, atol=1e-5)
    # all BatchNorms run in training mode in one pass (as torch.optim.swa_utils.update_bn):
    # the second saw the first normalising each batch with that batch's own statistics
    first = model[2]
    with torch.no_grad():
        normalised = [
            F.batch_norm(c, None, None, first.weight, first.bias, True, 0.0, first.eps)
            for c in conv_out
        ]
        hidden = [model[5](model[4](model[3](n))) for n in normalised]
    assert torch.allclose(
        model[6].running_mean, torch.stack([h.mean(0) for h in hidden]).mean(0), atol=1e-5
    )
    assert not torch.allclose(model[6].running_mean, torch.stack(linear_out).mean((0, 1)))
    assert model.training and model[1].training  # mode restored
    assert model[2].momentum == 0.1 and model[6].momentum == 0.3
    for name, value in model.state_dict().items():
        if "running" not in name and "num_batches" not in name:
            assert torch.equal(value, before[name]), name


def test_without_batches_or_batchnorm_nothing_changes() -> None:
    model = net()
    state = copy.deepcopy(model.state_dict())
    assert recalibrate_batchnorm(model, []) == 0
    assert recalibrate_batchnorm(nn.Linear(2, 2), [torch.randn(1, 2)]) == 0
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name])
