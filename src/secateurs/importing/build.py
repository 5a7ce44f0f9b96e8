"""A model brought from elsewhere: its architecture resolved from a SPEC, weights fitted, the
input checked with one image, and a :class:`~secateurs.store.Manifest` that rebuilds it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from secateurs.data import ImageSet, load_split
from secateurs.errors import SecateursError, first_line
from secateurs.importing.job import ImportJob
from secateurs.importing.weights import Fit, fit_weights, read_state_dict
from secateurs.models import create_model, list_models, model_entry
from secateurs.models.registry import FACTORY_PREFIX, TIMM_PREFIX, TORCHVISION_PREFIX
from secateurs.models.user_factory import allow_factory, is_factory_spec, resolve_factory
from secateurs.store import Manifest

log = logging.getLogger(__name__)
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


@dataclass
class Imported:
    """The model (eval mode), the manifest that rebuilds it, and how its weights fitted."""

    model: nn.Module
    manifest: Manifest
    fit: Fit | None


@dataclass
class Family:
    """What a SPEC resolves to: the manifest's architecture name, and the input size and
    normalisation it is built for, where the family says."""

    architecture: str
    input_size: tuple[int, ...] | None
    normalisation: tuple[list[float], list[float]] | None


def resolve_spec(spec: str) -> Family:
    """The family of ``spec``; an unknown SPEC is one line listing the forms there are."""
    if spec.startswith(TORCHVISION_PREFIX):
        return Family(spec, model_entry(spec).input_size, IMAGENET)
    if spec.startswith(TIMM_PREFIX):
        from secateurs.models.timm_models import timm_normalisation

        entry = model_entry(spec)
        return Family(spec, entry.input_size, timm_normalisation(spec.removeprefix(TIMM_PREFIX)))
    if is_factory_spec(spec):
        allow_factory(spec)  # named by the user: their code may run
        resolve_factory(spec)  # a module that does not import is the first thing to say
        return Family(FACTORY_PREFIX + spec, None, None)
    if spec in list_models():
        return Family(spec, model_entry(spec).input_size, None)
    raise SecateursError(
        f"unknown model {spec!r}: expected torchvision:NAME, timm:NAME, package.module:factory "
        "(your code) or a registered name (`secateurs models`)"
    )


def import_model(job: ImportJob) -> Imported:
    """Build ``job.spec`` with the job's class count and input size, load ``job.weights`` into
    it, run one image through it, and describe it in a manifest. Nothing is written."""
    job.check()
    family = resolve_spec(job.spec)
    test_set = load_split(job.data, "test", _side(job.input_size)) if job.data else None
    input_size = _input_size(job, family, test_set)
    num_classes = job.num_classes or (len(test_set.classes) if test_set else None)
    arguments: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    if input_size[0] != 3 and not is_factory_spec(job.spec):
        arguments["in_channels"] = input_size[0]
    model = create_model(family.architecture, **arguments)
    fit = None
    if job.weights is not None:
        state = read_state_dict(job.weights)
        fit = fit_weights(model, state, job.spec, job.strict)
    outputs = _outputs(model, job.spec, input_size)
    if test_set is not None and len(test_set.classes) != outputs:
        raise SecateursError(
            f"{job.spec} has {outputs} outputs but {job.data} has {len(test_set.classes)} classes: "
            "import it as it is, then `secateurs train --from DIR --data ...` replaces the "
            "classifier"
        )
    mean, std = _normalisation(job, family, test_set, input_size[0])
    manifest = Manifest(
        family.architecture,
        arguments,
        test_set.classes if test_set else [str(index) for index in range(outputs)],
        list(input_size),
        mean,
        std,
        training={"imported": _provenance(job, fit)},
        image_size=_side(job.input_size) if job.data else None,
    )
    return Imported(model, manifest, fit)


def _side(size: tuple[int, ...] | None) -> int | None:
    """The image side a data set is read at when the input size is given."""
    return None if size is None else size[-1]


def _input_size(job: ImportJob, family: Family, data: ImageSet | None) -> tuple[int, int, int]:
    given = job.input_size
    if given is not None and len(given) == 3:
        return (given[0], given[1], given[2])
    channels = data.input_size[0] if data else 3
    if given is not None:
        return (channels, given[0], given[0])
    if data is not None:
        return data.input_size
    if family.input_size is None:
        raise SecateursError(f"{job.spec} needs --input-size (or --data) to know its input")
    return (family.input_size[0], family.input_size[1], family.input_size[2])


def _outputs(model: nn.Module, spec: str, input_size: tuple[int, int, int]) -> int:
    """The class count, from one image through the model; a model that cannot take the input
    size, or whose output is not (batch, classes), is refused in one line."""
    try:
        with torch.no_grad():
            output = model.eval()(torch.zeros(1, *input_size))
    except Exception as error:
        detail = f"{type(error).__name__}: {first_line(error)}"
        raise SecateursError(f"{spec} cannot take {input_size} inputs: {detail}") from None
    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise SecateursError(f"{spec} must return (batch, classes) logits, not {shape}")
    return int(output.shape[1])


def _normalisation(
    job: ImportJob, family: Family, data: ImageSet | None, channels: int
) -> tuple[list[float], list[float]]:
    if job.mean is not None and job.std is not None:
        found, source = (list(job.mean), list(job.std)), "--mean/--std"
    elif family.normalisation is not None and len(family.normalisation[0]) == channels:
        found, source = family.normalisation, f"{job.spec}'s own"
    elif data is not None:
        found, source = data.channel_stats(), f"{job.data}'s test images'"
    else:
        found, source = ([0.0] * channels, [1.0] * channels), "none given"
    if len(found[0]) != channels:
        raise SecateursError(f"--mean and --std need {channels} numbers, one per input channel")
    log.info("input normalisation: %s (mean %s, std %s)", source, found[0], found[1])
    return [float(v) for v in found[0]], [float(v) for v in found[1]]


def _provenance(job: ImportJob, fit: Fit | None) -> dict[str, Any]:
    record: dict[str, Any] = {"spec": job.spec, "weights": str(job.weights or "")}
    if fit is not None:
        record.update(missing_keys=fit.missing, unexpected_keys=fit.unexpected)
    return record
