"""Any timm CNN is pruned or refused clearly (issue 29): timm families at random initialisation,
each pruned through the Python API at 32x32 (channel structure does not depend on resolution).

Each model: the output shape is kept, the masked model equals the pruned one, the MACs are within
2% of the target; where the graph cannot follow a structure, the record lists it (``protected``)
and the rest is pruned. A family whose protected structures leave the target out of reach is
asked for a target above its floor (``TARGETS``), and refusing the lower target says why.
"""

from __future__ import annotations

import copy
import time

import pytest
import torch

import secateurs
from ci_guard import require
from pruning_helpers import randomise_batchnorm, relative_difference
from secateurs.api import Pruned
from secateurs.errors import SecateursError
from secateurs.measurement import count_cost
from secateurs.pruning import ChannelGraph, PruningPlan, apply_masks

timm = require("timm")
INPUT = (3, 32, 32)
SECONDS = 60  # the bound for any model (these small ones take a few seconds)
# family -> the structure named in the record's protected list ("" when nothing is protected)
FAMILIES = {
    "resnet18": "",
    "resnext26ts": "grouped convolution",
    "seresnet18": "",
    "regnetx_002": "grouped convolution",
    "regnety_002": "grouped convolution",
    "mobilenetv2_050": "",
    "mobilenetv3_small_050": "",
    "tinynet_e": "",
    "lcnet_050": "",
    "hardcorenas_a": "",
    "mnasnet_050": "",
    "cs3darknet_s": "channel split",
    "cspresnet50": "channel split",
    "res2net50_14w_8s": "channel split",
    "rexnet_100": "channel slice",
    "convnext_atto": "",
    "repvgg_a0": "",
    "dla46_c": "",
    "ese_vovnet19b_dw": "",
    "gernet_s": "",
    "selecsls42b": "",
    "hrnet_w18_small": "",
    "ghostnet_050": "of the group's",
    "mixnet_s": "channel split",
    "densenet121": "",
}
SLOW = {"densenet121", "hrnet_w18_small", "mixnet_s", "ghostnet_050", "cspresnet50"}
SLOW |= {"res2net50_14w_8s", "selecsls42b"}
TARGETS = {"ghostnet_050": 0.92, "mixnet_s": 0.92}  # above their floors (structures kept whole)


def _pruned(name: str, target: float) -> tuple[torch.nn.Module, Pruned]:
    torch.manual_seed(0)
    model = randomise_batchnorm(timm.create_model(name, pretrained=False, num_classes=10))
    example = torch.zeros(1, *INPUT)
    return model, secateurs.prune(model, method="l1", example_input=example, target_macs=target)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in FAMILIES],
)
def test_timm_family_is_pruned_or_its_structures_kept_whole(name: str) -> None:
    target = TARGETS.get(name, 0.5)
    started = time.perf_counter()
    model, pruned = _pruned(name, target)
    assert time.perf_counter() - started < SECONDS
    protected = pruned.record.oneshot.protected
    if FAMILIES[name]:
        assert any(FAMILIES[name] in row["reason"] for row in protected), protected
    else:
        assert not protected, protected
    plan = PruningPlan.from_json(pruned.record.oneshot.plans[0])
    masked_model = copy.deepcopy(model).eval()
    apply_masks(ChannelGraph(masked_model, INPUT), plan)
    images = torch.randn(2, *INPUT)
    with torch.no_grad():
        masked, got = masked_model(images), pruned.model(images)
    assert got.shape == (2, 10)
    assert relative_difference(masked, got) <= 1e-4
    ratio = count_cost(pruned.model, INPUT)["macs"] / count_cost(model, INPUT)["macs"]
    assert abs(ratio / target - 1) <= 0.02, ratio


@pytest.mark.slow
def test_dual_path_network_is_refused_naming_its_channel_slices() -> None:
    """DPN slices its dual paths everywhere: almost nothing can be pruned safely, so half the
    MACs is refused in one line that says why, not attempted."""
    with pytest.raises(SecateursError, match=r"cannot be met.*kept whole.*channel slice"):
        _pruned("dpn48b", 0.5)
