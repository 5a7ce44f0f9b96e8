"""The channel floor (secateurs.pruning.floor): hand-computed floors per group, kept under global
ranking with scores that would wipe a layer, on every allocation path, recorded in the report,
and the thinnest ResNet-20 and ResNet-56 it allows (docs/latency.md, "Channel floor")."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latency_helpers import ScriptedBackend
from secateurs.errors import SecateursError
from secateurs.latency import LatencySource, LatencySpec
from secateurs.latency.allocate import greedy_path
from secateurs.models import create_model
from secateurs.pruning import Allocation, ChannelGraph, PruningPlan, Target, remove_channels
from secateurs.pruning.allocation import Allocator, allocate_layer_ratios
from secateurs.pruning.floor import Floor, end_groups, floor_record, group_floors
from secateurs.pruning.graph import ChannelGroup
from secateurs.pruning.methods import create_method
from secateurs.pruning.taylor_gradual import GradualSchedule, GradualTaylor

INPUT = (3, 32, 32)
# ResNet-20's groups (option-B shortcuts): the three streams are rooted at conv1 (the stem, 16),
# layer2.0.shortcut.0 (32) and layer3.0.shortcut.0 (64, read by fc: the classifier's input); each
# block's inner width is rooted at its conv1 (16, 32, 64)
RESNET20_FLOORS = {
    "conv1": 4,  # stem: ceil(16 / 4)
    **{f"layer1.{b}.conv1": 2 for b in range(3)},  # ceil(16 / 8)
    "layer2.0.shortcut.0": 4,  # 32 / 8
    **{f"layer2.{b}.conv1": 4 for b in range(3)},
    "layer3.0.shortcut.0": 16,  # classifier input: 64 / 4
    **{f"layer3.{b}.conv1": 8 for b in range(3)},  # 64 / 8, a multiple of 8 already
}


def group(size: int) -> ChannelGroup:
    return ChannelGroup(f"g{size}", size, [])


def test_floors_by_hand() -> None:
    floor = Floor()
    assert [floor.of(group(n)) for n in (1, 3, 16, 32, 64, 72, 256)] == [1, 1, 2, 4, 8, 16, 32]
    assert [floor.of(group(n), end=True) for n in (16, 32, 64, 72)] == [4, 8, 16, 24]
    # --min-channels: the larger of the two applies
    assert Floor(min_channels=6).of(group(16)) == 6 and Floor(min_channels=6).of(group(64)) == 8
    assert Floor(min_channels=12).of(group(64)) == 12 and Floor(min_channels=40).of(group(32)) == 32
    # off: min_channels alone; the ends never under the others
    assert Floor(0, 0).of(group(64), end=True) == 1
    assert Floor(0.3, 0.1).of(group(16), end=True) == 5
    for bad in (-0.1, 1.0):
        with pytest.raises(SecateursError, match="must be in"):
            Floor(fraction=bad)


def test_resnet20_floors_and_ends() -> None:
    graph = ChannelGraph(create_model("resnet20"), INPUT)
    assert end_groups(graph) == {"conv1": "stem", "layer3.0.shortcut.0": "classifier input"}
    assert group_floors(graph, Floor()) == RESNET20_FLOORS
    larger = group_floors(graph, Allocation(min_channels=6).floor())
    assert larger["conv1"] == 6 and larger["layer1.0.conv1"] == 6 and larger["layer3.1.conv1"] == 8
    lowered = group_floors(graph, Floor(ends_fraction=0))
    assert lowered["conv1"] == 2 and lowered["layer3.0.shortcut.0"] == 8


def wiping_scores(graph: ChannelGraph) -> dict[str, torch.Tensor]:
    """The stem and a 64-wide block scored a million times below everything else: a global
    ranking without a floor takes them down to one channel first."""
    scores = {g.root: 1.0 + torch.rand(g.size, dtype=torch.float64) for g in graph.prunable_groups}
    for root in ("conv1", "layer3.1.conv1"):
        scores[root] = scores[root] * 1e-6
    return scores


@pytest.mark.parametrize("strategy", ["global", "uniform"])
@pytest.mark.parametrize(("kind", "ratio"), [("macs", 0.5), ("macs", 0.05), ("params", 0.1)])
def test_no_group_goes_under_its_floor(strategy: str, kind: str, ratio: float) -> None:
    torch.manual_seed(0)
    graph = ChannelGraph(create_model("resnet20"), INPUT)
    allocator = Allocator(graph, wiping_scores(graph), Allocation(strategy, normalize="none"))
    plan, _ = allocator.meet(Target(kind, ratio))
    kept = plan.kept(graph)
    assert all(kept[root] >= floor for root, floor in RESNET20_FLOORS.items())
    if strategy == "global":
        assert kept["conv1"] == 4 and kept["layer3.1.conv1"] == 8  # wiped down to the floor


def test_without_the_floor_the_same_scores_collapse_the_stem() -> None:
    torch.manual_seed(0)
    graph = ChannelGraph(create_model("resnet20"), INPUT)
    allocation = Allocation(normalize="none", min_fraction=0, ends_fraction=0)
    plan, _ = Allocator(graph, wiping_scores(graph), allocation).meet(Target("macs", 0.5))
    assert plan.kept(graph)["conv1"] == 1


def test_min_channels_larger_wins_and_layer_ratios_keep_the_floor() -> None:
    torch.manual_seed(0)
    graph = ChannelGraph(create_model("resnet20"), INPUT)
    allocation = Allocation(normalize="none", min_channels=6)
    plan, _ = Allocator(graph, wiping_scores(graph), allocation).meet(Target("macs", 0.3))
    kept = plan.kept(graph)
    assert kept["conv1"] == 6 and all(kept[root] >= 6 for root in RESNET20_FLOORS)
    scores = wiping_scores(graph)
    ratios = {"conv1": 0.99, "layer3.1.conv1": 0.99, "layer2.1.conv1": 0.5}
    plan = allocate_layer_ratios(graph, scores, ratios, Allocation())
    assert [plan.kept(graph)[r] for r in ratios] == [4, 8, 16]


def test_the_latency_knapsack_stops_at_the_floor(tmp_path) -> None:
    """Every width efficient (quantum 1): the knapsack's last state is every group at its
    floor, the stem and the classifier's input at a quarter."""
    model = create_model("resnet20").eval()
    spec = LatencySpec(backend="scripted", threads=2, grid=16, cache=tmp_path)
    source = LatencySource(spec, ScriptedBackend(quantum=1))
    graph = ChannelGraph(model, INPUT)
    allocator = Allocator(graph, wiping_scores(graph), Allocation(latency=source))
    path = greedy_path(allocator, source.model_for(graph))
    last = dict(zip([g.root for g in allocator.groups], path[-1].kept, strict=True))
    assert last == RESNET20_FLOORS


