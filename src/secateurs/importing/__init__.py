"""Models trained elsewhere (torchvision, timm, a user's own code) brought into secateurs as an
ordinary model directory: ``secateurs import`` and :func:`secateurs.import_model`."""

from secateurs.importing.build import Imported, import_model, resolve_spec
from secateurs.importing.job import ImportJob
from secateurs.importing.weights import Fit, fit_weights, read_state_dict

__all__ = [
    "Fit",
    "ImportJob",
    "Imported",
    "fit_weights",
    "import_model",
    "read_state_dict",
    "resolve_spec",
]
