"""Console helpers shared by the CLI and the DVC stages (the only layers that talk to people)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int | None], None]]:
    """A rich progress bar driven by ``callback(done, total)``; it redraws in place only on a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn()]
    if description.startswith("download"):
        columns.insert(3, DownloadColumn())
    with Progress(*columns, console=Console(file=sys.stderr), transient=False) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def error_line(error: Exception) -> str:
    """The one red line shown for an expected failure."""
    return f"\033[31merror:\033[0m {error}" if sys.stderr.isatty() else f"error: {error}"
