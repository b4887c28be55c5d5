"""In-band DTMF end to end: keys as tones in the audio of a call without RFC 4733.

SIPp (tests/peers/sipp_inband.xml) calls the app offering PCMU alone, so telephone-event
cannot be negotiated, and replays an RTP capture that the test writes with tests/pcap.py:
"159#" as µ-law dual tones after a second of silence. With ``--inband-dtmf auto`` (the
default) the app runs its own tone detector on such calls and its handler gets the keys;
with ``--inband-dtmf off`` the same audio gives it nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voip import loadWAVtoPCM
from voip.audio.inband import InbandDTMFDetector
from voip.audio.pcm import FRAME_SAMPLES, SAMPLE_RATE
from voip.audio.tones import dtmf_tones

from .helpers import write_app
from .pcap import mulaw_encode, read_rtp_pcap, write_mulaw_wav, write_rtp_pcap
from .sip import serving
from .sipp import PEERS, needs_sipp, run_sipp

SCENARIO = PEERS / "sipp_inband.xml"

KEYS = "159#"
LEVEL = 10 ** (-10 / 20)
"""Each tone's peak: -10 dBFS."""
LEAD, TAIL = 1.0, 0.6
"""Seconds of silence before the tones (the handler is waiting by then) and after them."""

APP = """
    import asyncio
    from voip import runVoipClient

    async def handler(call):
        try:
            keys = await asyncio.wait_for(call.getDTMF(n=4), 6)
        except asyncio.TimeoutError:
            call.log.info("NO KEYS IN 6 S")
            return
        call.log.info("GOT %s", keys)

    runVoipClient(handler)
"""


def key_audio() -> np.ndarray:
    """The keys as tones, 80 ms on and 80 ms off, between stretches of silence."""
    lead = np.zeros(int(LEAD * SAMPLE_RATE), dtype=np.float32)
    tail = np.zeros(int(TAIL * SAMPLE_RATE), dtype=np.float32)
    return np.concatenate([lead, dtmf_tones(KEYS, on=0.08, off=0.08, level=LEVEL), tail])


def write_key_pcap(path: Path) -> int:
    return write_rtp_pcap(path, mulaw_encode(key_audio()))


def detect(pcm: np.ndarray) -> str:
    det = InbandDTMFDetector()
    pcm = pcm.astype(np.float32)
    return "".join(
        k for i in range(0, pcm.size, FRAME_SAMPLES) for k in det.feed(pcm[i : i + FRAME_SAMPLES])
    )


def sdp_messages(log: str, first_line: str) -> list[str]:
    """The bodies of the SIP messages in the app's --sip-log output starting ``first_line``
    that carry SDP (from the message's start line to the end of its body)."""
    found = []
    for part in log.split(first_line)[1:]:
        lines = []
        for ln in part.splitlines():
            if ln.startswith("--end msg--") or " voip." in ln:
                break
            lines.append(ln.strip())
        body = "\n".join(lines)
        if "m=audio" in body:
            found.append(body)
    return found


# -- the capture ----------------------------------------------------------------------


def test_mulaw_encoder_agrees_with_the_wav_readers_decoder(tmp_path):
    """Every code decodes (voip.audio.wav) and encodes back to itself, but for 0x7F (-0,
    which encodes as +0, 0xFF); any sample lands within half a step of its decoded code."""
    codes = bytes(range(256))
    wav = tmp_path / "codes.wav"
    write_mulaw_wav(wav, codes)
    decoded = loadWAVtoPCM(wav)
    assert decoded.size == 256 and decoded[0xFF] == 0 and decoded[0x7F] == 0
    assert decoded[0x00] == pytest.approx(-32124 / 32768) and decoded[0x80] == -decoded[0x00]
    again = mulaw_encode(decoded)
    assert [i for i in range(256) if again[i] != i] == [0x7F]

    rng = np.random.default_rng(7)
    x = np.concatenate([np.linspace(-1, 1, 65537), rng.uniform(-0.05, 0.05, 10000)])
    wav = tmp_path / "sweep.wav"
    write_mulaw_wav(wav, mulaw_encode(x))
    y = loadWAVtoPCM(wav).astype(np.float64)
    # The encoder rounds to 16 bits, then the biased magnitude (16-bit magnitude + 0x84)
    # falls in segment s when below 0x100 << s, where codes are 2 ** (s + 3) apart and
    # decode to the middle of their step.
    linear = np.clip(np.round(x * 32768), -32635, 32635)
    step = 2.0 ** (np.floor(np.log2(np.abs(linear) + 0x84)) - 4)
    err = np.abs(linear - y * 32768)
    assert np.all(err <= step / 2), float(np.max(err / step))


