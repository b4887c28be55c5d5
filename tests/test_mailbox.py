"""voip.Mailbox on real files and a real SQLite index: storing, listing, restarts, two
processes writing at once, and a recording process killed with SIGKILL.

(The voice mail example's calls, through the test kit, are tests/test_examples.py's.)
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from voip import InvalidArgumentError, Mailbox, Message, Recorded, loadWAVtoPCM, savePCMtoWAV
from voip.audio.wav import WAVWriter
from voip.tts import TTStoPCM

from .helpers import ROOT, dominant_freq, find_pcm, popen, sigkill, tone, wait_until

pytestmark = pytest.mark.timeout(120)


def freq_of(message: Message) -> float:
    return dominant_freq(loadWAVtoPCM(message.path))


def test_save_list_mark_heard_and_delete(tmp_path):
    mailbox = Mailbox(tmp_path)
    before = datetime.now(UTC)
    first = mailbox.save("100", tone(400, 1.0), caller="5551234")
    second = mailbox.save("100", Recorded(tone(600, 2.0), "silence"), caller="5559876")
    other = mailbox.save("101", tone(800, 0.5))
    assert first.path.parent == tmp_path / "100" and first.path.suffix == ".wav"
    assert (first.box, first.caller, first.seconds, first.heard) == ("100", "5551234", 1.0, False)
    assert before - timedelta(seconds=1) < first.received <= second.received
    assert second.received <= datetime.now(UTC)
    assert freq_of(first) == pytest.approx(400, abs=10)
    assert freq_of(second) == pytest.approx(600, abs=10)  # a Recorded: its pcm

    assert mailbox.messages("100") == [first, second]  # oldest first
    assert mailbox.messages("101") == [other] and mailbox.messages("102") == []

    heard = mailbox.mark_heard(first)
    assert heard.heard and heard.id == first.id
    # Not heard yet come first, then the heard ones.
    assert mailbox.messages("100") == [second, heard]
    assert mailbox.messages("100", unheard=True) == [second]

    mailbox.delete(second)
    assert not second.path.exists()
    assert mailbox.messages("100") == [heard]
    mailbox.delete(second)  # again: nothing to do
    assert mailbox.messages("100") == [heard]
    mailbox.close()
    mailbox.close()


def test_messages_survive_a_restart(tmp_path):
    with Mailbox(tmp_path) as mailbox:
        kept = mailbox.mark_heard(mailbox.save("100", tone(400, 1.0), caller="5551234"))
        new = mailbox.save("100", tone(600, 1.5), caller="5559876")
        gone = mailbox.save("100", tone(800, 1.0))
        mailbox.delete(gone)
    with pytest.raises(InvalidArgumentError, match="is closed"):
        mailbox.messages("100")

    again = Mailbox(tmp_path)
    assert again.messages("100") == [new, kept]
    assert [freq_of(m) for m in again.messages("100")] == pytest.approx([600, 400], abs=10)
    later = again.save("100", tone(1000, 1.0))
    assert later.id > gone.id  # a deleted message's number is never given again
    again.close()


def test_a_recording_started_and_finished(tmp_path):
    mailbox = Mailbox(tmp_path)
    path = mailbox.start("100", caller="5551234")
    assert path.parent == tmp_path / "100" and path.exists()
    assert mailbox.messages("100") == []  # being recorded: not a message yet
    with WAVWriter(path) as writer:  # what call.record(path=path) does
        writer.write(tone(500, 1.5))
    message = mailbox.finish(path)
    assert message is not None and message.path == path
    assert (message.caller, message.seconds, message.heard) == ("5551234", 1.5, False)
    assert mailbox.messages("100") == [message]
    with pytest.raises(InvalidArgumentError, match="not a recording this Mailbox started"):
        mailbox.finish(path)  # once only


def test_a_recording_of_nothing_leaves_no_message(tmp_path):
    mailbox = Mailbox(tmp_path)
    path = mailbox.start("100")
    savePCMtoWAV(np.zeros(0, dtype=np.float32), path)  # the caller hung up at the beep
    assert mailbox.finish(path) is None
    assert not path.exists() and mailbox.messages("100") == []


def test_close_completes_the_recordings_left_open(tmp_path):
    mailbox = Mailbox(tmp_path)
    path = mailbox.start("100", caller="5551234")
    savePCMtoWAV(tone(700, 1.0), path)
    mailbox.close()
    (message,) = Mailbox(tmp_path).messages("100")
    assert (message.path, message.seconds) == (path, 1.0)


def test_save_refuses_an_empty_recording(tmp_path):
    with pytest.raises(InvalidArgumentError, match="the recording is empty"):
        Mailbox(tmp_path).save("100", Recorded(np.zeros(0, dtype=np.float32), "hangup"))
    assert list((tmp_path / "100").iterdir()) == []


@pytest.mark.parametrize("box", ["", "a/b", "..", ".hidden", "a\\b", "x" * 65, "1 0", 100])
def test_a_bad_box_name_says_what_a_box_name_is(tmp_path, box):
    mailbox = Mailbox(tmp_path)
    with pytest.raises(InvalidArgumentError, match="a box name is 1 to 64 letters, digits"):
        mailbox.save(box, tone(400, 1.0))
    with pytest.raises(InvalidArgumentError, match="a box name"):
        mailbox.messages(box)
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []  # no box made


def test_bad_arguments_say_what_is_wrong(tmp_path):
    mailbox = Mailbox(tmp_path)
    with pytest.raises(InvalidArgumentError, match="caller is a string"):
        mailbox.save("100", tone(400, 1.0), caller=5551234)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="expected a Message"):
        mailbox.delete(1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="cannot create the mailbox directory"):
        Mailbox(tmp_path / "index.sqlite3" / "inside")


def test_a_message_whose_file_is_gone_is_skipped_with_a_warning(tmp_path, caplog):
    mailbox = Mailbox(tmp_path)
    lost = mailbox.save("100", tone(400, 1.0))
    kept = mailbox.save("100", tone(600, 1.0))
    lost.path.unlink()
    with caplog.at_level(logging.WARNING, logger="voip.mailbox"):
        assert mailbox.messages("100") == [kept]
    assert f"the file of message {lost.id}" in caplog.text and "is missing" in caplog.text
    mailbox.delete(lost)  # and it can be removed from the index
    caplog.clear()
    assert mailbox.messages("100") == [kept] and caplog.text == ""


# -- several processes ---------------------------------------------------------------------

WRITER = """
import sys, time
import numpy as np
from voip import Mailbox

