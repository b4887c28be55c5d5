"""voip: write phone trees and other voice apps as ``async def handler(call)``.

Run the script and a simulated call starts at once (microphone, speaker, keyboard);
deploy the same script on a server to answer real SIP calls.
"""

import logging

from .apps import one_at_a_time
from .audio.pcm import FRAME_SAMPLES, SAMPLE_RATE
from .audio.wav import loadWAVtoPCM, normalizePCM, savePCMtoWAV
from .call import Call, CallInfo, Playback, RecordController, Recording
from .connecting import Connected
from .dialling import DialResult
from .errors import (
    AudioDeviceError,
    CallEndedError,
    InvalidArgumentError,
    RoomFullError,
    TTSError,
    VoipError,
    WAVError,
)
from .gather import Gathered
from .mailbox import Mailbox, Message
from .menu import Menu
from .outgoing import dial
from .queues import Dequeued, Queue, Taken
from .record import Recorded
from .rooms import Room
from .runner import runVoipClient
from .transfer import Transferred
from .tts import TTStoPCM, TTStoPCMAsync

__all__ = [
    "runVoipClient",
    "dial",
    "DialResult",
    "Menu",
    "Room",
    "Gathered",
    "Recorded",
    "Mailbox",
    "Message",
    "Transferred",
    "Queue",
    "Dequeued",
    "Taken",
    "Connected",
    "Call",
    "CallInfo",
    "Playback",
    "Recording",
    "RecordController",
    "loadWAVtoPCM",
    "savePCMtoWAV",
    "normalizePCM",
    "one_at_a_time",
    "TTStoPCM",
    "TTStoPCMAsync",
    "SAMPLE_RATE",
    "FRAME_SAMPLES",
    "VoipError",
    "InvalidArgumentError",
    "WAVError",
    "TTSError",
    "CallEndedError",
    "AudioDeviceError",
    "RoomFullError",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
