"""What a scripted caller does, for the simulator's caller and the ``voip dial`` softphone.

Both play a WAV as the caller's voice (or the microphone), keep what the caller hears
(for the speaker, or a WAV), press keys on a schedule and may hang up after a while: one
:class:`CallerScript`, with one set of flags (:func:`voip.settings.add_arguments`, roles
``sim`` and ``dialler``). The simulator runs it on its audio clock; the softphone on the
outgoing call's own methods.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal, get_args

from .audio.pcm import PCM
from .audio.wav import loadWAVtoPCM
from .dtmf import KEY_SCRIPT_STEP, KEY_SCRIPT_WAIT, parse_key_script
from .settings import boolean, choice, number, setting, text

__all__ = ["CallerScript", "DtmfMethod"]

DtmfMethod = Literal["rfc4733", "info", "inband"]
"""How keys are sent: RFC 4733 telephone events, SIP INFO, or tones in the audio."""

_script = functools.partial(setting, roles=("sim", "dialler"), env=False, toml=False)
"""A caller-script setting: the simulator's and the dialler's, on the command line only."""


def _keys(value: Any) -> str:
    script = text(value)
    parse_key_script(script)  # its error says which character is not a key
    return script


def _optional_text(value: Any) -> str | None:
    return text(value) or None


@dataclass
class CallerScript:
    """What the caller sends and keeps (command line only: no environment or TOML)."""

    mic: str | None = _script(
        None,
        help="a WAV (any PCM format) played as the caller's voice from the moment the call"
        " is answered, instead of the microphone",
        parse=_optional_text,
        metavar="WAV",
        show_default="",
    )
    """A WAV file played as the caller's voice, from the answer, instead of the microphone."""
    speaker: str | None = _script(
        None,
        help="write what the caller hears to this WAV (16-bit, 8 kHz, mono, from the answer)",
        parse=_optional_text,
        metavar="WAV",
        show_default="",
    )
    """A WAV file that receives what the caller hears (16-bit, 8 kHz, mono)."""
    keys: str = _script(
        "",
        help=f"keys the caller presses from the answer, each taking {KEY_SCRIPT_STEP:g} s;"
        f" 'w' waits {KEY_SCRIPT_WAIT:g} s, e.g. ww1234#",
        parse=_keys,
        metavar="KEYS",
        show_default="",
    )
    """Keys the caller presses, ``w`` waiting 0.5 s: e.g. ``"ww1234"``."""
    audio: bool = _script(
        True,
        help="open no sound device (headless runs)",
        parse=boolean,
        kind="switch",
        negative="--no-audio",
    )
    """Use the sound card (False: ``--no-audio``, never open a device)."""
    hangup_after: float | None = _script(
        None,
        help="the caller hangs up this many seconds after the answer",
        parse=number(0, "seconds"),
        metavar="SECONDS",
        show_default="never",
    )
    """Seconds after which the caller hangs up (None: never)."""
    dtmf: DtmfMethod = _script(
        "rfc4733",
        help="how keys are sent: rfc4733, info (SIP INFO) or inband (tones)",
        parse=choice(*get_args(DtmfMethod)),
        metavar="METHOD",
        roles=("dialler",),
    )
    """How the softphone sends keys (the simulator's caller presses them directly)."""
    interactive: bool | None = None
    """Keyboard and status line; None: when stdin and stderr are terminals."""

    def mic_pcm(self) -> PCM | None:
        """The ``mic`` WAV as 8 kHz PCM (None without one); raises WAVError."""
        return loadWAVtoPCM(self.mic) if self.mic else None

    def presses(self) -> list[tuple[float, str]]:
        """When each key is pressed, in seconds from the answer."""
        return parse_key_script(self.keys)
