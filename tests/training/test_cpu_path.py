"""Which precision a CPU trains in: bf16 autocast + channels_last where it computes bf16 natively (AMX or
AVX512-BF16), fp32 eager elsewhere.

The flags are read from /proc/cpuinfo; the fixture lines below copy its format (`flags\t\t: fpu vme ...`), with
the flags a Sapphire Rapids Xeon (amx_bf16, amx_tile, avx512_bf16) and an EPYC Zen 4 (avx512_bf16, no AMX) show.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix.devices import cpu_bf16_units, cpu_flags
from pix2pix.errors import ConfigError
from pix2pix.training import distributed
from pix2pix.training.config import TrainConfig
from pix2pix.training.model import ModelConfig
from pix2pix.training.trainer import RankTrainer, resolve_amp

CPU = torch.device("cpu")
XEON_AMX = "fpu vme sse sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8"
EPYC_ZEN4 = "fpu vme sse sse2 avx2 avx512f avx512_bf16 avx512_vnni"
OLD_AVX2 = "fpu vme sse sse2 avx avx2 fma"


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: test\nflags\t\t: {flags}\n\n")
    return path


@pytest.mark.parametrize(("flags", "units"), [(XEON_AMX, "amx"), (EPYC_ZEN4, "avx512_bf16"), (OLD_AVX2, None)])
def test_native_bf16_units_are_read_from_cpuinfo(tmp_path: Path, flags: str, units: str | None) -> None:
    assert cpu_bf16_units(cpu_flags(cpuinfo(tmp_path, flags))) == units


def test_a_machine_without_cpuinfo_has_no_flags(tmp_path: Path) -> None:
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(
    ("mode", "units", "expected"),
    [("auto", "amx", torch.bfloat16), ("auto", "avx512_bf16", torch.bfloat16), ("auto", None, None),
     ("bf16", "avx512_bf16", torch.bfloat16), ("bf16", "amx", torch.bfloat16), ("off", "amx", None), ("fp16", "amx", None)],
)
def test_cpu_precision_follows_the_units(mode: str, units: str | None, expected: torch.dtype | None) -> None:
    assert resolve_amp(mode, CPU, cpu_units=units) == expected


def test_bf16_on_a_cpu_without_bf16_units_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="no native bf16 units.*use amp: auto or off"):
        resolve_amp("bf16", CPU, cpu_units=None)


def test_the_log_names_the_path_that_trains(caplog: pytest.LogCaptureFixture) -> None:
    cfg = TrainConfig(model=ModelConfig(32, ngf=8, ndf=8), batch_size=2, epochs=1, amp="off")
    pairs = np.zeros((2, 2, 32, 32, 3), dtype=np.uint8)
    with caplog.at_level(logging.INFO, logger="pix2pix.training.trainer"):
        trainer = RankTrainer(cfg, pairs, distributed.current(CPU))
    assert trainer.amp_dtype is None and trainer.memory_format == torch.contiguous_format
    units = cpu_bf16_units(cpu_flags()) or "none"
    assert f"compute: cpu, fp32 (native bf16 units: {units})" in caplog.text
