"""The run summary (``metrics/summary.json``: numbers only), its notes and the FID-vs-epoch chart.

``summary.json`` is a DVC metrics file: ``dvc exp show`` makes a column of every key, so it holds numbers
(or null) only; text that explains them (the network used, why a metric is null) goes to the notes file
and MLflow tags. Nothing in it is a timing, so two runs of the same commit write it byte for byte the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pix2pix.atomic import atomic_path, write_json_atomic
from pix2pix.evaluation.scoring import METRIC_NAMES
from pix2pix.evaluation.segmentation import MASK_METRIC_NAMES, REAL_METRIC_NAMES, cityscapes_fcn_scores
from pix2pix.training.model import InferenceMode


def summarise(
    rows: Sequence[Mapping[str, Any]],
    final: Mapping[str, Any],
    mode: InferenceMode,
    mask_ceiling: Mapping[str, float | None],
) -> dict[str, int | float | None]:
    """Final and best values: ``final`` is the final generator's evaluation, ``rows`` the per-epoch table.

    ``mask_ceiling`` holds ``REAL_METRIC_NAMES`` (the segmenter on the real test photos; None when the score
    does not apply) and the segmenter's ``classes``: for the 19 Cityscapes trainIds the mask scores are also given
    under the paper's protocol names (``cityscapes_fcn_*``, :func:`cityscapes_fcn_scores`). The test-time mode is
    recorded as numbers: ``eval_batch_statistics`` 1 (test batch) or 0 (running), ``eval_dropout`` 1 or 0,
    ``eval_batch_size``.
    """
    scored = [r for r in rows if r.get("fid") is not None]
    best = min(scored, key=lambda r: r["fid"]) if scored else None
    mask = {name: final.get(name) for name in MASK_METRIC_NAMES}
    real = {name: mask_ceiling.get(name) for name in REAL_METRIC_NAMES}
    return {
        **{name: final.get(name) for name in METRIC_NAMES},
        **mask,
        **real,
        **cityscapes_fcn_scores({**mask, **real}, mask_ceiling.get("classes")),
        "epochs": max((r["epoch"] for r in rows), default=0),
        "best_fid": best["fid"] if best else None,
        "best_fid_epoch": best["epoch"] if best else None,
        "eval_images": final.get("eval_images"),
        "eval_batch_statistics": int(mode.batchnorm == "test_batch"),
        "eval_dropout": int(mode.dropout),
        "eval_batch_size": mode.batch_size,
    }


def write_summary(path: Path, summary: Mapping[str, Any]) -> None:
    """``summary.json`` for ``dvc metrics show`` / ``dvc exp show`` (written atomically)."""
    write_json_atomic(path, dict(summary))


def plot_metric_curve(rows: Sequence[Mapping[str, Any]], metric: str, path: Path) -> None:
    """A small PNG of ``metric`` against epoch (for the README and the MLflow run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(r["epoch"], r[metric]) for r in rows if r.get(metric) is not None]
    figure, axis = plt.subplots(figsize=(5, 3), dpi=100)
    axis.plot([p[0] for p in points], [p[1] for p in points], marker="o")
    axis.set_xlabel("epoch")
    axis.set_ylabel(metric.upper())
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(Path(path)) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
