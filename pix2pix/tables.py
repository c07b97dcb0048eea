"""Per-epoch tables as tab-separated text (``metrics/*.tsv``: DVC plots, people, the README's numbers).

One row per epoch, sorted, numbers with 6 significant digits, an empty cell for a value that does not exist
(IS with the Inception trunk, epoch 0's losses): stable bytes for DVC from run to run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pix2pix.atomic import write_text_atomic

MISSING = ""


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_epochs_tsv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Write ``columns`` of the per-epoch ``rows`` (header + one line per epoch, sorted by epoch) atomically.

    Other keys of ``rows`` are ignored.
    """
    ordered = sorted(rows, key=lambda r: r["epoch"])
    lines = ["\t".join(columns)] + ["\t".join(_cell(row.get(c)) for c in columns) for row in ordered]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_epochs_tsv(path: Path) -> list[dict[str, float | int | None]]:
    """Read ``epochs.tsv`` back; empty cells become None."""
    header, *lines = Path(path).read_text().splitlines()
    columns = header.split("\t")
    rows = []
    for line in lines:
        values = line.split("\t")
        rows.append({c: (None if v == MISSING else (int(v) if c == "epoch" else float(v))) for c, v in zip(columns, values)})
    return rows
