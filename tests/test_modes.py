"""The SIP backend's string settings as types (voip.backends.pjsip.modes)."""

from __future__ import annotations

import pytest

from voip.backends.pjsip.modes import INBAND_MODES, SRTP_MODES, inband_mode, srtp_mode
from voip.errors import InvalidArgumentError


def test_each_mode_is_taken_as_itself():
    assert [srtp_mode(m) for m in ("off", "optional", "mandatory")] == list(SRTP_MODES)
    assert [inband_mode(m) for m in ("auto", "on", "off")] == list(INBAND_MODES)


@pytest.mark.parametrize(
    ("read", "value", "message"),
    [
        (srtp_mode, "required", "srtp 'required': choose from off, optional, mandatory"),
        (srtp_mode, "OFF", "srtp 'OFF': choose from off, optional, mandatory"),
        (inband_mode, "yes", "inband_dtmf 'yes': choose from auto, on, off"),
        (inband_mode, "", "inband_dtmf '': choose from auto, on, off"),
    ],
)
def test_anything_else_is_refused_with_the_choices(read, value, message):
    with pytest.raises(InvalidArgumentError) as info:
        read(value)
    assert str(info.value) == message
