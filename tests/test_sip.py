"""Real SIP calls between processes on loopback: our app, our softphone, plain pjsua2."""

import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from voip import loadWAVtoPCM, savePCMtoWAV

from .helpers import ROOT, find_sound, read_pty, tone, tone_spans, write_app
from .sip import next_ports, peer, peer_result, peers, serving, voip_dial
from .test_ack_timeout import final_status, invite, udp_socket

ASSETS = ROOT / "assets"


def tone_app(tmp_path, freq: float, seconds: float):
    """An app whose handler plays one tone to each caller."""
    return write_app(
        tmp_path,
        f"""
        from voip import runVoipClient

        async def handler(call):
            await call.playTone({freq}, {seconds})

        runVoipClient(handler)
        """,
    )


TONES_APP = """
    import asyncio
    from voip import runVoipClient

    async def handler(call):
        print("caller", call.caller, call.caller_name, call.headers.get("X-Account"), flush=True)
        await call.playTone(420, 0.5)
        await call.playTone(650, 0.3)
        keys = await asyncio.wait_for(call.getDTMF(n=4), 15)
        call.log.info("GOT KEYS %s", keys)
        await call.playTone(1000, 0.4)

    runVoipClient(handler)
"""


@pytest.mark.parametrize("method", ["rfc4733", "info", "info-dtmf"])
def test_pjsua_caller_hears_tones_and_its_keys_arrive(tmp_path, method):
    """Keys by RFC 4733 events, SIP INFO application/dtmf-relay, and INFO application/dtmf."""
    app_path = write_app(tmp_path, TONES_APP)
    heard = tmp_path / "heard.wav"
    with serving(app_path) as app:
        caller = peer(
            app.uri,
            "--record",
            str(heard),
            "--dtmf",
            "1234",
            "--dtmf-at",
            "1.2",
            "--dtmf-method",
            method,
            "--duration",
            "8",
            "--header",
            "X-Account: 42",
            "--name",
            "Ann Smith",
        )
        result = peer_result(caller)
    assert result["status"] == 200 and result["answered"]
    assert result["seconds"] < 6  # the app hung up when its handler returned
    assert "GOT KEYS 1234" in app.log
    x = loadWAVtoPCM(heard)
    spans = {f: tone_spans(x, f) for f in (420, 650, 1000)}
    assert [len(s) for s in spans.values()] == [1, 1, 1], spans
    for f, seconds in ((420, 0.5), (650, 0.3), (1000, 0.4)):
        assert abs(spans[f][0][1] - seconds) <= 0.03, (f, spans[f])
    assert spans[420][0][0] < spans[650][0][0] < spans[1000][0][0]
    assert "caller peer Ann Smith 42" in app.log


def test_demo_over_sip_with_voip_dial(tmp_path):
    heard = {}
    with serving("test.py") as app:
        for keys in ("ww1234", "ww9999"):
            out = tmp_path / f"{keys}.wav"
            proc = voip_dial(app.uri, "--keys", keys, "--speaker", str(out), "--hangup-after", "30")
            assert proc.returncode == 0, proc.stderr
            assert "answered" in proc.stderr
            heard[keys] = loadWAVtoPCM(out)
    correct = loadWAVtoPCM(ASSETS / "password_correct.wav")
    incorrect = loadWAVtoPCM(ASSETS / "password_incorrect.wav")
    # Piece by piece: a busy machine's jitter buffer may put a frame of filler in a prompt.
    for keys, right, wrong in (("ww1234", correct, incorrect), ("ww9999", incorrect, correct)):
        assert find_sound(heard[keys], right)[0] > 0.99 > find_sound(heard[keys], wrong)[0]
    # The whole prompt arrived: the app waited for it to drain before hanging up.
    assert app.log.count("hanging up") == 2


RECORD_APP = """
    from voip import runVoipClient

    async def handler(call):
        heard = await call.recordPCM(maxlen=8000)
        await call.playPCM(heard)

    runVoipClient(handler)
"""