def test_the_capture_is_well_formed_rtp_holding_the_keys(tmp_path):
    path = tmp_path / "inband.pcap"
    count = write_key_pcap(path)
    packets = read_rtp_pcap(path)  # checks lengths and IPv4 header checksums
    duration = LEAD + len(KEYS) * 0.16 + TAIL
    assert count == len(packets) == int(np.ceil(duration * SAMPLE_RATE / 160))
    assert all(p.payload_type == 0 and len(p.payload) == 160 for p in packets)
    assert [p.marker for p in packets] == [True] + [False] * (count - 1)
    assert len({p.ssrc for p in packets}) == 1
    assert np.all(np.diff([p.seq for p in packets]) == 1)
    assert np.all(np.diff([p.timestamp for p in packets]) == 160)
    assert np.allclose(np.diff([p.time for p in packets]), 0.020, atol=2e-6)
    # The audio decodes (as a µ-law WAV) to the keys, and the lead is digital silence.
    wav = tmp_path / "heard.wav"
    write_mulaw_wav(wav, b"".join(p.payload for p in packets))
    pcm = loadWAVtoPCM(wav)
    assert not np.any(pcm[: int(LEAD * SAMPLE_RATE)])
    peak = float(np.max(np.abs(pcm)))
    assert 1.7 * LEVEL < peak < 2.05 * LEVEL  # two tones of peak LEVEL each
    assert detect(pcm) == KEYS


# -- end to end -----------------------------------------------------------------------


@needs_sipp
def test_keys_sent_as_tones_reach_the_handler_when_rfc4733_is_not_negotiated(tmp_path):
    write_key_pcap(tmp_path / "inband.pcap")  # where the scenario looks for it: SIPp's cwd
    app_path = write_app(tmp_path, APP)
    with serving(app_path, "--sip-log") as app:
        run = run_sipp(SCENARIO, app, tmp_path, "-m", "1", timeout=45)
    assert run.returncode == 0, (run.output, app.log)
    assert run.log == ["AUDIO STARTED", "ENDED BY THE APP"], (run.log, app.log)
    assert f"GOT {KEYS}" in app.log, app.log
    assert app.log.count("] key ") == len(KEYS), app.log  # each press once
    assert "call ended (we hung up)" in app.log, app.log
    # The answer has PCMU alone: the keys can only have come from the tone detector.
    offer = sdp_messages(app.log, "INVITE sip:")
    answer = sdp_messages(app.log, "SIP/2.0 200 OK")
    assert len(offer) == 1 and len(answer) == 1, app.log
    for sdp in offer + answer:
        media = next(ln for ln in sdp.splitlines() if ln.startswith("m=audio"))
        assert media.split()[3:] == ["0"], sdp
        assert "telephone-event" not in sdp, sdp


@needs_sipp
def test_with_inband_detection_off_the_same_tones_give_no_keys(tmp_path):
    write_key_pcap(tmp_path / "inband.pcap")
    app_path = write_app(tmp_path, APP)
    with serving(app_path, "--inband-dtmf", "off", "--sip-log") as app:
        run = run_sipp(SCENARIO, app, tmp_path, "-m", "1", timeout=45)
    assert run.returncode == 0, (run.output, app.log)
    assert run.log == ["AUDIO STARTED", "ENDED BY THE APP"], (run.log, app.log)
    assert "NO KEYS IN 6 S" in app.log, app.log
    assert "GOT" not in app.log, app.log
    assert "] key " not in app.log, app.log
    answer = sdp_messages(app.log, "SIP/2.0 200 OK")
    assert len(answer) == 1 and "telephone-event" not in answer[0], app.log
