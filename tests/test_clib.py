"""PJSIP's C functions through ctypes (voip/backends/pjsip/clib.py): each feature loads, or
falls back, on its own, and those reading PJSIP's structs only under a known PJSIP.

The stack checks run a real SIP stack in a process of their own (one pjsua2 endpoint per
process), with one feature's table asking for a function the library lacks, or with voip
knowing another PJSIP's layouts than the installed one's.
"""

import json
import logging
import subprocess
import sys
import textwrap

import pytest

from .sip import next_ports

pytest.importorskip("pjsua2")

from voip.backends.pjsip import clib  # noqa: E402 - after the skip

STRUCT_READERS = ["prefilter", "waker", "conference"]


@pytest.mark.parametrize("name", list(clib.FEATURES))
def test_each_feature_resolves_in_the_installed_wheel(name):
    lib = clib.feature(name)
    for function, (args, result) in clib.FEATURES[name].functions.items():
        assert list(getattr(lib, function).argtypes) == args, function
        assert getattr(lib, function).restype is result, function


def test_the_installed_pjsip_has_known_layouts():
    assert clib.layouts_known(clib.pjsip_version()), clib.pjsip_version()
    assert [n for n, f in clib.FEATURES.items() if f.reads_structs] == STRUCT_READERS


def test_a_missing_function_is_named():
    terminate = clib.FEATURES["terminate"]
    broken = clib.Feature(
        "bogus", "a test", False, {**terminate.functions, "pj_no_such_function": ([], None)}
    )
    with pytest.raises(clib.FeatureUnavailable) as caught:
        broken.load()
    assert str(caught.value) == "this PJSIP build has no pj_no_such_function()"
    assert caught.value.feature == "bogus"
    assert clib.feature("terminate") is not None  # the real one still loads


@pytest.mark.parametrize(
    "version, known",
    [
        ("2.15", True),
        ("2.15.0", True),
        ("2.15.1", True),
        ("2.14.1", False),
        ("2.16", False),
        ("2.16.0", False),
        ("2.15-dev", False),  # between releases: anything may have changed
        ("2.15.1-dev", False),
        ("2.150.1", False),
        ("12.15.1", False),
        ("", False),
    ],
)
def test_layouts_known_by_version(version, known):
    assert clib.layouts_known(version) is known


def test_an_unknown_version_turns_off_the_struct_readers_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="voip"):
        assert clib.check_version("2.15.1") == []
        assert caplog.messages == []
        assert clib.check_version("2.16.0") == STRUCT_READERS
    assert caplog.messages == [
        "PJSIP 2.16.0: voip knows the struct layouts of PJSIP 2.15.x only, so these are off:"
        " the request prefilter, the SIP thread's waker, the pausing of idle media ports"
        " (pjsua2-python 2.15.x has them)"
    ]


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
    if broken == "version":
        clib.KNOWN_LAYOUTS = ("2.14",)  # voip's knowledge, not PJSIP: 2.15 is now unknown
    elif broken in clib.FEATURES:
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
    version = stack.submit(lambda: stack.ep.libVersion().full).result(timeout=5)
    stack.stop()
    print(json.dumps({{"on": on, "warnings": warnings, "version": version,
                      "clib_version": clib.pjsip_version()}}))
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
    assert result["version"] == result["clib_version"]  # pjsua2's and the C library's agree


@pytest.mark.parametrize("broken", list(LOST))
def test_a_missing_function_turns_off_only_its_feature(broken):
    result = run_stack(broken)
    assert result["on"] == {name: name != broken for name in LOST}
    reason = "this PJSIP build has no pj_no_such_function()"
    assert result["warnings"] == [LOST[broken].format(reason)]


def test_an_unknown_pjsip_turns_off_the_struct_readers_only():
    result = run_stack("version")
    assert result["on"] == {name: name not in STRUCT_READERS for name in LOST}
    version = result["version"]
    reason = f"PJSIP {version}'s struct layouts are not known, only 2.14.x's"
    assert result["warnings"] == [
        f"PJSIP {version}: voip knows the struct layouts of PJSIP 2.14.x only, so these are"
        " off: the request prefilter, the SIP thread's waker, the pausing of idle media ports"
        " (pjsua2-python 2.14.x has them)",
        LOST["conference"].format(reason),  # in the order the stack loads them
        LOST["waker"].format(reason),
        LOST["prefilter"].format(reason),
    ]