def test_recording_matches_what_the_caller_sent(tmp_path):
    app_path = write_app(tmp_path, RECORD_APP)
    mic, heard = tmp_path / "mic.wav", tmp_path / "heard.wav"
    # A 700 Hz tone for the first 0.6 s, then 1100 Hz: the recording must keep both.
    savePCMtoWAV(np.concatenate([tone(700, 0.6, 0.4), tone(1100, 2, 0.4)]), mic)
    with serving(app_path) as app:
        proc = voip_dial(app.uri, "--mic", str(mic), "--speaker", str(heard), "--hangup-after", "6")
        assert proc.returncode == 0, proc.stderr
    x = loadWAVtoPCM(heard)
    s700, s1100 = tone_spans(x, 700), tone_spans(x, 1100)
    assert len(s700) == 1 and len(s1100) == 1
    # One second recorded from the answer: ~0.6 s of 700 Hz then ~0.4 s of 1100 Hz.
    assert abs(s700[0][1] - 0.6) < 0.08 and abs(s1100[0][1] - 0.4) < 0.08
    assert s700[0][0] + s700[0][1] <= s1100[0][0] + 0.02


def test_caller_hangup_cancels_the_handler_promptly(tmp_path):
    app_path = write_app(
        tmp_path,
        """
        import asyncio, time
        from voip import runVoipClient

        async def handler(call):
            try:
                await call.playTone(440, 30)
            except asyncio.CancelledError:
                call.log.info("CANCELLED at %.3f", time.time())
                raise

        runVoipClient(handler)
        """,
    )
    with serving(app_path) as app:
        result = peer_result(peer(app.uri, "--duration", "1.5"))
        hung_up_at = time.time()
        time.sleep(0.5)
    assert result["answered"] and 1.4 < result["seconds"] < 2.0
    line = next(ln for ln in app.log.splitlines() if "CANCELLED at" in ln)
    cancelled_at = float(line.rsplit(" ", 1)[1])
    assert cancelled_at - hung_up_at < 0.3  # the BYE is handled within a few frames


def test_fifth_concurrent_call_gets_486(tmp_path):
    app_path = tone_app(tmp_path, 440, 20)
    with serving(app_path) as app:
        held = peers(app.uri, 4, "--duration", "5")
        time.sleep(2.5)
        fifth = peer_result(peer(app.uri, "--duration", "1"))
        results = [peer_result(p) for p in held]
    assert fifth["status"] == 486 and not fifth["answered"]
    assert all(r["answered"] and r["status"] == 200 for r in results)
    assert "the most this process takes (486)" in app.log


def test_allow_list_refuses_others_with_403(tmp_path):
    app_path = write_app(
        tmp_path,
        """
        from voip import runVoipClient

        async def handler(call):
            call.log.info("HANDLER RAN")

        runVoipClient(handler)
        """,
    )
    with serving(app_path, "--allow", "192.0.2.0/24") as app:
        refused = peer_result(peer(app.uri, "--duration", "1"))
    assert refused["status"] == 403 and not refused["answered"]
    assert "HANDLER RAN" not in app.log and "not in the allow-list (403)" in app.log
    with serving(app_path, "--allow", "127.0.0.0/8") as app:
        allowed = peer_result(peer(app.uri, "--duration", "1"))
    assert allowed["answered"] and "HANDLER RAN" in app.log


def test_one_calls_exception_does_not_disturb_another(tmp_path):
    app_path = write_app(
        tmp_path,
        """
        from voip import runVoipClient

        async def handler(call):
            if call.caller_name == "bad":
                raise RuntimeError("this call's bug")
            await call.playTone(500, 2.0)

        runVoipClient(handler)
        """,
    )
    heard = tmp_path / "good.wav"
    with serving(app_path) as app:
        good = peer(app.uri, "--name", "good", "--record", str(heard), "--duration", "4")
        time.sleep(0.5)
        bad = peer_result(peer(app.uri, "--name", "bad", "--duration", "3"))
        good_result = peer_result(good)
    assert bad["answered"] and bad["seconds"] < 1.5  # its call ended at once
    assert "this call's bug" in app.log and "Traceback" in app.log
    assert good_result["answered"]
    spans = tone_spans(loadWAVtoPCM(heard), 500)
    assert len(spans) == 1 and abs(spans[0][1] - 2.0) < 0.05


