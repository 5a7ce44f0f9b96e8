"""The machine a timing was taken on: CPU model, the instruction sets that change how fast a
pruned convolution runs, the runtimes' versions and the thread count. Every report names it
beside its speed-ups (a speed-up measured on an AVX-512 Xeon is not one on a laptop).

Linux: ``/proc/cpuinfo``'s first ``model name`` and ``flags``; elsewhere
``platform.processor()`` and no flags (``isa`` is None: not known, not "none")."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
# the flags that matter, as /proc/cpuinfo spells them, and as the report names them
ISA_FLAGS = (
    ("avx2", "AVX2"),
    ("avx512f", "AVX-512 F"),
    ("avx512_vnni", "AVX-512 VNNI"),
    ("amx_tile", "AMX"),
)


def read_cpuinfo(text: str) -> tuple[str | None, list[str] | None]:
    """(model name, the ISA_FLAGS present by their report names) of a ``/proc/cpuinfo`` text;
    None where the text does not say."""
    name, flags = None, None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and name is None:
            name = value.strip()
        elif key in ("flags", "features") and flags is None:
            present = set(value.split())
            flags = [label for flag, label in ISA_FLAGS if flag in present]
        if name is not None and flags is not None:
            break
    return name, flags


def cpu_description(cpuinfo: str | None = None) -> tuple[str, list[str] | None]:
    """The CPU's model name and ISA flags (``cpuinfo``: a /proc/cpuinfo text; None: this
    machine's), falling back to what the platform says."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError:
            cpuinfo = ""
    name, flags = read_cpuinfo(cpuinfo)
    return name or platform.processor() or platform.machine() or "unknown", flags


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info(threads: int, cpuinfo: str | None = None) -> dict[str, Any]:
    """``{cpu, isa, torch, onnxruntime, threads}`` of this machine (``cpuinfo`` as in
    :func:`cpu_description`); :class:`secateurs.report.Machine` takes it as is."""
    cpu, isa = cpu_description(cpuinfo)
    return {
        "cpu": cpu,
        "isa": isa,
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime"),
        "threads": threads,
    }


def describe(info: dict[str, Any]) -> str:
    """One line: ``Machine: <cpu> (AVX2, AVX-512 F; no AVX-512 VNNI, AMX); torch 2.4,
    onnxruntime 1.19; 2 threads.``"""
    isa = info.get("isa")
    if isa is None:
        flags = "instruction sets not known"
    else:
        missing = [label for _, label in ISA_FLAGS if label not in isa]
        flags = ", ".join(isa) or "none of AVX2, AVX-512, AMX"
        if isa and missing:
            flags += f"; no {', '.join(missing)}"
    versions = ", ".join(
        f"{name} {info[name]}" for name in ("torch", "onnxruntime") if info.get(name)
    )
    threads = info.get("threads")
    plural = "" if threads == 1 else "s"
    return f"Machine: {info.get('cpu')} ({flags}); {versions}; {threads} thread{plural}."
