"""examples/intercom.py over SIP: an announcement reaches the lobby within 1 s of its end.

Three pjsua2 callers (tests/peers/pjsua_peer.py) call the example: two press 3 and wait
in the lobby, recording what they hear; the third presses 1 and speaks a sentence after
the beep, then stays silent. The recording ends ``SILENCE_TIMEOUT`` seconds after the
speech; each lobby caller must hear the announcement (found by its samples in what it
recorded, against the message the mailbox kept) starting less than 1 s after that.

Times come from the callers themselves: each peer reports the moment (``time.monotonic``,
shared by every process on the machine) its audio started, which is where its WAV to
play and its recording begin; where the speech ends in the one and where the
announcement starts in the other are then times on one clock. What the measure holds
besides the app (the detector's hangover, two jitter buffers, G.711 both ways) is part of
what a caller experiences, so it is counted against the app.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from voip import Mailbox, TTStoPCM, loadWAVtoPCM, savePCMtoWAV
from voip.audio.match import find_pcm, find_sound
from voip.audio.pcm import SAMPLE_RATE

from .helpers import ROOT
from .sip import peer, peer_result, serving

pytestmark = pytest.mark.timeout(180)

SPEECH = "Attention please. The car park closes at six tonight."
LEAD = 6.0
"""Seconds of silence the announcer sends before speaking: from its answer, the key 1 at
1 s, "Speak your announcement after the beep." and the beep take about 4."""
SILENCE_TIMEOUT = 2.0
"""The example's ``call.record(silence_timeout=...)``."""


def test_an_announcement_reaches_both_lobby_callers_within_a_second(tmp_path):
    speech = TTStoPCM(SPEECH)
    talk = tmp_path / "talk.wav"
    silence = np.zeros(int(LEAD * SAMPLE_RATE), np.float32)
    savePCMtoWAV(np.concatenate([silence, speech, silence]), talk)
    heard = [tmp_path / f"lobby{k}.wav" for k in range(2)]
    boxes = tmp_path / "intercom"
    script = ROOT / "examples" / "intercom.py"
    with serving(script, env={"INTERCOM_DIR": str(boxes)}) as app:
        procs = []
        for path in heard:  # in the lobby about 1 s after the answer
            keys = ("--dtmf", "3", "--dtmf-at", "0.5")
            procs.append(peer(app.uri, "--record", str(path), *keys, "--duration", "22"))
            time.sleep(0.3)  # callers apart (see tests/sip.py peers())
        procs.append(peer(app.uri, "--play", str(talk), "--dtmf", "1", "--duration", "18"))
        results = [peer_result(p) for p in procs]
    assert all(r["answered"] for r in results), results
    assert "announcement of" in app.log and "played to 2" in app.log, app.log

    (kept,) = Mailbox(boxes).messages("lobby")
    message = loadWAVtoPCM(kept.path)
    assert find_pcm(message, speech[8000:16000])[0] > 0.9  # the announcer's words
    speech_end = results[2]["media_at"] + LEAD + len(speech) / SAMPLE_RATE
    for path, result in zip(heard, results[:2], strict=True):
        score, start, _ = find_sound(loadWAVtoPCM(path), message)
        assert score > 0.9, (path.name, score)
        late = result["media_at"] + start / SAMPLE_RATE - (speech_end + SILENCE_TIMEOUT)
        print(f"{path.name}: the announcement heard {late:.3f} s after the recording ended")
        assert 0 < late < 1.0, late
