"""The SIP thread itself: work handed to it from other threads.

Each check runs a SIP stack in a process of its own (one pjsua2 endpoint per process).
"""

import json
import subprocess
import sys
import textwrap

from .sip import next_ports  # skips this module when pjsua2 is missing

STACK_SCRIPT = """
    import json, sys, threading, time
    from voip.backends.pjsip.options import SipOptions
    from voip.backends.pjsip.stack import IDLE_MS, SipStack

    stack = SipStack(SipOptions(listen="127.0.0.1:{port}", transports=("udp",),
                                rtp_ports=({rtp}, {rtp} + 20)))
    stack.start()
    active = stack._waker.active
    ran_on = set()
    started = time.monotonic()
    for _ in range(20):  # one at a time: each must end the SIP thread's poll
        stack.submit(lambda: ran_on.add(threading.current_thread().name)).result(timeout=5)
    took = time.monotonic() - started
    sip_thread = next(t for t in threading.enumerate() if t.name == "voip-sip")
    stack.stop()
    print(json.dumps({{"active": active, "took": took, "ran_on": sorted(ran_on),
                      "idle_ms": IDLE_MS, "alive": sip_thread.is_alive()}}))
"""


def test_submitted_work_wakes_the_sleeping_sip_thread(tmp_path):
    port, rtp = next_ports()
    script = textwrap.dedent(STACK_SCRIPT).format(port=port, rtp=rtp)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["active"], out.stderr  # the waker is installed in PJSIP's poll
    assert result["ran_on"] == ["voip-sip"]
    # The SIP thread sleeps up to IDLE_MS (1 s) in its poll: without the waker, 20 jobs
    # handed over one after another would take about 10 s.
    assert result["took"] < 20 * result["idle_ms"] / 1000 / 10
    assert not result["alive"]  # stop() ended it