def udp_ports_bound(first: int, last: int) -> list[int]:
    """UDP ports from ``first`` to ``last`` that some socket on this machine is bound to."""
    lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    ports = (int(line.split()[1].split(":")[1], 16) for line in lines)
    return sorted(p for p in ports if first <= p <= last)


def test_rtp_stays_within_its_port_range(tmp_path):
    app_path = tone_app(tmp_path, 440, 3)
    _, base = next_ports()
    with serving(app_path, "--rtp-ports", f"{base}-{base + 5}") as app:  # 3 calls' worth
        seen = []
        for _ in range(4):  # the 4th call wraps around to the first pair
            call = peer(app.uri, "--duration", "1")
            time.sleep(0.6)
            seen.append(udp_ports_bound(base, base + 20))
            assert peer_result(call)["answered"]
    assert seen == [[base, base + 1], [base + 2, base + 3], [base + 4, base + 5], [base, base + 1]]


def test_sigterm_with_calls_up_sends_bye_and_exits_0(tmp_path):
    app_path = tone_app(tmp_path, 440, 60)
    with serving(app_path, "--grace", "0.5") as app:
        calls = peers(app.uri, 4, "--duration", "30")
        time.sleep(2.5)
        t0 = time.monotonic()
        assert app.stop() == 0  # not killed by a signal: no abort, no core
        stopped_in = time.monotonic() - t0
        results = [peer_result(p) for p in calls]
    assert all(r["answered"] and r["seconds"] < 5 for r in results)  # BYE, not the 30 s
    assert stopped_in < 8
    assert "hanging up 4 calls" in app.log and "stopped" in app.log
    assert "Assertion" not in app.log


def test_dial_to_nobody_fails_cleanly(tmp_path):
    proc = voip_dial("sip:nobody@127.0.0.1:9;transport=tcp", "--hangup-after", "2", timeout=60)
    assert proc.returncode == 1
    assert "failed" in proc.stderr and "Traceback" not in proc.stderr


def test_dial_a_busy_app_reports_busy(tmp_path):
    app_path = tone_app(tmp_path, 440, 20)
    with serving(app_path, "--max-calls", "1") as app:
        first = peer(app.uri, "--duration", "4")
        time.sleep(1.5)
        proc = voip_dial(app.uri, "--hangup-after", "2")
        peer_result(first)
    assert proc.returncode == 1
    assert "busy (486" in proc.stderr


def test_handler_blocking_the_loop_does_not_break_other_calls_audio(tmp_path):
    app_path = write_app(
        tmp_path,
        """
        import time
        from voip import runVoipClient

        async def handler(call):
            if call.caller_name == "blocker":
                time.sleep(1.5)  # a bug: blocks the event loop
                return
            await call.playTone(500, 3.0)

        runVoipClient(handler)
        """,
    )
    heard = tmp_path / "good.wav"
    with serving(app_path) as app:
        good = peer(app.uri, "--name", "good", "--record", str(heard), "--duration", "5")
        time.sleep(1.0)
        peer_result(peer(app.uri, "--name", "blocker", "--duration", "4"))
        assert peer_result(good)["answered"]
    spans = tone_spans(loadWAVtoPCM(heard), 500)
    # One unbroken 3 s tone: the audio runs on PJSIP's clock, not on the event loop.
    assert len(spans) == 1 and abs(spans[0][1] - 3.0) < 0.05, spans


@pytest.mark.parametrize("inband", ["on", "auto"])
def test_inband_keys_reach_getdtmf(tmp_path, inband):
    """Keys sent as tones in the audio: detected by our own detector.

    With "auto" the detector only runs when RFC 4733 was not negotiated; voip dial
    offers it, so the app must not detect the tones (they stay audio).
    """
    app_path = write_app(tmp_path, TONES_APP)
    with serving(app_path, "--inband-dtmf", inband) as app:
        proc = voip_dial(app.uri, "--keys", "ww1#9*", "--dtmf", "inband", "--hangup-after", "6")
    assert proc.returncode == 0, proc.stderr
    if inband == "on":
        assert "GOT KEYS 1#9*" in app.log
    else:
        assert "GOT KEYS" not in app.log


