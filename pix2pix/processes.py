"""Worker processes that never outlive the process that started them.

A stage killed outright (SIGKILL from DVC, the OOM killer, a cluster's pre-emption) cannot stop its pool:
Python's ``ProcessPoolExecutor`` workers would sleep on forever, holding memory and the multiprocessing
resource tracker's pipe. Linux can deliver a signal to a process when its parent dies
(``prctl(PR_SET_PDEATHSIG)``): :func:`die_with_parent` asks for SIGKILL, and is the pools' initializer.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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
