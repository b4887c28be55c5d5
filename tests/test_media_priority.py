"""PJSIP's media clock thread runs at realtime priority where the process may have it."""

from __future__ import annotations

import os
import resource
import shutil
from pathlib import Path

import pytest

from voip.backends.pjsip.priority import REALTIME_PRIORITY

from .helpers import ROOT
from .sip import serving

HELLO = ROOT / "examples" / "hello.py"
WARNING = "the media clock stays at normal priority"
TOP = os.sched_get_priority_max(os.SCHED_RR)


def _allowed_priority() -> int:
    """The highest SCHED_RR priority a process started from this one may take."""
    return TOP if os.geteuid() == 0 else resource.getrlimit(resource.RLIMIT_RTPRIO)[0]


def _clock_policy(pid: int) -> tuple[int, int]:
    """The scheduling policy and priority of the app's media clock thread (PJSIP names
    it "clock")."""
    tasks = Path(f"/proc/{pid}/task")
    clocks = [int(t.name) for t in tasks.iterdir() if (t / "comm").read_text() == "clock\n"]
    assert len(clocks) == 1, f"expected one clock thread, found {clocks}"
    return os.sched_getscheduler(clocks[0]), os.sched_getparam(clocks[0]).sched_priority


def test_the_media_clock_runs_at_realtime_priority_where_allowed():
    with serving(HELLO) as app:
        policy = _clock_policy(app.proc.pid)
    allowed = _allowed_priority()
    if allowed >= REALTIME_PRIORITY:
        # Born at REALTIME_PRIORITY, PJSIP's clock raises itself to the top where it may.
        assert policy == (os.SCHED_RR, TOP if allowed >= TOP else REALTIME_PRIORITY)
        assert WARNING not in app.log
    else:
        assert policy == (os.SCHED_OTHER, 0)
        assert WARNING in app.log and "LimitRTPRIO=10" in app.log


def test_media_priority_normal_leaves_the_clock_alone():
    with serving(HELLO, "--media-priority", "normal") as app:
        assert _clock_policy(app.proc.pid) == (os.SCHED_OTHER, 0)
    assert WARNING not in app.log


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="drops root's CAP_SYS_NICE"
)
def test_without_the_right_to_realtime_the_app_warns_and_serves():
    drop = ("setpriv", "--bounding-set", "-sys_nice")
    with serving(HELLO, prefix=drop) as app:
        assert _clock_policy(app.proc.pid) == (os.SCHED_OTHER, 0)
    assert WARNING in app.log and "LimitRTPRIO=10" in app.log
