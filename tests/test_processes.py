"""How many workers a stage starts: the CPUs this process may use (affinity, cgroup quota), not the machine's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pix2pix.processes import cgroup_cpu_quota, usable_cpus


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2, as in a container limited to 1.5 CPUs
        ({"cpu.max": "max 100000\n"}, None),  # v2 without a limit
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_quota_is_read_from_either_cgroup_version(tmp_path: Path, files: dict[str, str], quota: float | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(tmp_path) == quota


def test_usable_cpus_is_the_smaller_of_affinity_and_quota(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU: still one worker
    assert usable_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{(affinity + 3) * 100000} 100000\n")  # a quota above the affinity set
    assert usable_cpus(tmp_path) == affinity