def test_app_sends_keys_to_the_caller(tmp_path):
    app_path = write_app(
        tmp_path,
        """
        import asyncio
        from voip import runVoipClient

        async def handler(call):
            call.sendDTMF("12")
            await asyncio.sleep(0.6)
            call.sendDTMF("#", method="info")
            await asyncio.sleep(0.6)

        runVoipClient(handler)
        """,
    )
    with serving(app_path) as app:
        proc = voip_dial(app.uri, "--hangup-after", "5")
    assert proc.returncode == 0, proc.stderr
    received = [ln.rsplit("key ", 1)[1] for ln in proc.stderr.splitlines() if "] key " in ln]
    assert received == ["1", "2", "#"]


DIAL_SCRIPT = """
    import asyncio, sys
    import voip

    async def greet(call):
        await call.playTone(300, 0.5)

    async def main():
        for uri in sys.argv[1:]:
            result = await voip.dial(uri, greet, timeout=10)
            print("RESULT", result.state, result.status, flush=True)

    asyncio.run(main())
"""


def test_voip_dial_api_reports_each_outcome(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "dialer.py"
    script.write_text(textwrap.dedent(DIAL_SCRIPT))
    listener = tone_app(tmp_path, 440, 1.0)
    with serving(listener) as open_app, serving(listener, "--allow", "192.0.2.1") as closed_app:
        proc = subprocess.run(
            [
                sys.executable,
                str(script),
                open_app.uri,
                closed_app.uri,
                "sip:nobody@127.0.0.1:9;transport=tcp",
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
    results = [ln.split()[1:] for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert results[0] == ["answered", "200"]
    assert results[1] == ["rejected", "403"]
    assert results[2][0] == "failed"
    assert proc.returncode == 0, proc.stderr


def test_voip_dial_in_a_terminal_sends_typed_keys(tmp_path):
    import os
    import pty
    import subprocess
    import sys

    from .sip import next_ports

    app_path = write_app(tmp_path, TONES_APP)
    with serving(app_path) as app:
        port, rtp = next_ports()
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voip.cli",
                "dial",
                app.uri,
                "--no-audio",
                "--listen",
                f"127.0.0.1:{port}",
                "--rtp-ports",
                f"{rtp}-{rtp + 99}",
            ],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=ROOT,
        )
        os.close(slave)
        seen = read_pty(master, 2.5)
        os.write(master, b"4321")
        seen += read_pty(master, 2.5)
        proc.wait(timeout=20)
        os.close(master)
    assert "GOT KEYS 4321" in app.log
    assert b"keys: 4321" in seen  # the status line shows the keys sent
    assert proc.returncode == 0


def test_codec_preference_and_sip_message_log(tmp_path):
    """Only G722 (16 kHz) allowed: the engine still works at 8 kHz and the tone arrives
    at its frequency; --sip-log shows the SDP answer with G722 alone."""
    app_path = tone_app(tmp_path, 1200, 0.6)
    heard = tmp_path / "heard.wav"
    with serving(app_path, "--codecs", "G722", "--sip-log") as app:
        result = peer_result(peer(app.uri, "--record", str(heard), "--duration", "3"))
    assert result["answered"]
    answer = app.log.split("SIP/2.0 200 OK", 1)[1]
    media_line = next(ln for ln in answer.splitlines() if ln.startswith("m=audio"))
    payload_types = media_line.split()[3:]
    assert payload_types[0] == "9" and "0" not in payload_types  # G722, no PCMU
    assert "a=rtpmap:9 G722/8000" in answer  # (RFC 3551 keeps 8000 here for G722)
    # G.722's ADPCM adapts over its first ~100 ms: the decoded tone swells and can
    # dip below detection for one 20 ms frame near the start (seen in 1 run of 4).
    spans = tone_spans(loadWAVtoPCM(heard), 1200, bridge=0.02)
    # The caller's G722 stream may start a few frames late under load (seen: 50 ms).
    assert len(spans) == 1 and abs(spans[0][1] - 0.6) < 0.07, spans


def test_dial_from_a_handler_goes_out_through_the_server(tmp_path):
    callee = tone_app(tmp_path, 600, 1.5)
    bridge = tmp_path / "bridge.py"
    bridge.write_text(
        textwrap.dedent(
            """
            import os
            import voip
            from voip import runVoipClient

            async def relay(outgoing):
                heard = await outgoing.recordPCM(maxlen=8000)
                outgoing.log.info("HEARD %d samples", len(heard))

            async def handler(call):
                result = await voip.dial(os.environ["CALLEE"], relay, timeout=10)
                call.log.info("DIALED %s %d", result.state, result.status)

            runVoipClient(handler)
            """
        )
    )
    with serving(callee) as b:
        with serving(bridge, env={"CALLEE": b.uri}) as a:
            assert peer_result(peer(a.uri, "--duration", "6"))["answered"]
    assert "DIALED answered 200" in a.log
    assert "HEARD 8000 samples" in a.log
    # The outgoing call came from the server's own address and port.
    assert f"(127.0.0.1:{a.port}) answered" in b.log, b.log
    # Each side logs the call answered, and who ended it, once: the relay hung up the
    # call out (and then its own caller), so the callee heard its caller hang up.
    assert a.log.count(f"] call to {b.uri} answered") == 1, a.log
    assert a.log.count("] call ended (we hung up)") == 2, a.log
    assert b.log.count("] call ended (caller hung up)") == 1, b.log


def test_calls_failing_after_the_invite_are_logged_once_with_their_status(tmp_path):
    """An offer PJSIP refuses before we see it (a codec we do not take), and one whose
    media address is unusable, found only as we answer: 488 each, one line each, neither
    logged as answered; a good call after them is logged answered and ended, once."""
    app_path = write_app(
        tmp_path,
        """
        from voip import runVoipClient

        async def handler(call):
            call.log.info("HANDLER RAN")
            await call.playTone(440, 0.5)

        runVoipClient(handler)
        """,
    )
    with serving(app_path, "--codecs", "PCMA") as app:
        statuses, ports = [], []
        for sdp in (
            {"media": "m=audio 9 RTP/AVP 0 101"},  # PCMU only
            {"media": "m=audio 9 RTP/AVP 8 101", "conn": "IN IP4 999.1.1.1"},
        ):
            with udp_socket("127.0.0.1") as sock:
                sock.sendto(invite(app, sock, **sdp), ("127.0.0.1", app.port))
                statuses.append(final_status(sock)[0])
                ports.append(sock.getsockname()[1])
        good = peer_result(peer(app.uri, "--duration", "2"))
        time.sleep(0.5)  # the app's BYE is answered and its line logged
    assert statuses == [488, 488], app.log
    assert good["answered"] and app.log.count("HANDLER RAN") == 1, (good, app.log)
    lines = [ln for ln in app.log.splitlines() if "torture" in ln or "[c" in ln]
    refused = [ln.split(" voip.sip: ")[1] for ln in lines if "refused call from" in ln]
    assert refused == [
        f"refused call from sip:torture@127.0.0.1 (127.0.0.1:{ports[0]}): Not Acceptable Here (488)"
    ], app.log
    failed = [ln for ln in lines if " failed: " in ln]
    assert [ln.split(" voip.call: ")[1] for ln in failed] == [
        f"[c1] call from <sip:torture@127.0.0.1> (127.0.0.1:{ports[1]}) failed:"
        " 488 Unable to create media session"
    ], app.log
    answered = [ln for ln in lines if ln.endswith(" answered")]
    ended = [ln.split(" voip.call: ")[1] for ln in lines if "call ended" in ln]
    assert len(answered) == 1 and "[c2] call from " in answered[0], app.log
    assert ended == ["[c2] call ended (we hung up)"], app.log
