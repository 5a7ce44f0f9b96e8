"""Opening a run: the output directory's rules, ``config.json`` for every run kind, the
distributed context, and no directory left behind by a run refused before it saved anything."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from secateurs.device import resolve_device
from secateurs.errors import SecateursError
from secateurs.options import job_settings
from secateurs.runs.job import RunJob
from secateurs.train.distributed import DistributedContext, barrier, init_distributed

log = logging.getLogger(__name__)
CONFIG_FILE = "config.json"
DURABLE = ("checkpoint.pt", "manifest.json")  # files that make a directory worth resuming


@dataclass
class Run:
    """An open run: its job, its directory and the process's place in a distributed run."""

    kind: str
    job: Any
    directory: Path
    context: DistributedContext

    @property
    def device(self) -> torch.device:
        """Where this process computes: the job's ``--device``, its own GPU under torchrun."""
        return self.context.device

    @property
    def is_main(self) -> bool:
        """Rank 0 (or the only process) writes files and measures."""
        return self.context.is_main


def _holds_a_run(directory: Path) -> bool:
    return any(any(directory.rglob(name)) for name in DURABLE)


def _check_directory(job: RunJob) -> None:
    out = job.out
    occupied = out.is_dir() and any(out.iterdir())
    if occupied and not job.resume:
        raise SecateursError(f"{out} exists and is not empty; choose another -o (or --resume)")
    if job.resume and not occupied:
        raise SecateursError(f"nothing to resume in {out} (start the run without --resume)")


def _write_config(kind: str, job: RunJob) -> None:
    """config.json: the run kind and every option; a resumed run names the options it changed."""
    from secateurs.runs.train_run import versions

    path = job.out / CONFIG_FILE
    settings = job_settings(job)
    if job.resume and path.is_file():
        try:
            before = json.loads(path.read_text()).get("options", {})
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            before = {}
        changed = sorted(k for k in settings if k in before and before[k] != settings[k])
        changed = [k for k in changed if k != "resume"]
        if changed:
            log.warning("resuming %s with other options than it started with: %s", job.out, changed)
    job.out.mkdir(parents=True, exist_ok=True)
    record = {"kind": kind, "options": settings, "versions": versions()}
    path.write_text(json.dumps(record, indent=2) + "\n")


@contextmanager
def open_run(kind: str, job: RunJob) -> Iterator[Run]:
    """Check ``job``, prepare its directory and yield the :class:`Run`. A run refused with a
    :class:`SecateursError` before it saved a checkpoint or a model leaves no directory behind,
    so the corrected command can use the same ``-o``."""
    job.check()
    context = init_distributed(resolve_device(job.device))
    created = not job.out.exists()
    if context.is_main:  # the other ranks would find the directory rank 0 just made
        _check_directory(job)
        _write_config(kind, job)
    barrier(context)
    try:
        yield Run(kind, job, job.out, context)
    except SecateursError:
        if created and context.is_main and not _holds_a_run(job.out):
            shutil.rmtree(job.out, ignore_errors=True)
        raise
