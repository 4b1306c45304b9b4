"""Child processes that die with the process that started them, so a crash of it leaves none running.

On Linux a child asks the kernel for a signal when its parent dies (``prctl(PR_SET_PDEATHSIG)``),
armed between fork and exec and kept across exec. Where the platform has no such signal, nothing
is armed, and the launcher's start-up checks name what a crash left behind.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def dying_with_parent(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child sent ``sig`` when this process dies; None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the forked child only calls it
    parent = os.getpid()

    def arm() -> None:
        if prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died between the fork and the prctl: no signal will come
            os._exit(1)

    return arm
