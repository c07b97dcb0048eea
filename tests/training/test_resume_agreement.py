"""Several processes resume together or not at all: ranks that would continue from different checkpoints (a node
whose models/ folder is not the shared one) stop with one line naming the rank, the epoch and step, and the fix.

The two ranks are started by hand with torchrun's environment variables rather than by torchrun itself: torchrun's
agent kills the other workers as soon as one exits with an error, so whether the second rank's line gets printed
would be a race.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from pix2pix.tracking.ui import free_port
from pix2pix.training.config import TrainConfig
from pix2pix.training.loop import train
from pix2pix.training.model import ModelConfig

REPO = Path(__file__).resolve().parents[2]
RANKS = 2

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
    rank0_checkpoints = {path.name: path.read_bytes() for path in (tmp_path / "rank0" / "checkpoints").iterdir()}
    (tmp_path / "rank_script.py").write_text(RANK_SCRIPT)
    port = free_port()
    ranks = []
    try:
        for rank in range(RANKS):
            env = {
                **os.environ, "PYTHONPATH": str(REPO), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(RANKS), "CUDA_VISIBLE_DEVICES": "",
            }
            command = [sys.executable, str(tmp_path / "rank_script.py"), str(tmp_path / "pairs.npy"), str(tmp_path)]
            ranks.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outputs = [rank.communicate(timeout=180) for rank in ranks]
    finally:
        for rank in ranks:  # a rank left waiting for its peer must not outlive the test
            rank.kill()
    report = "\n".join(out + err[-2000:] for out, err in outputs)
    assert [rank.returncode for rank in ranks] == [3, 3], report
    assert outputs[0][0].startswith("rank 0: rank 0 would resume from epoch 1 step 0"), report
    assert outputs[1][0].startswith("rank 1: rank 1 would resume from epoch 0 step 0"), report
    assert all("give every node the same out_dir" in out for out, _ in outputs)
    # Nobody trained a step: rank 1 wrote no checkpoint, rank 0's are byte for byte what they were.
    assert not (tmp_path / "rank1" / "checkpoints").exists()
    after = {path.name: path.read_bytes() for path in (tmp_path / "rank0" / "checkpoints").iterdir()}
    assert after == rank0_checkpoints
