"""The SIP backend's string settings as types: the values each may take, and a check.

Options arrive as strings (flags, TOML, environment); :func:`srtp_mode` and
:func:`inband_mode` turn a validated string into its type for the code that reads it.
"""

from __future__ import annotations

from typing import Literal, TypeVar, get_args

from ...errors import InvalidArgumentError

__all__ = ["INBAND_MODES", "SRTP_MODES", "InbandMode", "SrtpMode", "inband_mode", "srtp_mode"]

SrtpMode = Literal["off", "optional", "mandatory"]
"""SRTP for the audio: plain RTP only; SRTP when the other side offers or accepts it;
SRTP or no call."""
InbandMode = Literal["auto", "on", "off"]
"""In-band DTMF detection: when RFC 4733 is not negotiated; always; never."""

SRTP_MODES: tuple[SrtpMode, ...] = get_args(SrtpMode)
INBAND_MODES: tuple[InbandMode, ...] = get_args(InbandMode)

_Mode = TypeVar("_Mode", bound=str)


def srtp_mode(value: str) -> SrtpMode:
    """``value`` as an :data:`SrtpMode`; :class:`InvalidArgumentError` if it is none."""
    return _choose("srtp", value, SRTP_MODES)


def inband_mode(value: str) -> InbandMode:
    """``value`` as an :data:`InbandMode`; :class:`InvalidArgumentError` if it is none."""
    return _choose("inband_dtmf", value, INBAND_MODES)


def _choose(setting: str, value: str, modes: tuple[_Mode, ...]) -> _Mode:
    for mode in modes:
        if value == mode:
            return mode
    raise InvalidArgumentError(f"{setting} {value!r}: choose from {', '.join(modes)}")
