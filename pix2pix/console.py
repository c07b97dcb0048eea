"""Console helpers shared by the CLI and the DVC stages (the only layers that talk to people)."""

from __future__ import annotations

import sys
import time
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


class EpochProgress:
    """A progress bar over all training steps showing epoch, step, it/s, img/s and the losses.

    Fed with the trainer's ``ProgressInfo`` at log steps. Off a terminal (DVC logs, CI, a cluster's log file),
    where a redrawn bar is unreadable, it prints one plain line at most every ``line_every_s`` seconds instead:
    a Dayton epoch at batch 1 is 55,000 steps, and a line per log step would bury the epoch summaries.
    """

    def __init__(self, total_epochs: int, line_every_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.total_epochs, self.line_every_s, self.clock = total_epochs, line_every_s, clock
        self.console = Console(file=sys.stderr)
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), console=self.console,
            disable=not self.console.is_terminal,
        )
        self.task = self.bar.add_task("train", total=None)
        self.last_line_at: float | None = None
        self.bar.start()

    def update(self, info) -> None:
        """Show one ``pix2pix.training.loop.ProgressInfo``."""
        text = (
            f"epoch {info.epoch}/{info.total_epochs} step {info.step_in_epoch}/{info.steps_per_epoch} "
            f"{info.it_per_s:.2f} it/s {info.img_per_s:.1f} img/s "
            f"loss_G {info.loss_g:.3f} L1 {info.loss_l1:.3f} loss_D {info.loss_d:.3f} lr {info.lr:.2e}"
        )
        self.bar.update(self.task, description=text, completed=info.global_step, total=info.steps_per_epoch * info.total_epochs)
        now = self.clock()
        if not self.console.is_terminal and (self.last_line_at is None or now - self.last_line_at >= self.line_every_s):
            self.last_line_at = now
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.stop()
