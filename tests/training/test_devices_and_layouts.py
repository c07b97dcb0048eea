"""What a first GPU run would hit, proved on CPU: resume across memory formats, native bf16 only, cuBLAS
determinism set in time, and the background batch gather."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pix2pix.data.store import PairsView
from pix2pix.devices import CUBLAS_WORKSPACE_VARIABLE
from pix2pix.errors import ConfigError
from pix2pix.training.checkpoint_store import CHECKPOINTS_DIR, list_checkpoints
from pix2pix.training.distributed import DistInfo
from pix2pix.training.loop import train
from pix2pix.training.runtime import check_deterministic_cublas
from pix2pix.training.schedule import epoch_plan
from pix2pix.training.snapshots import SNAPSHOTS_DIR, snapshot_file
from pix2pix.training.trainer import BatchPrefetcher, RankTrainer, match_parameter_layouts, resolve_amp
from tests.training.test_resume import assert_identical, random_pairs, tiny_config

CPU = torch.device("cpu")


def to_channels_last(value: object) -> object:
    """``value`` with every 4-d tensor inside it stored channels_last (as a CUDA run's checkpoint holds them)."""
    if isinstance(value, torch.Tensor):
        return value.contiguous(memory_format=torch.channels_last) if value.ndim == 4 else value
    if isinstance(value, dict):
        return {key: to_channels_last(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_channels_last(item) for item in value]
    return value


def test_resume_of_a_channels_last_checkpoint_equals_a_straight_run(tmp_path: Path) -> None:
    pairs = random_pairs(8)
    train(tiny_config(epochs=2), pairs, tmp_path / "straight")
    train(tiny_config(epochs=1), pairs, tmp_path / "resumed")
    path = list_checkpoints(tmp_path / "resumed" / CHECKPOINTS_DIR)[0]
    checkpoint = torch.load(path, weights_only=True)
    moved = to_channels_last(checkpoint)
    states = [state for key in ("opt_g", "opt_d") for state in moved[key]["state"].values()]
    assert any(t.ndim == 4 and not t.is_contiguous() for state in states for t in state.values())
    torch.save(moved, path)

    resumed = train(tiny_config(epochs=2), pairs, tmp_path / "resumed")

    assert resumed.resumed_from_epoch == 1
    assert_identical(final_files(tmp_path / "straight"), final_files(tmp_path / "resumed"), "run")


def final_files(out_dir: Path) -> dict[str, Any]:
    """The newest checkpoint and the epoch-2 snapshot of a run (its epoch-1 snapshot records the config it ran
    with: epochs=1 for a run that was extended)."""
    return {
        "checkpoint": torch.load(list_checkpoints(out_dir / CHECKPOINTS_DIR)[0], weights_only=True),
        "snapshot": torch.load(snapshot_file(out_dir / SNAPSHOTS_DIR, 2), weights_only=True),
    }


def test_optimizer_state_takes_its_parameters_layout() -> None:
    weight = torch.nn.Parameter(torch.randn(4, 3, 2, 2).contiguous(memory_format=torch.channels_last))
    optimizer = torch.optim.Adam([weight], fused=True)
    optimizer.state[weight] = {"step": torch.tensor(1.0), "exp_avg": torch.randn(4, 3, 2, 2)}
    before = optimizer.state[weight]["exp_avg"].clone()
    match_parameter_layouts(optimizer)
    state = optimizer.state[weight]
    assert state["exp_avg"].stride() == weight.stride() and torch.equal(state["exp_avg"], before)
    assert state["step"].ndim == 0


def fake_cuda_bf16(native: bool):
    """A stand-in for ``torch.cuda.is_bf16_supported``: emulation always counts, native support as given."""
    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return native or including_emulation
    return is_bf16_supported


@pytest.mark.parametrize(("native", "expected"), [(True, torch.bfloat16), (False, torch.float16)])
def test_amp_auto_takes_bf16_only_where_the_gpu_computes_it_natively(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: torch.dtype
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", fake_cuda_bf16(native))
    assert resolve_amp("auto", torch.device("cuda")) == expected


def test_amp_bf16_is_refused_on_a_gpu_that_only_emulates_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", fake_cuda_bf16(False))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.raises(ConfigError, match="Tesla T4 has no native bf16"):
        resolve_amp("bf16", torch.device("cuda"))


@pytest.mark.parametrize(
    ("mode", "accelerate_cpu", "expected"),
    [("auto", False, None), ("auto", True, torch.bfloat16), ("fp16", True, torch.float16), ("off", True, None)],
)
def test_cpu_without_bf16_units_uses_amp_only_when_forced(mode: str, accelerate_cpu: bool, expected: torch.dtype | None) -> None:
    assert resolve_amp(mode, CPU, accelerate_cpu, cpu_units=None) == expected


def test_deterministic_cublas_after_cuda_ran_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CUBLAS_WORKSPACE_VARIABLE, raising=False)
    with pytest.raises(ConfigError, match="request_deterministic_cublas"):
        check_deterministic_cublas(cuda_initialized=True)


def test_deterministic_cublas_before_cuda_sets_the_workspace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CUBLAS_WORKSPACE_VARIABLE, raising=False)
    check_deterministic_cublas(cuda_initialized=False)
    assert CUBLAS_WORKSPACE_VARIABLE in __import__("os").environ


def test_prefetcher_yields_every_batch_in_order_from_two_reused_buffers() -> None:
    pairs = random_pairs(12)
    index_batches = [np.array([5, 1, 7]), np.array([0, 11, 2]), np.array([3, 3, 9]), np.array([4, 6, 8])]
    prefetcher = BatchPrefetcher(pairs, 3, CPU)
    addresses = {buffer.data_ptr() for buffer in prefetcher.buffers}
    seen = []
    for indices, batch in zip(index_batches, prefetcher.batches(index_batches)):
        assert batch.data_ptr() in addresses
        seen.append(batch.data_ptr())
        np.testing.assert_array_equal(batch.numpy(), pairs[indices])
    assert len(seen) == 4 and seen[0] == seen[2] != seen[1] == seen[3]


def test_trainer_batches_follow_the_epoch_plan() -> None:
    cfg = tiny_config(jitter=False, flip=False)
    pairs = random_pairs(8)
    trainer = RankTrainer(cfg, pairs, DistInfo(0, 1, 0, CPU))
    plan = epoch_plan(cfg, 1, len(pairs))
    batches = list(trainer.batches(plan))
    assert len(batches) == 2
    for step, (a, b) in enumerate(batches):
        expected = torch.from_numpy(pairs[plan.order[step * 4 : (step + 1) * 4]]).permute(0, 1, 4, 2, 3) / 127.5 - 1
        torch.testing.assert_close(a, expected[:, 0])
        torch.testing.assert_close(b, expected[:, 1])


def test_training_on_a_split_view_equals_training_on_its_pairs(tmp_path: Path) -> None:
    store = random_pairs(12)
    rows = np.array([11, 3, 7, 0, 5, 9, 2, 8])
    on_view = train(tiny_config(), PairsView(store, rows), tmp_path / "view")
    on_array = train(tiny_config(), store[rows], tmp_path / "array")
    assert on_view.history[0]["loss_l1"] == on_array.history[0]["loss_l1"]
    snapshots = [snapshot_file(tmp_path / run / SNAPSHOTS_DIR, 1) for run in ("view", "array")]
    assert_identical(*(torch.load(path, weights_only=True) for path in snapshots), "snapshot")
