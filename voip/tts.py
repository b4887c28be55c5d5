"""Text to speech with libespeak-ng, in process.

:func:`TTStoPCM` turns text into telephone-band PCM (8000 Hz mono float32). It drives the
libespeak-ng shared library shipped in the ``espeakng-loader`` wheel through :mod:`ctypes`,
so no system espeak package or subprocess is needed. :func:`TTStoPCMAsync` is the same
for coroutines, without blocking the event loop.

Options use the espeak command line syntax, either as separate items (``["-s", "150"]``)
or compact (``["-s150"]``):

- ``-v VOICE``: a language code such as ``en`` (the default), ``en-us``, ``de`` or ``fr``,
  optionally with a variant (``en-us+f3``).
- ``-s WPM``: speed in words per minute, 80-450 (default 175).
- ``-p PITCH``: base pitch, 0-99 (default 50).
- ``-a AMPLITUDE``: volume, 0-200 (default 100).
- ``-g GAP``: extra pause between words in units of 10 ms at the default speed, 0-500
  (default 0).

Results are cached (the last 256 distinct text and option combinations), so playing the
same prompt again costs microseconds. Every call returns a fresh copy that the caller may
modify freely.

libespeak-ng carries a little state from one utterance to the next (the phase of its
natural pitch flutter), so the same text synthesised again after other text is not sample
for sample identical: it can be up to about 1% longer or shorter, and sounds the same.
Within a process the cache hides this; a script that synthesises the same texts in the
same order from a fresh process (such as ``assets/make_assets.py``) gets identical samples
every time.
"""

from __future__ import annotations

import asyncio
import ctypes
import difflib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .audio.pcm import PCM, SAMPLE_RATE, as_pcm, resample
from .errors import InvalidArgumentError, TTSError

__all__ = ["TTStoPCM", "TTStoPCMAsync"]

logger = logging.getLogger(__name__)

# speak_lib.h constants (espeak-ng API revision 12).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # without it a missing data folder calls exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7

_CACHE_SIZE = 256

_SUPPORTED = (
    "supported options: -v VOICE (language code such as en, en-us, de, fr; default en), "
    "-s WPM (speed, 80-450, default 175), -p PITCH (0-99, default 50), "
    "-a AMPLITUDE (0-200, default 100), -g GAP (pause between words in 10 ms units, "
    "0-500, default 0); write them as ['-s', '150'] or ['-s150']"
)

# Numeric options: flag -> (field of _Settings, lowest, highest).
_NUMERIC = {
    "-s": ("rate", 80, 450),
    "-p": ("pitch", 0, 99),
    "-a": ("volume", 0, 200),
    "-g": ("wordgap", 0, 500),
}


@dataclass(frozen=True)
class _Settings:
    """Everything that shapes the output besides the text; part of the cache key."""

    voice: str = "en"
    rate: int = 175
    pitch: int = 50
    volume: int = 100
    wordgap: int = 0


def _parse_options(opts: Sequence[str]) -> _Settings:
    """Parse espeak-style command line options into :class:`_Settings`."""
    if isinstance(opts, (str, bytes)):
        raise InvalidArgumentError(
            f"opts must be a sequence of strings such as ['-v', 'en-us', '-s', '150'], "
            f"not a single string {opts!r}"
        )
    try:
        items = list(opts)
    except TypeError:
        raise InvalidArgumentError(
            f"opts must be a sequence of strings, got {type(opts).__name__}"
        ) from None
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgumentError(
                f"opts must contain only strings, got {type(item).__name__} {item!r}"
            )
    values: dict[str, str | int] = {}
    i = 0
    while i < len(items):
        item = items[i]
        flag = item[:2]
        if flag != "-v" and flag not in _NUMERIC:
            raise TTSError(f"unknown TTS option {item!r}; {_SUPPORTED}")
        if len(item) > 2:
            value = item[2:]
        elif i + 1 < len(items):
            i += 1
            value = items[i]
        else:
            raise TTSError(f"TTS option {flag} needs a value; {_SUPPORTED}")
        i += 1
        if flag == "-v":
            if not value.strip():
                raise TTSError(f"TTS option -v needs a voice name; {_SUPPORTED}")
            values["voice"] = value.strip()
            continue
        field, low, high = _NUMERIC[flag]
        try:
            number = int(value)
        except ValueError:
            raise TTSError(
                f"TTS option {flag} needs a whole number, got {value!r}; {_SUPPORTED}"
            ) from None
        if not low <= number <= high:
            raise TTSError(
                f"TTS option {flag} must be between {low} and {high}, got {number}; {_SUPPORTED}"
            )
        values[field] = number
    return _Settings(**values)  # type: ignore[arg-type]


