"""Reading and writing WAV files as PCM.

:func:`loadWAVtoPCM` parses the RIFF chunks itself because the stdlib :mod:`wave` module
cannot read float, µ-law/A-law or WAVE_FORMAT_EXTENSIBLE files, which are what sound
editors and TTS tools commonly produce. Whatever the file holds, the result is mono
float32 PCM at :data:`~voip.audio.pcm.SAMPLE_RATE` Hz.

Writing always produces 16-bit, 8000 Hz, mono files: :func:`savePCMtoWAV` for a whole
buffer, :class:`WAVWriter` for a recording written frame by frame.
"""

from __future__ import annotations

import logging
import os
import struct
import wave
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, Self

import numpy as np
import numpy.typing as npt

from ..checks import number
from ..errors import InvalidArgumentError, WAVError
from .pcm import PCM, SAMPLE_RATE, as_pcm, pcm_to_int16, resample

__all__ = ["loadWAVtoPCM", "savePCMtoWAV", "normalizePCM", "WAVWriter"]

logger = logging.getLogger(__name__)

WAVSource = str | bytes | os.PathLike[str] | os.PathLike[bytes] | IO[bytes]

_CONVERT_HINT = "convert it with `sox in.wav -r 8000 -c 1 -b 16 out.wav`"
# sox picks the input's type from its name: an MP3 called .wav needs `-t mp3` (seen: sox
# refuses both an MP3 renamed and one inside a RIFF header), and Debian's sox reads MP3
# only with libsox-fmt-mp3.
_MP3_HINT = (
    "convert it with `sox -t mp3 in.wav -r 8000 -c 1 -b 16 out.wav` "
    "(apt-get install sox libsox-fmt-mp3)"
)
_LOOKS_LIKE_MP3 = "it looks like an MP3"

_FORMAT_PCM = 0x0001
_FORMAT_FLOAT = 0x0003
_FORMAT_ALAW = 0x0006
_FORMAT_MULAW = 0x0007
_FORMAT_MP3 = 0x0055
_FORMAT_EXTENSIBLE = 0xFFFE

# Names of format tags people actually meet, so the error says what the file is.
_FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0040: "G.721 ADPCM",
    0x0050: "MPEG audio",
    _FORMAT_MP3: "MPEG Layer 3 (MP3)",
    0x0064: "G.726 ADPCM",
    0x00FF: "AAC",
    0x0161: "Windows Media Audio",
}

# Every KSDATAFORMAT_SUBTYPE_* GUID is the format tag followed by these 12 bytes.
_GUID_SUFFIX = bytes.fromhex("0000 1000 8000 00aa00389b71")

# Lowest sample rate accepted; anything below is a corrupt header, not audio.
_MIN_RATE = 1000

# A size field a streaming writer leaves when it cannot seek back to fill it in.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


def _g711_tables() -> tuple[PCM, PCM]:
    """Build the 256-entry A-law and µ-law decode tables (ITU-T G.711), scaled to [-1, 1]."""
    codes = np.arange(256, dtype=np.int32)

    u = ~codes & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = ((((u & 0x0F) << 3) + 0x84) << exponent) - 0x84
    ulaw = np.where(u & 0x80, -magnitude, magnitude)

    a = codes ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = (a & 0x0F) << 4
    magnitude = np.where(
        exponent == 0, mantissa + 8, (mantissa + 0x108) << np.maximum(exponent - 1, 0)
    )
    # In A-law a set sign bit means positive, the opposite of µ-law.
    alaw = np.where(a & 0x80, magnitude, -magnitude)

    return (alaw / 32768.0).astype(np.float32), (ulaw / 32768.0).astype(np.float32)


_ALAW_TABLE, _MULAW_TABLE = _g711_tables()


def _source_name(source: Any) -> str:
    """The name to put in error messages for a path or a file object."""
    if isinstance(source, (str, bytes, os.PathLike)):
        return os.fsdecode(source)
    return str(getattr(source, "name", "<stream>"))


def _describe_start(head: bytes) -> str:
    """Say what a file that is not RIFF/WAVE seems to be, from its first bytes."""
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return _LOOKS_LIKE_MP3
    if head.startswith(b"RIFF"):
        return f"it is a RIFF file of type {head[8:12]!r}, not WAVE"
    known = {
        b"OggS": "an Ogg (Vorbis/Opus) file",
        b"fLaC": "a FLAC file",
        b"FORM": "an AIFF file",
        b".snd": "a Sun/NeXT .au file",
        b"\x1a\x45\xdf\xa3": "a Matroska/WebM file",
    }
    for magic, what in known.items():
        if head.startswith(magic):
            return f"it looks like {what}"
    if head[4:8] == b"ftyp":
        return "it looks like an MP4/M4A file"
    text = head.decode("utf-8", errors="replace")
    if "\ufffd" not in text[:-3] and all(ch.isprintable() or ch.isspace() for ch in text):
        if text.startswith("version https://git-lfs"):
            return "it is a Git LFS pointer, not the audio (run `git lfs pull`)"
        return f"it looks like text ({text[:40]!r})"
    return f"it starts with bytes {head[:8].hex(' ')}"


