"""SIPp, the SIP load generator, against our apps: concurrent calls and RFC 4733 keys.

Scenarios are in tests/peers/sipp_*.xml; tests/sipp.py runs them and reads the results.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from voip import loadWAVtoPCM

from .helpers import frame_freqs, write_app
from .sip import peer, peer_result, serving
from .sipp import PEERS, needs_sipp, run_sipp

PCAPS = Path("/usr/share/sip-tester")
"""RFC 4733 captures shipped with SIPp (Debian's sip-tester): dtmf_2833_<key>.pcap."""

pytestmark = needs_sipp


def test_five_simultaneous_calls_four_answered_the_fifth_busy(tmp_path):
    app_path = write_app(
        tmp_path,
        """
        from voip import runVoipClient

        async def handler(call):
            await call.playTone(440, 6)

        runVoipClient(handler)
        """,
    )
    heard = tmp_path / "after.wav"
    with serving(app_path) as app:
        # 5 calls at 5 per second, all held at once: each answered call lasts the 6 s tone.
        run = run_sipp(
            PEERS / "sipp_busy.xml", app, tmp_path, "-m", "5", "-l", "5", "-r", "5", "-rp", "1s"
        )
        # The app is still serving: a plain caller hears its tone.
        after = peer_result(peer(app.uri, "--record", str(heard), "--duration", "2"))
    assert run.returncode == 0, run.output
    assert run.calls("ANSWERED") == [1, 2, 3, 4], (run.log, app.log)
    assert run.calls("BUSY") == [5], (run.log, app.log)
    # Every answered call was hung up by the app once its handler returned.
    assert run.calls("ENDED") == [1, 2, 3, 4], (run.log, app.log)
    wanted = {"OutgoingCall(C)": "5", "SuccessfulCall(C)": "5", "FailedCall(C)": "0"}
    assert {k: run.stats.get(k) for k in wanted} == wanted, run.stats
    assert app.log.count(") answered") == 5, app.log  # 4 from SIPp, then the plain caller
    assert app.log.count("(486)") == 1, app.log

    assert after["status"] == 200 and after["answered"], (after, app.log)
    freqs = [f for f in frame_freqs(loadWAVtoPCM(heard)) if f is not None]
    near = sum(abs(f - 440) < 10 for f in freqs)
    # 1.5 s of the 2 s call at least; a frame or two at the edges may be off.
    assert near > 75 and near >= 0.95 * len(freqs), freqs


KEYS_APP = """
    import os
    from voip import runVoipClient

    async def handler(call):
        call.log.info("GOT %s", await call.getDTMF(n=int(os.environ["KEYS"])))

    runVoipClient(handler)
"""


def capture(key: str) -> Path:
    """SIPp's capture of ``key`` pressed once."""
    name = {"*": "star", "#": "pound"}.get(key, key)
    return PCAPS / f"dtmf_2833_{name}.pcap"


def keys_scenario(keys: str, workdir: Path) -> Path:
    """tests/peers/sipp_dtmf.xml replaying ``keys``, one capture each, 400 ms apart.

    No pause after the last one: the app may hang up as soon as it has the keys, and a BYE
    arriving during a <pause> would be unexpected.
    """
    play = '\n  <pause milliseconds="400"/>\n  '.join(
        f'<nop><action><exec play_pcap_audio="{capture(k)}"/></action></nop>' for k in keys
    )
    template = (PEERS / "sipp_dtmf.xml").read_text()
    assert "<!-- @PLAY@ -->" in template
    path = workdir / f"keys_{len(keys)}.xml"
    path.write_text(template.replace("<!-- @PLAY@ -->", play))
    return path


def test_each_key_replayed_from_sipps_captures_arrives(tmp_path):
    keys = "0123456789*#"
    if not all(capture(k).exists() for k in keys):
        pytest.skip(f"SIPp's RFC 4733 captures are not in {PCAPS}")
    app_path = write_app(tmp_path, KEYS_APP)
    with serving(app_path, env={"KEYS": "1"}) as app:
        for k in keys:
            run = run_sipp(keys_scenario(k, tmp_path), app, tmp_path, "-m", "1", timeout=20)
            assert run.returncode == 0, (k, run.output, app.log)
            assert run.log == ["KEYS SENT", "ENDED BY THE APP"], run.log
    got = [ln.rsplit(" ", 1)[1] for ln in app.log.splitlines() if " GOT " in ln]
    assert got == list(keys), app.log
    assert app.log.count("call ended (we hung up)") == len(keys), app.log


def test_a_code_replayed_from_sipps_captures_arrives_whole(tmp_path):
    if not all(capture(k).exists() for k in "1234"):
        pytest.skip(f"SIPp's RFC 4733 captures are not in {PCAPS}")
    app_path = write_app(tmp_path, KEYS_APP)
    with serving(app_path, env={"KEYS": "4"}) as app:
        run = run_sipp(keys_scenario("1234", tmp_path), app, tmp_path, "-m", "1", timeout=20)
    assert run.returncode == 0, (run.output, app.log)
    # Each capture ends its event with the end packet three times: still one key each.
    assert "GOT 1234" in app.log, app.log
    assert app.log.count("] key ") == 4, app.log
