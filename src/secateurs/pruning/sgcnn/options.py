"""The options of SG-CNN as a training-time method (``secateurs sgcnn``, and
``prune_while_training(method="sgcnn", ...)``), declared once."""

from __future__ import annotations

from dataclasses import dataclass

from secateurs.options import count, option
from secateurs.pruning.compaction.unread import UNREAD_POLICIES
from secateurs.pruning.sgcnn.callback import IMPORTANCES
from secateurs.pruning.sgcnn.schedule import SCHEMES

DESCRIPTION = """Train a saved model with SG-CNN (Guo et al., Neural Networks 2020): in stages of
rising connection sparsity (10%, 20%, ... up to what the MACs target needs), each convolution's
filters are clustered by the input channels they read (k-means), and each group keeps the inputs
its centroid ranks highest. Afterwards, input channels no group reads are removed, and each
grouped layer runs as one grouped convolution over gathered inputs, one convolution per group,
or stays dense: whichever was measured fastest. Writes the model with report.json, report.md
and report.png to OUT.

examples:
  secateurs sgcnn runs/r20/model --data ../shared/data/cifar10 --target-macs 0.5 --epochs 10 \\
      -o runs/r20-sgcnn
  secateurs sgcnn runs/r20/model --data ../shared/data/cifar10 --scheme G --groups 8 -o runs/g8
"""


@dataclass(kw_only=True)
class SGCNNOptions:
    """SG-CNN's own options (the run's --target-macs, --epochs and --seed are shared)."""

    groups: int = count(16, "groups per layer (k-means clusters of filters; capped by its filters)")
    scheme: str = option(
        "LG",
        help="fine-tuning scheme: L (after each stage), LG (after each stage, then the rest of "
        "the run globally), G (all stages at once, then the whole run)",
        choices=SCHEMES,
    )
    step: float = option(
        0.1,
        help="connection sparsity added per stage (stages at 10%%, 20%%, ... of the target)",
        parse=float,
        check=lambda v: None if 0 < v < 1 else f"must be in (0, 1), not {v}",
    )
    stage_epochs: int = count(1, "scheme LG: epochs of fine-tuning after each stage")
    balanced: bool = option(
        False,
        help="equal groups, each reading equally many channels: the grouped form needs no "
        "padding (measured faster on this CPU; docs/results/sgcnn.md)",
        deprecated=("--balance",),
    )
    importance: str = option(
        "weight",
        help="what groups the filters: weight (sum of |W| over each kernel, the paper's) or "
        "taylor (|W dL/dW| over 8 training batches at each stage: first-order Taylor)",
        choices=IMPORTANCES,
    )
    unread: str = option(
        "if-faster",
        help="input channels no group reads: removed if-faster (the whole model timed with and "
        "without them, in onnxruntime when installed; removed when untimed), always, or never",
        choices=UNREAD_POLICIES,
    )
    linear: bool = option(
        False,
        help="group the fully connected (linear) layers too (all but the last; at most 60%% of "
        "their connections pruned; they stay dense layers with zeros)",
        deprecated=("--fc",),
    )
