"""The test kit: test a handler in pytest, in-process, on virtual time.

::

    from voip.testing import dial

    async def test_sales_path():
        async with dial(handler, caller="5551234") as phone:
            await phone.heard_say("For sales press 1")
            await phone.press("1")
            await phone.heard_say("Connecting you to sales")
            await phone.hung_up()
        assert phone.said[-1] == "Connecting you to sales"

:func:`dial` calls a handler in this process (:func:`app` for several callers at once);
:func:`dial_sip` calls a deployed app over SIP, in real time, with the same
:class:`Phone`; :meth:`RunningApp.callee` is the far side of the app's own calls
(``call.connect``, ``voip.dial``). The pytest plugin (:mod:`voip.testing.plugin`,
loaded by pytest on its own) keeps the heard audio of a failed test and offers fixtures.
Virtual time needs ``looptime``: ``pip install 'voip[testing]'``.
"""

from ..events import (
    CallEvent,
    DtmfSent,
    HungUp,
    JoinedRoom,
    LeftRoom,
    PlaybackEnded,
    RecordingStarted,
    RecordingStopped,
    Said,
    SoundPlayed,
    TonePlayed,
)
from .callee import Attempt, Callee
from .local import RunningApp, app, dial
from .phone import DEFAULT_TIMEOUT, HeardTimeout, Phone
from .sip import dial_sip

__all__ = [
    "dial",
    "app",
    "dial_sip",
    "Phone",
    "RunningApp",
    "Callee",
    "Attempt",
    "HeardTimeout",
    "DEFAULT_TIMEOUT",
    "CallEvent",
    "Said",
    "TonePlayed",
    "SoundPlayed",
    "DtmfSent",
    "PlaybackEnded",
    "RecordingStarted",
    "RecordingStopped",
    "HungUp",
    "JoinedRoom",
    "LeftRoom",
]
