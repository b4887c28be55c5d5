"""Realtime priority for PJSIP's media clock, the thread that paces every call's audio.

Every 20 ms the conference clock mixes the bridge and encodes and sends one RTP packet
per call. At normal priority it waits its turn behind whatever else is runnable, so on
a busy machine packets leave late: 25 workers holding 100 calls on 2 cores sent them
3.6 ms off their 20 ms pace at p99, and 1.2 ms with the clock at ``SCHED_RR``
(``docs/benchmarks.md``, the load section, measures both in one run). Media servers do the
same (Asterisk's ``-p``, FreeSWITCH's ``-rp``). The thread does little per tick, and the
kernel caps realtime threads at 95% of each second (``sched_rt_runtime_us``), so it
cannot lock up the machine.

The clock is started inside :func:`realtime_threads`, so it is born at ``SCHED_RR``
:data:`REALTIME_PRIORITY` (threads inherit their creator's policy); PJSIP's clock then
raises itself to the top of that policy where it may (root, ``CAP_SYS_NICE``), as it
is written to. This takes ``CAP_SYS_NICE`` or an ``RLIMIT_RTPRIO`` of at least
:data:`REALTIME_PRIORITY` (systemd: ``LimitRTPRIO=``); without either the clock keeps its
normal priority and one warning says how to allow it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from .options import MediaPriority

__all__ = ["REALTIME_PRIORITY", "realtime_threads"]

log = logging.getLogger("voip.sip")

REALTIME_PRIORITY = 10
"""The ``SCHED_RR`` priority the clock is born with: low among realtime ones (1-99),
above every normal thread (Asterisk's ``-p`` takes the same)."""


@contextmanager
def realtime_threads(priority: MediaPriority) -> Iterator[bool]:
    """Threads started by this thread inside the block run at realtime priority if
    ``priority`` asks for it and the process may; yields whether they will. This thread
    gets its own scheduling back at the end. Logs a warning when it is not allowed."""
    if priority == "normal":
        yield False
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(REALTIME_PRIORITY))
    except PermissionError:
        log.warning(
            "the media clock stays at normal priority (not allowed to use SCHED_RR): on a"
            " busy machine calls' audio may leave a few ms off its pace. Allow it with"
            " LimitRTPRIO=%d in the systemd unit (or CAP_SYS_NICE), or pass"
            " --media-priority normal to keep it normal without this warning",
            REALTIME_PRIORITY,
        )
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, policy, param)
