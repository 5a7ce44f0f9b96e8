"""A run's data: the training and test splits read as the model was trained on them, checked
against the model's classes and input."""

from __future__ import annotations

from secateurs.data import LabelledData, load_split
from secateurs.errors import SecateursError
from secateurs.runs.job import RunJob
from secateurs.store import Manifest


def load_run_data(job: RunJob, manifest: Manifest) -> LabelledData | None:
    """``job.data``'s splits (None without data), at the manifest's image size unless the job
    names another, subsets drawn with the job's seed."""
    if not job.data:
        return None
    image_size = job.image_size or manifest.image_size
    train_set = load_split(job.data, "train", image_size)
    test_set = load_split(job.data, "test", image_size)
    if job.train_subset:
        train_set = train_set.subset(job.train_subset, job.seed)
    if job.test_subset:
        test_set = test_set.subset(job.test_subset, job.seed)
    if test_set.classes != manifest.classes or list(test_set.input_size) != manifest.input_size:
        raise SecateursError(
            f"{job.data} ({len(test_set.classes)} classes, {test_set.input_size}) is not the data "
            f"{job.model} was trained for ({len(manifest.classes)} classes, "
            f"{tuple(manifest.input_size)})"
        )
    return LabelledData(train_set, test_set, manifest.mean, manifest.std)
