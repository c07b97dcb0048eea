"""What the console shows a person: off a terminal, training progress is a line per interval, not per log step."""

from __future__ import annotations

import pytest

from pix2pix.console import EpochProgress
from pix2pix.training.loop import ProgressInfo


def info(step: int) -> ProgressInfo:
    return ProgressInfo(1, 2, step, 55_000, step, 0.7, 0.6, 0.3, 2e-4, 12.0, 12.0)


def test_off_a_terminal_progress_prints_one_line_per_interval(capsys: pytest.CaptureFixture[str]) -> None:
    clock = iter([0.0, 1.0, 2.0, 29.0, 31.0, 45.0, 62.0])
    progress = EpochProgress(total_epochs=2, line_every_s=30, clock=lambda: next(clock))
    for step in range(10, 80, 10):  # 7 log steps over 62 s
        progress.update(info(step))
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[3] for line in lines] == ["10/55000", "50/55000", "70/55000"]  # at 0 s, 31 s and 62 s
    assert "loss_G 0.700" in lines[0] and "12.0 img/s" in lines[0]