def _read_all(source: WAVSource, name: str) -> bytes:
    """Read the whole file, turning every I/O failure into a WAVError."""
    if isinstance(source, (str, bytes, os.PathLike)):
        try:
            with open(source, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise WAVError(
                name, f"file not found (looked in {os.path.abspath(name)!r}); check the path"
            ) from None
        except IsADirectoryError:
            raise WAVError(name, "is a directory, not a WAV file") from None
        except OSError as exc:
            raise WAVError(name, f"cannot read the file: {exc.strerror or exc}") from None
    if not callable(getattr(source, "read", None)):
        raise InvalidArgumentError(
            f"source must be a path or a binary file object, got {type(source).__name__}"
        )
    try:
        data = source.read()
    except OSError as exc:
        raise WAVError(name, f"cannot read the stream: {exc}") from None
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WAVError(name, "the file object is not binary; open it with mode 'rb'")
    return bytes(data)


@dataclass(frozen=True, slots=True)
class _Format:
    """The parts of a fmt chunk needed to decode the samples."""

    tag: int
    channels: int
    rate: int
    block_align: int
    valid_bits: int

    @property
    def width(self) -> int:
        """Bytes per sample of one channel (the container size)."""
        return self.block_align // self.channels


def _parse_fmt(body: bytes, name: str) -> _Format:
    """Validate a fmt chunk and reduce WAVE_FORMAT_EXTENSIBLE to its plain format tag."""
    if len(body) < 16:
        raise WAVError(
            name, f"the fmt chunk is {len(body)} bytes, at least 16 are needed (corrupt header)"
        )
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    valid_bits = bits
    if tag == _FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise WAVError(
                name,
                f"WAVE_FORMAT_EXTENSIBLE fmt chunk is {len(body)} bytes, 40 are needed "
                f"(corrupt header); {_CONVERT_HINT}",
            )
        extra_valid, _mask, guid = struct.unpack_from("<HI16s", body, 18)
        if guid[4:] != _GUID_SUFFIX:
            raise WAVError(
                name, f"unsupported WAVE_FORMAT_EXTENSIBLE sub-format {guid.hex()}; {_CONVERT_HINT}"
            )
        tag = int.from_bytes(guid[:4], "little")
        # 0 means "all bits valid"; more than the container holds is a writer bug.
        if 0 < extra_valid <= bits:
            valid_bits = extra_valid
    if tag not in (_FORMAT_PCM, _FORMAT_FLOAT, _FORMAT_ALAW, _FORMAT_MULAW):
        what = _FORMAT_NAMES.get(tag, "an unknown codec")
        hint = _MP3_HINT if tag == _FORMAT_MP3 else _CONVERT_HINT
        raise WAVError(
            name,
            f"unsupported format tag {tag} (0x{tag:04X}, {what}); only PCM, IEEE float, "
            f"A-law and µ-law can be read: {hint}",
        )
    if channels == 0:
        raise WAVError(name, "the fmt chunk says 0 channels (corrupt header)")
    if rate == 0:
        raise WAVError(name, "the fmt chunk says a sample rate of 0 Hz (corrupt header)")
    if rate < _MIN_RATE:
        # Not audio, and upsampling by 8000/rate could need gigabytes of memory.
        raise WAVError(
            name, f"implausible sample rate of {rate} Hz (corrupt header?); {_CONVERT_HINT}"
        )
    if block_align == 0 or block_align % channels or (block_align // channels) * 8 < bits:
        raise WAVError(
            name,
            f"impossible block align {block_align} for {channels} channel(s) of {bits}-bit "
            f"samples (corrupt header); {_CONVERT_HINT}",
        )
    fmt = _Format(tag, channels, rate, block_align, valid_bits or (block_align // channels) * 8)
    supported = {_FORMAT_PCM: (1, 2, 3, 4), _FORMAT_FLOAT: (4, 8)}.get(tag, (1,))
    if fmt.width not in supported:
        raise WAVError(
            name,
            f"unsupported sample size of {fmt.width * 8} bits for format tag {tag}; "
            f"{_CONVERT_HINT}",
        )
    return fmt


def _locate_chunks(data: bytes, name: str) -> tuple[_Format, bytes]:
    """Walk the RIFF chunks; return the format and the whole frames of the data chunk."""
    if not data:
        raise WAVError(name, "the file is empty (0 bytes); was the recording saved?")
    # RF64 is RIFF for files over 4 GiB; its data size is 0xFFFFFFFF, so it reads to the end.
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        what = _describe_start(data[:64])
        hint = _MP3_HINT if what == _LOOKS_LIKE_MP3 else _CONVERT_HINT
        raise WAVError(name, f"not a RIFF/WAVE file: {what}; {hint}")

    fmt: _Format | None = None
    payload: bytes | None = None
    declared = available = 0
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, pos)
        body_start = pos + 8
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(data[body_start : body_start + size], name)
        elif chunk_id == b"data":
            if size in _UNKNOWN_SIZES:
                # Written by a streamer that never patched the header: the rest is audio.
                payload = data[body_start:]
                break
            payload = data[body_start : body_start + size]
            declared, available = size, len(payload)
            if available < declared or fmt is not None:
                break
        # Chunks are word aligned: an odd-sized body is followed by a pad byte.
        pos = body_start + size + (size & 1)

    if fmt is None:
        raise WAVError(name, f"no fmt chunk, so the sample format is unknown; {_CONVERT_HINT}")
    if payload is None:
        raise WAVError(name, "no data chunk: the file holds no audio (truncated header?)")
    whole = len(payload) - len(payload) % fmt.block_align
    if available < declared:
        logger.warning(
            "%s: data chunk declares %d bytes but only %d are present (truncated file); "
            "loading the %d whole frames available",
            name,
            declared,
            available,
            whole // fmt.block_align,
        )
    return fmt, payload[:whole]


def _decode(fmt: _Format, payload: bytes, name: str) -> npt.NDArray[np.float32]:
    """Decode interleaved samples into a (frames, channels) float32 array."""
    raw = np.frombuffer(payload, dtype=np.uint8)
    if fmt.tag == _FORMAT_FLOAT:
        samples = np.frombuffer(payload, dtype="<f4" if fmt.width == 4 else "<f8")
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        if bad:
            logger.warning("%s: %d NaN/infinite samples (NaN read as 0)", name, bad)
        # Clip before the resampler: a float file may hold values far beyond full scale
        # (or infinities) that would otherwise overflow float32.
        samples = np.clip(np.nan_to_num(samples, nan=0.0), -1.0, 1.0).astype(np.float32)
    elif fmt.tag == _FORMAT_ALAW:
        samples = _ALAW_TABLE[raw]
    elif fmt.tag == _FORMAT_MULAW:
        samples = _MULAW_TABLE[raw]
    else:
        # Place each sample's bytes at the top of an int32 so 8/16/24/32-bit share one
        # scale; 8-bit WAV is unsigned, and flipping its top bit makes it signed.
        by_sample = raw.reshape(-1, fmt.width)
        padded = np.zeros((by_sample.shape[0], 4), dtype=np.uint8)
        padded[:, 4 - fmt.width :] = by_sample
        if fmt.width == 1:
            padded[:, 3] ^= 0x80
        ints = padded.view("<i4").reshape(-1)
        if fmt.valid_bits < fmt.width * 8:
            # Bits below wValidBitsPerSample are padding and should not add noise.
            ints = ints & np.int32(-(1 << (32 - fmt.valid_bits)))
        samples = ints.astype(np.float32) * np.float32(2.0**-31)
    return samples.reshape(-1, fmt.channels)


def loadWAVtoPCM(source: WAVSource) -> PCM:
    """Load a WAV file as mono float32 PCM at 8000 Hz.

    ``source`` is a path (``str`` or :class:`os.PathLike`) or a binary file object.

    Accepted: PCM 8-bit unsigned and 16/24/32-bit signed, IEEE float 32/64-bit, A-law and
    µ-law, plain or WAVE_FORMAT_EXTENSIBLE (whose ``wValidBitsPerSample`` is honoured), in
    RIFF or RF64 files; any number of channels (averaged to mono) and any sample rate of at
    least 1000 Hz (resampled with an anti-aliasing filter). Unknown chunks are skipped. A
    data size of 0 or 0xFFFFFFFF, as left by streaming writers, means "read to the end of
    the file". A data chunk shorter than declared logs a warning and returns the whole
    frames present. Float samples are clipped to [-1, 1] before resampling (NaN reads as 0,
    with a warning); the result is clipped to [-1, 1].

    Raises :class:`~voip.errors.WAVError` (naming the file and what is wrong) for a missing
    or unreadable file, anything that is not RIFF/WAVE, a missing fmt or data chunk, an
    unsupported codec and a corrupt header; :class:`~voip.errors.InvalidArgumentError` if
    ``source`` is neither a path nor a file object.
    """
    name = _source_name(source)
    fmt, payload = _locate_chunks(_read_all(source, name), name)
    frames = _decode(fmt, payload, name)
    mono = frames[:, 0] if fmt.channels == 1 else frames.mean(axis=1, dtype=np.float32)
    logger.debug(
        "%s: format tag %d, %d channel(s), %d Hz, %d-byte samples, %d frames",
        name,
        fmt.tag,
        fmt.channels,
        fmt.rate,
        fmt.width,
        len(mono),
    )
    return as_pcm(resample(mono, fmt.rate, SAMPLE_RATE))


class WAVWriter:
    """Write a 16-bit, 8000 Hz, mono WAV file incrementally, e.g. one 20 ms frame at a time.

    ``dest`` is a path or a seekable binary file object (which is left open on close). The
    header is kept up to date after every :meth:`write`, so a recording cut short by a
    crash is still a valid file. Use as a context manager or call :meth:`close`.
    Raises :class:`~voip.errors.WAVError` naming the file when it cannot be written (or
    after :meth:`close`), :class:`~voip.errors.InvalidArgumentError` for a bad ``dest``
    or bad samples.
    """

    def __init__(self, dest: WAVSource) -> None:
        self._name = _source_name(dest)
        self._samples_written = 0
        # Open paths ourselves: wave.open(str) leaves a half-built object that errors in
        # __del__ when the open fails, and it does not accept os.PathLike at all.
        self._file: IO[bytes] | None = None
        if not isinstance(dest, (str, bytes, os.PathLike)):
            if not callable(getattr(dest, "write", None)):
                raise InvalidArgumentError(
                    f"dest must be a path or a binary file object, got {type(dest).__name__}"
                )
            target = dest
        else:
            try:
                self._file = target = open(dest, "wb")
            except OSError as exc:
                raise WAVError(self._name, f"cannot create the file: {exc}") from None
        self._wav: wave.Wave_write | None = wave.open(target, "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)

    @property
    def samples_written(self) -> int:
        """Number of samples (at 8000 Hz) written so far."""
        return self._samples_written

    def write(self, pcm: Any) -> None:
        """Append PCM (any sequence of floats; out-of-range values are clipped)."""
        if self._wav is None:
            raise WAVError(self._name, "cannot write: the WAVWriter is closed")
        samples = pcm_to_int16(as_pcm(pcm))
        try:
            self._wav.writeframes(samples.astype("<i2", copy=False).tobytes())
        except (OSError, wave.Error) as exc:
            raise WAVError(self._name, f"cannot write: {exc}") from None
        self._samples_written += samples.size

    def close(self) -> None:
        """Finish the header and close the file; closing twice is harmless."""
        if self._wav is None:
            return
        wav, self._wav = self._wav, None
        try:
            wav.close()
        except (OSError, wave.Error) as exc:
            raise WAVError(self._name, f"cannot finish the file: {exc}") from None
        finally:
            # wave never closes a file object it was given; ours must not leak.
            if self._file is not None:
                self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def savePCMtoWAV(pcm: Any, dest: WAVSource) -> None:
    """Save PCM as a 16-bit, 8000 Hz, mono WAV file.

    ``pcm`` is anything :func:`~voip.audio.pcm.as_pcm` accepts (lists of floats too);
    values outside [-1, 1] are clipped, never wrapped. ``dest`` is a path or a seekable
    binary file object. Raises :class:`~voip.errors.InvalidArgumentError` for bad samples
    (before anything is written) or a bad ``dest``, and :class:`~voip.errors.WAVError`
    naming the file for an I/O error.
    """
    samples = as_pcm(pcm)
    with WAVWriter(dest) as writer:
        writer.write(samples)


def normalizePCM(pcm: Any, threshold: float = 0.005, peak: float = 1.0) -> PCM:
    """Trim near-silence from both ends, then scale so the absolute peak equals ``peak``.

    Leading and trailing samples whose absolute value is ``<= threshold`` are removed;
    quiet samples between loud ones are kept. If every sample is that quiet (or ``pcm`` is
    empty) the result is an empty float32 array. Raises
    :class:`~voip.errors.InvalidArgumentError` unless ``0 < peak <= 1`` and
    ``threshold >= 0``, or if ``pcm`` is not valid PCM.
    """
    peak = number("peak", peak, 0.0, 1.0, low_open=True)
    threshold = number("threshold", threshold, 0.0)
    samples = as_pcm(pcm)
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return np.zeros(0, dtype=np.float32)
    trimmed = samples[loud[0] : loud[-1] + 1]
    scaled = trimmed * np.float32(peak / float(np.max(np.abs(trimmed))))
    return as_pcm(scaled)
