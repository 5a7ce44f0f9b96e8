"""A run's report: the typed record (:mod:`.schema`), ``report.md`` (:mod:`.markdown`) and
``report.png`` (:mod:`secateurs.report.plot`), written together by :func:`write_report`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from secateurs.report.markdown import markdown
from secateurs.report.schema import (
    SCHEMA_VERSION,
    Accuracy,
    Cost,
    Latency,
    Machine,
    PruningRecord,
    Report,
    RunSettings,
    read_report,
)

__all__ = [
    "SCHEMA_VERSION",
    "Accuracy",
    "Cost",
    "Latency",
    "Machine",
    "PruningRecord",
    "Report",
    "RunSettings",
    "markdown",
    "read_report",
    "write_report",
]


def write_report(report: Report, directory: Path) -> None:
    """``report.json``, ``report.md`` and ``report.png`` in ``directory`` (json written last,
    through a temporary file: a run directory with a report.json holds a finished run)."""
    from secateurs.report.plot import plot_report

    (directory / "report.md").write_text(markdown(report))
    plot_report(report, directory / "report.png")
    temporary = directory / "report.json.tmp"
    temporary.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    os.replace(temporary, directory / "report.json")
