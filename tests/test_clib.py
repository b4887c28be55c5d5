"""PJSIP's C functions through ctypes (voip/backends/pjsip/clib.py): each feature loads, or
falls back, on its own.

The stack checks run a real SIP stack in a process of their own (one pjsua2 endpoint per
process), with one feature's table asking for a function the library lacks.
"""

import json
import subprocess
import sys
import textwrap

import pytest

from .sip import next_ports

pytest.importorskip("pjsua2")

from voip.backends.pjsip import clib  # noqa: E402 - after the skip


@pytest.mark.parametrize("name", list(clib.FEATURES))
def test_each_feature_resolves_in_the_installed_wheel(name):
    lib = clib.feature(name)
    for function, (args, result) in clib.FEATURES[name].functions.items():
        assert list(getattr(lib, function).argtypes) == args, function
        assert getattr(lib, function).restype is result, function


def test_a_missing_function_is_named():
    terminate = clib.FEATURES["terminate"]
    broken = clib.Feature("bogus", {**terminate.functions, "pj_no_such_function": ([], None)})
    with pytest.raises(clib.FeatureUnavailable) as caught:
        broken.load()
    assert str(caught.value) == "this PJSIP build has no pj_no_such_function()"
    assert caught.value.feature == "bogus"
    assert clib.feature("terminate") is not None  # the real one still loads


STACK_SCRIPT = """
    import dataclasses, json, logging
    from voip.backends.pjsip import clib
    from voip.backends.pjsip.native import NativePorts
    from voip.backends.pjsip.options import SipOptions
    from voip.backends.pjsip.prefilter import RequestFilter
    from voip.backends.pjsip.stack import SipStack
    from voip.backends.pjsip.terminate import CallTerminator
    from voip.guard import RequestGuard

    broken = {broken!r}
    if broken in clib.FEATURES:
        spec = clib.FEATURES[broken]
        functions = {{**spec.functions, "pj_no_such_function": ([], None)}}
        clib.FEATURES[broken] = dataclasses.replace(spec, functions=functions)

    warnings = []
    class Keep(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING and record.name in ("voip.sip", "voip.guard"):
                warnings.append(record.getMessage())
    logging.getLogger("voip").addHandler(Keep())

    on = {{}}
    def setup(stack):
        screen, terminator, native = RequestFilter(RequestGuard()), CallTerminator(), NativePorts()
        on.update(prefilter=screen.install(), terminate=terminator.load(), native=native.load())
        screen.uninstall()  # before it goes: PJSIP holds a pointer to its module
        native.close()

    stack = SipStack(SipOptions(listen="127.0.0.1:{port}", transports=("udp",),
                                rtp_ports=({rtp}, {rtp} + 20)))
    stack.start(setup)
    on.update(waker=stack._waker.active, conference=stack.conference.available)
    stack.stop()
    print(json.dumps({{"on": on, "warnings": warnings}}))
"""

LOST = {
    "prefilter": "request filter unavailable ({}): screening calls later instead",
    "terminate": "cannot end unACKed calls early ({}): a call answered and never ACKed keeps"
    " its slot for up to a minute, as PJSIP decides",
    "waker": "cannot wake the SIP thread at once ({}): it polls every few milliseconds",
    "conference": "cannot pause idle media ports ({}): each call's port runs every 20 ms",
    "native": "PJSIP cannot play and record by itself here ({}): using Python",
}
"""Each feature's one warning when it is off, with the reason in the braces."""


def run_stack(broken):
    port, rtp = next_ports()
    script = textwrap.dedent(STACK_SCRIPT).format(broken=broken, port=port, rtp=rtp)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_stack_loads_every_feature_quietly():
    result = run_stack("nothing")
    assert result["on"] == dict.fromkeys(LOST, True)
    assert result["warnings"] == []


@pytest.mark.parametrize("broken", list(LOST))
def test_a_missing_function_turns_off_only_its_feature(broken):
    result = run_stack(broken)
    assert result["on"] == {name: name != broken for name in LOST}
    reason = "this PJSIP build has no pj_no_such_function()"
    assert result["warnings"] == [LOST[broken].format(reason)]
