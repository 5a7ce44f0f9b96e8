"""The contract every pruning method keeps: ``score`` is abstract, ``plan`` is the one place that
checks data and fills in the normalisation, targets may be costs or per-layer ratios, and what
``prune_model`` records (certificate, selection) comes from the method's ``MethodPlan``."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from pruning_helpers import two_convs
from secateurs.errors import SecateursError
from secateurs.measurement import count_cost
from secateurs.pruning import Allocation, ChannelGraph, PruningPlan, Target, remove_channels
from secateurs.pruning.methods import PruningMethod, ScoringData, create_method, list_methods
from secateurs.pruning.methods.base import MethodPlan, PlanRequest
from secateurs.pruning.prune import PruneSettings, prune_model

INPUT = (3, 8, 8)


class Fixed(PruningMethod):
    """Scores 0, 1, 2, ... per group (channel 0 least important); records what it was handed."""

    name = "fixed"
    normalize = "max"

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.scored = 0
        self.allocations: list[Allocation] = []

    def score(self, graph: ChannelGraph, data: ScoringData) -> dict[str, Tensor]:
        self.scored += 1
        return {g.root: torch.arange(g.size, dtype=torch.float64) for g in graph.prunable_groups}

    def _allocate(self, request: PlanRequest) -> MethodPlan:
        self.allocations.append(request.allocation)
        return super()._allocate(request)


class NeedsData(Fixed):
    name = "needs-data"
    needs_data = True


def net() -> nn.Module:
    torch.manual_seed(0)
    return two_convs(8).eval()


def test_a_method_without_score_cannot_be_created() -> None:
    class NoScore(PruningMethod):
        name = "no-score"

    with pytest.raises(TypeError, match="abstract"):
        NoScore()  # type: ignore[abstract]


def test_a_method_that_needs_data_is_refused_without_it_before_scoring() -> None:
    graph = ChannelGraph(net(), INPUT)
    method = NeedsData()
    for data in (None, ScoringData()):
        with pytest.raises(SecateursError, match=r"^method 'needs-data' needs data: pass --data$"):
            method.plan(graph, data, Target(), Allocation())
    assert method.scored == 0
    batches = [(torch.randn(2, *INPUT), torch.zeros(2, dtype=torch.long))]
    method.plan(graph, ScoringData(batches), Target("macs", 0.7), Allocation())
    assert method.scored == 1


@pytest.mark.parametrize("name", list_methods())
def test_every_registered_method_that_needs_data_says_so_in_one_way(name: str) -> None:
    method = create_method(name)
    graph = ChannelGraph(net(), INPUT)
    if not method.uses_data():
        assert method.plan(graph, None, Target("macs", 0.7), Allocation()).plan.removals
        return
    with pytest.raises(SecateursError, match=rf"^method '{name}' needs data: pass --data$"):
        method.plan(graph, None, Target("macs", 0.7), Allocation())


def test_wsp_on_weights_needs_no_data() -> None:
    assert create_method("wsp").uses_data()
    method = create_method("wsp", saliency="weights")
    assert not method.uses_data()
    graph = ChannelGraph(net(), INPUT)
    assert method.plan(graph, None, Target("macs", 0.7), Allocation()).plan.removals


def test_the_default_normalisation_is_the_methods_own() -> None:
    graph = ChannelGraph(net(), INPUT)
    method = Fixed()
    method.plan(graph, None, Target("macs", 0.7), Allocation())
    method.plan(graph, None, Target("macs", 0.7), Allocation(normalize="mean"))
    assert [a.normalize for a in method.allocations] == ["max", "mean"]


def test_layer_ratios_go_through_plan() -> None:
    model = net()
    graph = ChannelGraph(model, INPUT)
    result = Fixed().plan(graph, None, {"3": 0.5}, Allocation())
    assert result.plan == PruningPlan({"3": [0, 1, 2, 3]})  # the four lowest scores
    assert result.selection == "deterministic" and result.certificate == []
    before = count_cost(model, INPUT)["macs"]
    pruned = copy.deepcopy(model)
    remove_channels(ChannelGraph(pruned, INPUT), result.plan)
    assert result.achieved == pytest.approx(count_cost(pruned, INPUT)["macs"] / before)
    assert result.achieved < 1


class Reporting(Fixed):
    """A method that reports a certificate and a selection mode with every plan."""

    name = "reporting"

    def _allocate(self, request: PlanRequest) -> MethodPlan:
        result = super()._allocate(request)
        return MethodPlan(result.plan, result.achieved, [{"group": "3", "k": 4}], "randomized")


@pytest.mark.parametrize(
    "settings",
    [PruneSettings(layer_ratios={"3": 0.5}), PruneSettings(Target("macs", 0.6), steps=2)],
    ids=["layer-ratios", "target-in-two-steps"],
)
def test_prune_model_records_what_the_method_plan_says(settings: PruneSettings) -> None:
    method = Reporting()
    outcome = prune_model(net(), INPUT, method, settings)
    steps = len(outcome.plans)
    assert method.allocations and len(method.allocations) == steps
    assert outcome.selection == "randomized"
    assert outcome.certificate == [{"step": s + 1, "group": "3", "k": 4} for s in range(steps)]
    assert outcome.record(method, settings.target).oneshot.selection == "randomized"


def test_prune_settings_refuse_what_cannot_be_done() -> None:
    with pytest.raises(SecateursError, match="one of the two"):
        PruneSettings()
    with pytest.raises(SecateursError, match="one of the two"):
        PruneSettings(Target(), {"3": 0.5})
    with pytest.raises(SecateursError, match="steps must be at least 1"):
        PruneSettings(Target(), steps=0)
    with pytest.raises(SecateursError, match="applied in one step"):
        PruneSettings(layer_ratios={"3": 0.5}, steps=3)
