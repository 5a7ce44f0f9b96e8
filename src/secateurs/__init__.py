"""secateurs: structured pruning that makes CNNs smaller and measurably faster.

    import secateurs
    model, manifest = secateurs.load("benchmarks/baselines/resnet20-cifar10")
    pruned = secateurs.prune(model, method="l1", target_macs=0.5,
                             example_input=torch.randn(1, 3, 32, 32))

The functions here are the Python API (:mod:`secateurs.api`); ``secateurs --help`` lists the
command line's.
"""

__version__ = "0.1.0"

from secateurs.api import (
    Measurement,
    Pruned,
    fine_tune,
    import_model,
    list_methods,
    list_models,
    load,
    load_data,
    measure,
    prune,
    save,
)
from secateurs.api_training_time import prune_while_training
from secateurs.data import LabelledData
from secateurs.errors import SecateursError
from secateurs.report import Report
from secateurs.runs.training import Training
from secateurs.store import Manifest

__all__ = [
    "LabelledData",
    "Manifest",
    "Measurement",
    "Pruned",
    "Report",
    "SecateursError",
    "Training",
    "__version__",
    "fine_tune",
    "import_model",
    "list_methods",
    "list_models",
    "load",
    "load_data",
    "measure",
    "prune",
    "prune_while_training",
    "save",
]
