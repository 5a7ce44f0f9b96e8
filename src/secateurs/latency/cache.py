"""Latency tables on disk, one JSON file per key: the CPU model, the thread count, the backend,
its versions and the batch size. A file whose key is not the machine's (another CPU, a new
onnxruntime, other threads) is not trusted: its timings are measured again and it is rewritten.

Directory: ``$SECATEURS_CACHE/latency`` or ``~/.cache/secateurs/latency``, or the one given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from secateurs.latency.table import LatencyTable
from secateurs.measurement.machine import cpu_description

log = logging.getLogger(__name__)
FORMAT = 3  # of the file; part of the key (2: calibrations added; 3: with their points)


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform says."""
    return cpu_description()[0]


def default_directory() -> Path:
    from secateurs.data.cache import cache_dir

    return cache_dir() / "latency"


@dataclass(frozen=True)
class CacheKey:
    """What timings depend on; any difference means measuring again."""

    cpu: str
    threads: int
    backend: str
    versions: dict[str, str] = field(default_factory=dict, hash=False)
    batch: int = 1
    format: int = FORMAT

    def file_name(self) -> str:
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()
        return f"{self.backend}-b{self.batch}-t{self.threads}-{digest[:12]}.json"


@dataclass
class CachedTimings:
    """A table, the dense models' whole latencies (``models[signature]`` in ms) and each model's
    calibration data (``calibrations[signature]["points"]``: the measured points
    :func:`~secateurs.latency.calibration.fit` makes its coefficients from)."""

    table: LatencyTable = field(default_factory=LatencyTable)
    models: dict[str, float] = field(default_factory=dict)
    calibrations: dict[str, dict[str, Any]] = field(default_factory=dict)


def load(directory: Path, key: CacheKey) -> CachedTimings:
    """The timings cached for ``key``; empty when there are none or the file's key differs."""
    path = directory / key.file_name()
    if not path.is_file():
        return CachedTimings()
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        stored = CacheKey(**data["key"])
        if stored != key or stored.versions != key.versions:
            log.warning("latency cache %s was written for %s, not %s: measuring again",
                        path, stored, key)  # fmt: skip
            return CachedTimings()
        return CachedTimings(
            LatencyTable(data["layers"]), dict(data["models"]), dict(data["calibrations"])
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("latency cache %s is unreadable (%r): measuring again", path, error)
        return CachedTimings()


def save(directory: Path, key: CacheKey, timings: CachedTimings) -> Path:
    """Write atomically (a temporary file renamed), so a reader never sees half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / key.file_name()
    data = {
        "key": asdict(key),
        "layers": timings.table.entries,
        "models": timings.models,
        "calibrations": timings.calibrations,
    }
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, path)
    return path
