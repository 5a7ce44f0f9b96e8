"""Progress bars for long work: rich on a terminal, silent elsewhere (logs get per-epoch lines)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def progress_bar(*, transient: bool = True) -> Progress:
    """A progress bar with count, elapsed time and ETA; hidden when stderr is not a terminal.

    Tasks may carry a ``rate`` field (e.g. images/s) shown after the bar.
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=not console.is_terminal,
    )