directory, name, freq, go = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
pcm = (0.5 * np.sin(2 * np.pi * freq * np.arange(4000) / 8000)).astype(np.float32)
time.sleep(max(0.0, go - time.time()))
started = time.time()
mailbox = Mailbox(directory)  # the first open of the directory races too
for i in range(20):
    mailbox.save("100", pcm, caller=f"{name}-{i}")
mailbox.close()
print(started, time.time())
"""


def test_two_processes_save_at_once(tmp_path):
    go = time.time() + 1.5  # both have imported voip by then
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), name, str(freq), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, freq in [("a", 400), ("b", 600)]
    ]
    spans = []
    for writer in writers:
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        assert "locked" not in err
        spans.append([float(t) for t in out.split()])
    (a_start, a_end), (b_start, b_end) = spans
    assert max(a_start, b_start) < min(a_end, b_end), "the two did not write at once"

    messages = Mailbox(tmp_path).messages("100")
    assert sorted(m.caller for m in messages) == sorted(
        f"{name}-{i}" for name in "ab" for i in range(20)
    )
    assert len({m.id for m in messages}) == len({m.path for m in messages}) == 40
    for message in messages:
        assert message.seconds == 0.5
        expected = 400 if message.caller.startswith("a") else 600
        assert freq_of(message) == pytest.approx(expected, abs=10)


STARTS_AND_DIES = """
import os, sys
from voip import Mailbox

Mailbox(sys.argv[1]).start("100", caller="5551234")
os._exit(1)  # before call.record wrote anything
"""


def test_a_recording_that_never_began_is_dropped_after_its_process_died(tmp_path):
    subprocess.run([sys.executable, "-c", STARTS_AND_DIES, str(tmp_path)], cwd=ROOT, check=False)
    (left,) = (tmp_path / "100").iterdir()  # indexed, and its file made
    assert left.stat().st_size == 0
    assert Mailbox(tmp_path).messages("100") == []
    assert not left.exists()


def test_a_message_cut_by_sigkill_is_kept_up_to_its_last_second(tmp_path, caplog):
    """examples/voicemail.py in the simulator, killed 2 s into a caller's message: the
    message is listed by the next Mailbox with what was said up to then."""
    mic = tmp_path / "voice.wav"
    voice = np.tile(TTStoPCM("Please call me back about my order."), 8)
    savePCMtoWAV(voice, mic)
    boxes = tmp_path / "voicemail"
    with popen(
        [sys.executable, "examples/voicemail.py", "--no-audio", "--mic", str(mic)]
        + ["--keys", "w100#", "5551234"],
        cwd=ROOT,
        env={**os.environ, "VOICEMAIL": str(boxes)},
        stderr=subprocess.DEVNULL,
    ) as proc:

        def recorded() -> float:
            """Seconds of audio in the box's one WAV file so far."""
            wavs = list((boxes / "100").glob("*.wav")) if (boxes / "100").exists() else []
            return max(0, wavs[0].stat().st_size - 44) / 16000 if wavs else 0.0

        wait_until(proc, lambda: recorded() >= 1.0, timeout=60)
        assert Mailbox(boxes).messages("100") == []  # being recorded: not listed yet
        wait_until(proc, lambda: recorded() >= 2.0)
        sigkill(proc)

    with caplog.at_level(logging.WARNING, logger="voip.mailbox"):
        (message,) = Mailbox(boxes).messages("100")
    assert "was cut off" in caplog.text
    assert message.caller == "5551234" and not message.heard
    assert 2.0 <= message.seconds <= 2.6  # all but what came after the last write
    kept = loadWAVtoPCM(message.path)
    assert len(kept) == message.seconds * 8000
    assert find_pcm(voice, kept[:8000])[0] > 0.99  # the caller's voice, as sent
    assert find_pcm(voice, kept[-8000:])[0] > 0.99  # to the end of what was kept
    assert Mailbox(boxes).messages("100") == [message]  # completed once, for good
