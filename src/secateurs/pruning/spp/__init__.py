"""SPP: Structured Probabilistic Pruning (Wang, Zhang, Wang, Hu; BMVC 2018), during training.

- :mod:`.schedule`: the rank-based probability increment delta(r; A, u, N_rem);
- :mod:`.groups`: the weight groups of a layer (columns, input channels, coupled channels);
- :mod:`.state`: probabilities, pruned groups, the update;
- :mod:`.callback`: the trainer callback (Monte Carlo masks, checkpointed state);
- :mod:`.cost`: MACs counting kept columns, per-layer ratios for a MACs target;
- :mod:`.compact`: compaction after training (the compact convolution itself is
  :mod:`secateurs.pruning.compaction.compact_conv`).
"""

from secateurs.pruning.spp.callback import SPPCallback
from secateurs.pruning.spp.compact import CompactionReport, compact_conv, compact_model
from secateurs.pruning.spp.cost import spp_macs
from secateurs.pruning.spp.schedule import increment, increments
from secateurs.pruning.spp.state import SPPState

__all__ = [
    "CompactionReport",
    "SPPCallback",
    "SPPState",
    "compact_conv",
    "compact_model",
    "increment",
    "increments",
    "spp_macs",
]
