"""The README's several-machines recipe, as written, on this machine: two "nodes" are two torchrun launches with
`--nnodes 2` meeting at a c10d rendezvous on 127.0.0.1 (CPU, gloo), the shared folder being the checkout."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pix2pix.tracking.ui import free_port
from tests.project import make_project, run, tool_env

SETTINGS = {
    "image_size": 32, "batch_size": 4, "epochs": 2, "data.sample.n_pairs": 30, "data.min_valid_pairs": 10,
    "model.ngf": 8, "model.ndf": 8, "train.snapshot_every": 1, "eval.num_images": 6, "eval.sample_count": 2,
    "eval.segmenter.width": 4, "eval.segmenter.epochs": 2, "mlflow.enabled": False,
}
NODE_TIMEOUT_S = 600


def launch_nodes(root: Path) -> list[str]:
    """The recipe's torchrun command on each of 2 nodes (1 process each); returns each node's output."""
    endpoint = f"127.0.0.1:{free_port()}"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "pix2pix-run1", "-m", "stages.train",
    ]
    nodes = [subprocess.Popen(command, cwd=root, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outputs = [node.communicate(timeout=NODE_TIMEOUT_S)[0] for node in nodes]
    for node, output in zip(nodes, outputs):
        assert node.returncode == 0, output[-3000:]
    return outputs


@pytest.mark.slow
def test_two_node_recipe_trains_once_resumes_together_and_leaves_dvc_clean(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project", SETTINGS)
    run(["dvc", "repro", "split"], root)  # training needs only the pairs
    first = "\n".join(launch_nodes(root))
    assert first.count("trained 2 epochs in 2 process(es)") == 1  # rank 0 alone reports (and writes)
    assert sorted(p.name for p in (root / "models/snapshots").iterdir()) == ["epoch_0000.pt", "epoch_0001.pt", "epoch_0002.pt"]
    assert len(list((root / "models/checkpoints").iterdir())) == 2

    # Launched again, both ranks find the same finished checkpoint: nothing to train, nothing rewritten.
    snapshots = {p: p.stat().st_mtime_ns for p in (root / "models/snapshots").iterdir()}
    again = "\n".join(launch_nodes(root))
    assert "nothing left to train in 2 process(es) (resumed after epoch 2)" in again
    assert {p: p.stat().st_mtime_ns for p in (root / "models/snapshots").iterdir()} == snapshots

    run(["dvc", "commit", "--force", "train"], root)
    scored = run(["dvc", "repro", "evaluate"], root)
    assert "train" not in re.findall(r"Running stage '(\w+)'", scored.stdout)
    assert (root / "metrics/summary.json").is_file()
    assert run(["dvc", "status", "--json"], root).stdout.strip() == "{}"
