"""Pruning methods, one file each, registered by name. Importing this package registers them."""

from secateurs.pruning.methods import bn_scale, norm, pfp, random_scores, taylor, wsp  # noqa: F401
from secateurs.pruning.methods.base import (
    PruningMethod,
    ScoringData,
    create_method,
    list_methods,
    method_class,
    register_method,
)

__all__ = [
    "PruningMethod",
    "ScoringData",
    "create_method",
    "list_methods",
    "method_class",
    "register_method",
]
