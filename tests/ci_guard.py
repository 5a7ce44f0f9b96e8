"""Skips that CI must not take: outside CI a missing optional package or data set skips the tests
that need it; with the ``CI`` environment variable set (``.ci/run`` exports ``CI=1``), what the
set-up installs must be there, and its absence fails the run instead of hiding tests."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def in_ci() -> bool:
    """``CI`` is set to anything but empty, ``0`` or ``false``."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip the test (module, fixture) for ``reason``; under CI, fail with it."""
    if in_ci():
        pytest.fail(f"{reason}; under CI the set-up provides it: a failure", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str) -> ModuleType:
    """``pytest.importorskip(module)``, except that under CI a missing module fails."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        reason = f"could not import {module} ({error})"
    unavailable(reason)
    raise AssertionError("unreachable: unavailable() raises")