_Key = tuple[str, _Settings]

_cache: OrderedDict[_Key, PCM] = OrderedDict()
# Separate from the library lock so cache hits never wait behind a synthesis.
_cache_lock = threading.Lock()


def _cache_get(key: _Key) -> PCM | None:
    with _cache_lock:
        pcm = _cache.get(key)
        if pcm is not None:
            _cache.move_to_end(key)
        return pcm


def _cache_put(key: _Key, pcm: PCM) -> None:
    pcm.flags.writeable = False  # callers only ever get copies
    with _cache_lock:
        _cache[key] = pcm
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


class _Voice(ctypes.Structure):
    """``espeak_VOICE`` from speak_lib.h."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # priority byte + name pairs, not one C string
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


# int SynthCallback(short *wav, int numsamples, espeak_EVENT *events); events are unused.
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Engine:
    """The loaded, initialised library. Only touch it while holding :data:`_lock`."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise TTSError(
                "text to speech needs the espeak-ng library: pip install espeakng-loader"
            ) from None
        lib_path = espeakng_loader.get_library_path()
        data_path = espeakng_loader.get_data_path()
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError as exc:
            raise TTSError(
                f"cannot load libespeak-ng from {lib_path} ({exc}); "
                "reinstall it with: pip install --force-reinstall espeakng-loader"
            ) from None
        # The library prints an error and synthesises nothing if the data is missing.
        if not os.path.isfile(os.path.join(data_path, "phontab")):
            raise TTSError(
                f"espeak-ng data not found in {data_path}; "
                "reinstall it with: pip install --force-reinstall espeakng-loader"
            )

        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,  # text
            ctypes.c_size_t,  # size
            ctypes.c_uint,  # position
            ctypes.c_int,  # position_type
            ctypes.c_uint,  # end_position
            ctypes.c_uint,  # flags
            ctypes.POINTER(ctypes.c_uint),  # unique_identifier
            ctypes.c_void_p,  # user_data
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p

        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise TTSError(f"espeak-ng failed to initialise with data from {data_path}")
        self.lib = lib
        self.rate: int = rate
        self.chunks: list[np.ndarray] = []
        # Kept on the instance: ctypes must not garbage-collect a callback C still holds.
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)
        logger.debug(
            "loaded libespeak-ng %s from %s (%d Hz)",
            lib.espeak_Info(None).decode(),
            lib_path,
            rate,
        )

    def _collect(
        self, wav: ctypes._Pointer[ctypes.c_short], numsamples: int, events: int | None
    ) -> int:
        # wav is NULL at the end of synthesis, and numsamples may be 0 mid-way.
        if wav and numsamples > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # continue

    def voices(self) -> list[str]:
        """Every language code the installed voices answer to, sorted."""
        table = self.lib.espeak_ListVoices(None)
        codes = set()
        i = 0
        while table[i]:
            # "languages" is a run of (priority byte, NUL-terminated name), ended by a 0 byte.
            address = table[i].contents.languages
            while ctypes.string_at(address, 1) != b"\0":
                name = ctypes.string_at(address + 1)
                codes.add(name.decode())
                address += len(name) + 2
            i += 1
        return sorted(codes)

    def configure(self, settings: _Settings) -> None:
        """Select the voice and set every parameter (the library keeps them between calls)."""
        if self.lib.espeak_SetVoiceByName(settings.voice.encode()) != _EE_OK:
            installed = self.voices()
            close = difflib.get_close_matches(settings.voice.lower(), installed, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise TTSError(
                f"unknown TTS voice {settings.voice!r}; {hint}"
                f"voices are language codes, optionally with a variant such as en-us+f3; "
                f"the installed ones are: {' '.join(installed)}"
            )
        for parameter, value in (
            (_RATE, settings.rate),
            (_VOLUME, settings.volume),
            (_PITCH, settings.pitch),
            # Not an option, but other code sharing the loaded library could have changed it.
            (_RANGE, 50),
            (_WORDGAP, settings.wordgap),
        ):
            if self.lib.espeak_SetParameter(parameter, value, 0) != _EE_OK:
                raise TTSError(f"espeak-ng rejected parameter {parameter} = {value}")

    def synth(self, text: bytes) -> np.ndarray:
        """Synthesise UTF-8 ``text`` and return the library's int16 samples."""
        self.chunks = []
        result = self.lib.espeak_Synth(
            text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if result != _EE_OK:
            raise TTSError(f"espeak-ng failed to synthesise (error {result})")
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        self.chunks = []
        return samples


# libespeak-ng has global state and is not thread-safe: every call into it holds this.
_lock = threading.Lock()
_engine: _Engine | None = None

# One worker is enough: synthesis is serialised by _lock anyway.
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voip-tts")


def _make_key(text: str, opts: Sequence[str]) -> _Key:
    if not isinstance(text, str):
        raise InvalidArgumentError(f"text must be a str, got {type(text).__name__}")
    if "\0" in text:
        raise InvalidArgumentError("text must not contain NUL characters")
    return text, _parse_options(opts)


def _synthesise(key: _Key) -> PCM:
    """Synthesise (or fetch) ``key`` and store it in the cache; returns the cached array."""
    global _engine
    text, settings = key
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(f"text is not valid Unicode: {exc}") from None
    with _lock:
        # Another thread may have made this while we waited for the lock.
        pcm = _cache_get(key)
        if pcm is not None:
            return pcm
        if _engine is None:
            _engine = _Engine()
        # Configure even for empty text, so a bad voice is reported whatever the text.
        _engine.configure(settings)
        samples = _engine.synth(encoded) if text.strip() else np.zeros(0, np.int16)
        rate = _engine.rate
    # Resampling needs no library state, so other threads may synthesise meanwhile.
    pcm = as_pcm(resample(samples.astype(np.float32) / 32768.0, rate, SAMPLE_RATE))
    _cache_put(key, pcm)
    logger.debug("synthesised %d characters: %.2f s of audio", len(text), pcm.size / SAMPLE_RATE)
    return pcm


def TTStoPCM(text: str, opts: Sequence[str] = ()) -> PCM:
    """Speak ``text`` with espeak-ng and return 8000 Hz mono float32 PCM.

    ``opts`` are espeak command line options: ``-v VOICE``, ``-s WPM`` (80-450),
    ``-p PITCH`` (0-99), ``-a AMPLITUDE`` (0-200) and ``-g GAP`` (word gap in 10 ms units,
    0-500), each as two items (``["-s", "150"]``) or one (``["-s150"]``); options not given
    take their defaults (voice ``en``, 175 wpm, pitch 50, amplitude 100, no word gap), and
    a repeated option takes its last value. Empty or whitespace-only text gives an empty
    array.

    Results are cached, so repeating a prompt is cheap; the returned array is always a
    fresh copy. Safe to call from several threads at once (calls into the library are
    serialised). Blocks for the synthesis, roughly 1-2 ms per second of speech (plus about
    15 ms to load the library on first use): in a coroutine use :func:`TTStoPCMAsync`.

    Raises :class:`~voip.errors.InvalidArgumentError` if ``text`` is not a str (or holds a
    NUL character) or ``opts`` is not a sequence of str, and
    :class:`~voip.errors.TTSError` for an unknown option, a missing, non-numeric or
    out-of-range value, an unknown voice, or when libespeak-ng cannot be loaded.
    """
    key = _make_key(text, opts)
    pcm = _cache_get(key)
    if pcm is None:
        pcm = _synthesise(key)
    return pcm.copy()


def speech_future(text: str, opts: Sequence[str] = ()) -> asyncio.Future[PCM]:
    """Start synthesising ``text`` in a worker thread; the future gets the PCM (a fresh
    copy). Bad text or options raise here, at once, as in :func:`TTStoPCM`; a cached
    prompt's future is done already. Call it on the event loop."""
    key = _make_key(text, opts)
    loop = asyncio.get_running_loop()
    pcm = _cache_get(key)
    if pcm is not None:
        done: asyncio.Future[PCM] = loop.create_future()
        done.set_result(pcm.copy())
        return done
    return loop.run_in_executor(_executor, _synthesise_copy, key)


def _synthesise_copy(key: _Key) -> PCM:
    return _synthesise(key).copy()


async def TTStoPCMAsync(text: str, opts: Sequence[str] = ()) -> PCM:
    """Like :func:`TTStoPCM`, but synthesises in a worker thread so the event loop runs on.

    Cached prompts return at once without a thread hop. Takes the same options and raises
    the same errors as :func:`TTStoPCM`.
    """
    return await speech_future(text, opts)
