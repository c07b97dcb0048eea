"""Several processes resume together or not at all: ranks that would continue from different checkpoints (a node
whose models/ folder is not the shared one) stop with one line naming the rank, the epoch and step, and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from pix2pix.training.config import TrainConfig
from pix2pix.training.loop import train
from pix2pix.training.model import ModelConfig

# Each rank trains into its own folder: rank 0's holds a finished epoch, rank 1's nothing.
RANK_SCRIPT = """
import sys
from pathlib import Path
import numpy as np
from pix2pix.errors import TrainingError
from pix2pix.training import distributed
from pix2pix.training.config import TrainConfig
from pix2pix.training.loop import train
from pix2pix.training.model import ModelConfig

info = distributed.init_from_env()
cfg = TrainConfig(model=ModelConfig(32, ngf=8, ndf=8), batch_size=4, epochs=2)
pairs = np.load(sys.argv[1])
try:
    train(cfg, pairs, Path(sys.argv[2]) / f"rank{info.rank}", device=info.device)
except TrainingError as error:
    print(f"rank {info.rank}: {error}", flush=True)
    sys.exit(3)
finally:
    distributed.cleanup()
"""


def test_ranks_that_would_resume_from_different_points_stop_with_one_line(tmp_path: Path) -> None:
    pairs = np.random.default_rng(0).integers(0, 256, (8, 2, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "pairs.npy", pairs)
    train(TrainConfig(model=ModelConfig(32, ngf=8, ndf=8), batch_size=4, epochs=1), pairs, tmp_path / "rank0")
    (tmp_path / "rank_script.py").write_text(RANK_SCRIPT)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        str(tmp_path / "rank_script.py"), str(tmp_path / "pairs.npy"), str(tmp_path),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert completed.returncode != 0
    lines = [line for line in completed.stdout.splitlines() if line.startswith("rank ")]
    assert len(lines) == 2, completed.stdout + completed.stderr[-2000:]
    assert "rank 0: rank 0 would resume from epoch 1 step 0" in completed.stdout
    assert "rank 1: rank 1 would resume from epoch 0 step 0" in completed.stdout
    assert all("give every node the same out_dir" in line for line in lines)
    assert not (tmp_path / "rank1" / "checkpoints").exists()  # nobody trained a step