def test_gradual_taylor_keeps_the_floor() -> None:
    """A 16-wide stem scored zero, a 6-wide classifier input scored one: everything removable
    goes, down to ceil(16 / 4) = 4 and ceil(6 / 4) = 2."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4),
    )  # fmt: skip
    callback = GradualTaylor(GradualSchedule(0.01, 1, 0.0, per_step=100), (3, 8, 8))
    callback.prepare(model, (3, 8, 8))
    callback.sums_ = {"0": torch.zeros(16).double(), "3": torch.ones(6).double()}
    callback.prune_step()
    assert callback.channel_counts() == {
        "0": {"before": 16, "after": 4},
        "3": {"before": 6, "after": 2},
    }


def conv_linear_macs(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """Multiply-accumulates of the convolutions and linear layers alone, for one image."""
    total = []

    def hook(module: nn.Module, _: object, output: torch.Tensor) -> None:
        per_output = module.weight[0].numel()  # in x kh x kw / groups, or in
        total.append(per_output * output[0].numel())

    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    handles = [m.register_forward_hook(hook) for m in layers]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_size))
    for handle in handles:
        handle.remove()
    return sum(total)


@pytest.mark.parametrize(
    ("name", "dense", "thinnest"),
    [
        # dense: stem 3*16*9*1024; stage 1: 2n convs 16*16*9*1024; stage 2: 16*32*9*256 +
        # (2n-1) * 32*32*9*256 + shortcut 16*32*256; stage 3 the same at 8x8; fc 64*10.
        # thinnest (streams 4/4/16, inner widths 2/4/8): stem 3*4*9*1024; stage 1:
        # 2n * 4*2*9*1024; stage 2: 4*4*9*256 * 2n + 4*4*256; stage 3: 4*8*9*64 +
        # (2n-1) * 16*8*9*64 + 4*16*64; fc 16*10
        ("resnet20", 40_813_184, 1_169_568),  # n = 3: 2.87%
        ("resnet56", 125_747_840, 3_381_408),  # n = 9: 2.69%
    ],
)
def test_the_thinnest_model_the_default_floor_allows(name: str, dense: int, thinnest: int) -> None:
    model = create_model(name)
    assert conv_linear_macs(model, INPUT) == dense
    graph = ChannelGraph(model, INPUT)
    floors = group_floors(graph, Floor())
    remove_channels(graph, PruningPlan({g.root: list(range(g.size - floors[g.root]))
                                        for g in graph.prunable_groups}))  # fmt: skip
    assert conv_linear_macs(model, INPUT) == thinnest
    assert thinnest / dense < 0.03  # R = 0.5 (and 0.1) stays reachable


def test_the_floor_is_recorded() -> None:
    graph = ChannelGraph(create_model("resnet20"), INPUT)
    record = floor_record(graph, Allocation(min_channels=3).floor())
    assert record["fraction"] == 0.125 and record["ends_fraction"] == 0.25
    assert record["min_channels"] == 3
    assert record["per_group"]["conv1"] == 4 and record["per_group"]["layer1.0.conv1"] == 3
    assert record["ends"]["layer3.0.shortcut.0"] == "classifier input"


def test_a_one_shot_method_through_the_engine_keeps_the_floor() -> None:
    torch.manual_seed(0)
    graph = ChannelGraph(create_model("resnet20"), INPUT)
    result = create_method("l1").plan(graph, None, Target("macs", 0.1), Allocation())
    kept = result.plan.kept(graph)
    assert all(kept[root] >= floor for root, floor in RESNET20_FLOORS.items())


def test_a_small_model_whose_first_layer_would_be_wiped_keeps_a_quarter(caplog) -> None:
    """Two 16-wide groups, the first (the stem) scored 100x below the second (the classifier's
    input): bn_scale's global ranking at 10% of the MACs takes the stem to its floor,
    ceil(16 / 4) = 4 and the second group to 4 as well (without the floor: the stem at 1 of 16,
    the thin-layer warning, and the second group whole)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    ).eval()  # fmt: skip
    with torch.no_grad():
        model[1].weight.copy_(torch.linspace(0.001, 0.01, 16))
        model[4].weight.copy_(torch.linspace(1.0, 2.0, 16))
    graph = ChannelGraph(model, (3, 8, 8))
    assert group_floors(graph, Floor()) == {"0": 4, "3": 4}
    method = create_method("bn_scale")
    with caplog.at_level("WARNING"):
        plan = method.plan(graph, None, Target("macs", 0.1), Allocation()).plan
    assert plan.kept(graph) == {"0": 4, "3": 4, "8": 4} and "under 10%" not in caplog.text
    bare = Allocation(min_fraction=0, ends_fraction=0)
    with caplog.at_level("WARNING"):
        plan = method.plan(graph, None, Target("macs", 0.1), bare).plan
    assert plan.kept(graph) == {"0": 1, "3": 16, "8": 4} and "0 1/16" in caplog.text
