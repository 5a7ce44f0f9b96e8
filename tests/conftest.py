"""Shared test set-up: one torch thread, an image cache in a temporary directory, and helpers to run
the ``secateurs`` command in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

pytest_plugins = ["pytester"]  # test_ci_guard runs pytest on test files of its own

# the machine is shared: every test process computes on one thread (subprocesses: child_env)
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _image_cache(tmp_path_factory: pytest.TempPathFactory):
    """Decoded image sets go to a session directory, never to ~/.cache."""
    directory = tmp_path_factory.mktemp("secateurs-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SECATEURS_CACHE", str(directory))
        yield directory


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    """Training sets the thread count and determinism for the whole process: undo it."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(1)
    if torch.are_deterministic_algorithms_enabled() != deterministic:  # the call takes a second
        torch.use_deterministic_algorithms(deterministic)


@pytest.fixture
def both_cores() -> None:
    """Two torch threads for one heavy evaluation (the whole CIFAR-10 test split): `make test`
    runs alone on this 2-core machine; ``_restore_torch_globals`` sets one thread again after."""
    torch.set_num_threads(2)


@pytest.fixture
def child_env() -> dict[str, str]:
    """The environment for subprocesses: one thread, and the test session's image cache."""
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


@pytest.fixture
def run_secateurs(child_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_secateurs("eval", ...)`` runs ``python -m secateurs eval ...`` in a new process."""

    def run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "secateurs", *map(str, args)],
            capture_output=True,
            text=True,
            env=child_env,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def cifar10_root() -> Path:
    """The local CIFAR-10 ImageFolder copy (tests needing it are skipped without it, and fail
    without it under CI, whose set-up puts it in ../shared)."""
    from ci_guard import unavailable
    from secateurs.data.sources import default_cifar10_root

    root = default_cifar10_root()
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        unavailable(f"CIFAR-10 not found at {root} (set SECATEURS_CIFAR10)")
    return root


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ResNet-20 trained one epoch on the digits (label smoothing 0.1), shared by the test
    modules that only need some trained model to prune."""
    from digits_model import train_digits

    return train_digits(tmp_path_factory.mktemp("digits-one-epoch"), epochs=1)
