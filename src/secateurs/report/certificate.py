"""A recorded PFP certificate, read back for the report: which groups' measured error broke the
bound the guarantee gives (the rows are written by the PFP method at pruning time)."""

from __future__ import annotations

from typing import Any


def violations(rows: list[dict[str, Any]]) -> list[str]:
    """The groups whose measured error exceeds their bound (rows without a bound or without a
    measured error are not checked)."""
    return [
        row["group"]
        for row in rows
        if row.get("bound") is not None
        and row.get("error_max") is not None
        and row["error_max"] > row["bound"]
    ]
