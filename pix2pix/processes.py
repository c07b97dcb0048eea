"""Worker processes: how many this process may really use, and that they never outlive the process that started them.

``os.cpu_count()`` counts the machine's CPUs, not the ones this process may run on: a container limited to 2 CPUs
on a 64-core host (a cgroup quota) or a job pinned to a few cores (affinity, e.g. by Slurm or ``taskset``) would
start 64 workers that fight over 2 cores. :func:`usable_cpus` takes the smallest of the affinity and the quota.

A stage killed outright (SIGKILL from DVC, the OOM killer, a cluster's pre-emption) cannot stop its pool:
Python's ``ProcessPoolExecutor`` workers would sleep on forever, holding memory and the multiprocessing
resource tracker's pipe. Linux can deliver a signal to a process when its parent dies
(``prctl(PR_SET_PDEATHSIG)``): :func:`die_with_parent` asks for SIGKILL, and is the pools' initializer.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs the cgroup quota allows (cgroup v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``), or None."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1") or not period.isdigit() or int(period) == 0:
        return None
    return int(quota) / int(period)


def usable_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may use: its affinity set, capped by the cgroup quota (rounded up), at least 1."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(root)
    return max(1, min(affinity, math.ceil(quota)) if quota is not None else affinity)


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent ``parent_pid`` exits (Linux; a no-op elsewhere).

    The parent may already have died between the start of the worker and this call: then exit at once.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)
