"""Registered mode: the app registers with a kamailio registrar and answers the calls it routes.

Each test runs its own kamailio on loopback (tests/kamailio.py, config from
tests/peers/kamailio.cfg): subscriber 1001 (password ``secret``) is the app's account,
1002 a caller's. The caller is the plain pjsua2 peer, dialling the AOR at kamailio.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from voip import loadWAVtoPCM

from .helpers import tone_spans
from .kamailio import Kamailio, require_kamailio
from .sip import App, peer, peer_result, serving

USERS = {"1001": "secret", "1002": "caller-secret"}

TONES_APP = """
    from voip import runVoipClient

    async def handler(call):
        call.log.info("HANDLER RAN for %s", call.caller)
        await call.playTone(420, 0.5)
        await call.playTone(650, 0.3)

    runVoipClient(handler)
"""


@pytest.fixture
def kamailio(tmp_path: Path):
    require_kamailio()
    k = Kamailio(tmp_path / "kamailio", USERS)
    k.start()
    try:
        yield k
    finally:
        k.stop()


@pytest.fixture
def app_script(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent(TONES_APP))
    return path


def wait_for_log(app: App, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while text not in app.log:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def call_through(kamailio: Kamailio, heard: Path) -> dict:
    """Call 1001 at kamailio with the plain pjsua2 peer; check what the caller heard."""
    result = peer_result(peer(kamailio.aor("1001"), "--record", str(heard), "--duration", "5"))
    assert result["status"] == 200 and result["answered"], result
    assert result["seconds"] < 4  # the app hung up when its handler returned
    x = loadWAVtoPCM(heard)
    spans = {f: tone_spans(x, f) for f in (420, 650)}
    assert [len(s) for s in spans.values()] == [1, 1], spans
    # The handler starts on the caller's ACK, so the greeting arrives whole (over TCP too:
    # Nagle is off on our TCP transport).
    assert abs(spans[420][0][1] - 0.5) <= 0.03 and abs(spans[650][0][1] - 0.3) <= 0.03, spans
    assert spans[420][0][0] < spans[650][0][0]
    return result


def test_registers_and_answers_calls_routed_by_kamailio(tmp_path, kamailio, app_script):
    args = ("--register", kamailio.aor("1001"), "--password", "secret")
    with serving(app_script, *args) as app:
        contacts = kamailio.wait_for_contact("1001", 10)
        # The contact is the app's listen address (loopback), where kamailio sends calls.
        assert len(contacts) == 1 and contacts[0].startswith(f"sip:1001@127.0.0.1:{app.port}")
        assert wait_for_log(app, f"registered as {kamailio.aor('1001')} (expires 300 s)", 5)
        call_through(kamailio, tmp_path / "heard.wav")
        assert wait_for_log(app, "call ended", 5)
    assert "HANDLER RAN for peer" in app.log
    assert f"TEST relay INVITE to sip:1001@127.0.0.1:{app.port}" in kamailio.log
    # On SIGTERM the app removed its binding.
    assert "unregistered" in app.log and kamailio.contacts("1001") == []
    assert "Traceback" not in app.log


def test_wrong_password_is_reported_without_hammering(tmp_path, kamailio, app_script):
    args = ("--register", kamailio.aor("1001"), "--password", "not-the-password")
    with serving(app_script, *args) as app:
        assert wait_for_log(app, "rejected the credentials", 5), app.log
        time.sleep(5)
        registers = kamailio.register_count()
        assert app.proc.poll() is None  # still running
        assert kamailio.contacts("1001") == []
        # Unregistered, it still answers direct calls.
        direct = peer_result(peer(app.uri, "--duration", "2"))
        assert direct["answered"]
    # One REGISTER, its challenge answered once, then nothing until the retry (60 s).
    assert 1 <= registers <= 3, kamailio.current_log
    error = next(ln for ln in app.log.splitlines() if "rejected the credentials" in ln)
    assert " ERROR " in error and "sip:1001@127.0.0.1" in error and "401" in error
    assert "--password" in error
    assert "registered as" not in app.log and "Traceback" not in app.log


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_registers_again_after_kamailio_restarts(tmp_path, kamailio, app_script, transport):
    aor = kamailio.aor("1001") + (";transport=tcp" if transport == "tcp" else "")
    args = ("--register", aor, "--password", "secret")
    with serving(app_script, *args, "--register-expiry", "10", "--register-retry", "2") as app:
        assert kamailio.wait_for_contact("1001", 10)
        call_through(kamailio, tmp_path / "before.wav")
        kamailio.stop()
        time.sleep(4)
        kamailio.start()  # same config, empty location table (usrloc keeps it in memory)
        restarted = time.monotonic()
        assert kamailio.wait_for_contact("1001", 12), app.log
        took = time.monotonic() - restarted
        call_through(kamailio, tmp_path / "after.wav")
    if transport == "tcp":
        # The dropped connection is noticed at once; PJSIP retries every 2 s (failing,
        # kamailio is down) and registers at the first retry after the restart.
        assert took < 2 + 1.5, took
        assert "lost the registration of" in app.log and "retrying every 2 s" in app.log
        assert app.log.count("registered as") == 2
    else:
        # UDP sees nothing go: the next refresh (every 5 s with a 10 s expiry), or its
        # retransmission (every 4 s at most), reaches the new kamailio and registers.
        assert took < 9, took
    assert kamailio.register_count(all_runs=True) < 20  # no storm while it was down
    assert app.log.count("HANDLER RAN") == 2 and "Traceback" not in app.log
