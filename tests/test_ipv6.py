"""SIP over IPv6 (--listen [::1]:PORT, or [::]:PORT for IPv4 and IPv6 at once), and
callers offering audio on IPv6, which the pjsua2 wheel (built without IPv6) cannot carry:
refused with 488 before they are answered."""

from __future__ import annotations

import re
import socket
import time

import pytest

from voip import loadWAVtoPCM

from .helpers import tone_spans, write_app
from .sip import peer, peer_result, serving
from .sipp import PEERS, needs_sipp, run_sipp


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 on loopback (::1)")

GREETING_APP = """
    import asyncio
    from voip import runVoipClient

    async def handler(call):
        await call.playTone(420, 0.5)
        keys = await asyncio.wait_for(call.getDTMF(n=2), 15)
        call.log.info("GOT KEYS %s", keys)
        await call.playTone(1000, 0.3)

    runVoipClient(handler)
"""


def call_and_record(uri: str, heard, *args: str):
    """A pjsua2 caller that records the call and presses 4 then 2 a second in."""
    return peer(uri, "--record", str(heard), "--dtmf", "42", "--dtmf-at", "1.0", *args)


def assert_heard_the_call(result: dict, heard) -> None:
    """Answered; the greeting (420 Hz, 0.5 s), then, once the keys arrived, 1000 Hz
    for 0.3 s; the app hung up when its handler returned."""
    assert result["status"] == 200 and result["answered"], result
    x = loadWAVtoPCM(heard)
    greeting, done = tone_spans(x, 420), tone_spans(x, 1000)
    assert len(greeting) == 1 and abs(greeting[0][1] - 0.5) <= 0.03, greeting
    assert len(done) == 1 and abs(done[0][1] - 0.3) <= 0.03, done
    assert greeting[0][0] < done[0][0]


@pytest.mark.parametrize(
    "host, transport",
    [("::1", "udp"), ("::1", "tcp"), ("::", "udp")],
)
def test_a_caller_over_ipv6_hears_the_app_and_its_keys_arrive(tmp_path, host, transport):
    heard = tmp_path / "heard.wav"
    with serving(write_app(tmp_path, GREETING_APP), host=host) as app:
        args = ["--sip-ip", "::1", *(["--tcp"] if transport == "tcp" else [])]
        result = peer_result(call_and_record(f"sip:app@[::1]:{app.port}", heard, *args))
    assert_heard_the_call(result, heard)
    assert re.search(r"call from <sip:peer@\[::1\]> \(\[::1\]:\d+\) answered", app.log), app.log
    assert "GOT KEYS 42" in app.log
    assert "call ended (we hung up)" in app.log
    assert "calls over IPv6 have their audio on IPv4" in app.log


def test_one_app_on_both_ipv4_and_ipv6_takes_both_kinds_of_callers_at_once(tmp_path):
    heard4, heard6 = tmp_path / "ipv4.wav", tmp_path / "ipv6.wav"
    with serving(write_app(tmp_path, GREETING_APP), host="::") as app:
        assert app.uri == f"sip:app@127.0.0.1:{app.port}"
        over_ipv4 = call_and_record(app.uri, heard4)
        time.sleep(0.3)  # both calls are up together, their RTP ports from one range
        over_ipv6 = call_and_record(f"sip:app@[::1]:{app.port}", heard6, "--sip-ip", "::1")
        results = peer_result(over_ipv4), peer_result(over_ipv6)
    for result, heard in zip(results, (heard4, heard6), strict=True):
        assert_heard_the_call(result, heard)
    assert app.log.count("GOT KEYS 42") == 2, app.log
    assert re.search(r"\(127\.0\.0\.1:\d+\) answered", app.log), app.log
    assert re.search(r"\(\[::1\]:\d+\) answered", app.log), app.log
    assert app.log.count("call ended") == 2, app.log
    # PJSIP trying an RTP port another call holds is not an error.
    assert "ERROR" not in app.log, app.log


@needs_sipp
@pytest.mark.parametrize("host, caller", [("127.0.0.1", "127.0.0.1"), ("::", "::1")])
def test_an_offer_of_audio_on_ipv6_only_is_refused_before_it_is_answered(tmp_path, host, caller):
    """As linphone offers on a dual-stack host: c=IN IP6. Over IPv4 SIP to an IPv4 app,
    and over IPv6 to an app on both."""
    with serving(write_app(tmp_path, GREETING_APP), host=host) as app:
        run = run_sipp(
            PEERS / "sipp_busy.xml", app, tmp_path, "-m", "1", sip_ip=caller, media_ip="::1"
        )
    assert run.returncode == 0, run.output
    assert run.calls("NOT_ACCEPTABLE") == [1], (run.log, app.log)
    assert (
        f"refused SIP from {caller}: its offer has audio on IPv6 only (c=IN IP6), and this"
        " PJSIP build carries IPv4 media only: the phone must offer IPv4 (linphone: ipv6"
        " disable) (488)"
    ) in app.log
    assert "answered" not in app.log and "EAFNOTSUP" not in app.log, app.log
