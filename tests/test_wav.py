"""Tests for voip.audio.wav.

WAV files are built byte by byte here (struct + numpy), so reading is never tested
against the module's own writer.
"""

from __future__ import annotations

import io
import logging
import struct
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voip.audio.wav import WAVWriter, loadWAVtoPCM, normalizePCM, savePCMtoWAV
from voip.errors import InvalidArgumentError, WAVError

RATE = 8000

# --- building WAV files -------------------------------------------------------------

# KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT: the format tag then a fixed 12-byte suffix.
GUID_TAIL = bytes.fromhex("0000 1000 8000 00aa00389b71")


def chunk(chunk_id: bytes, body: bytes, size: int | None = None) -> bytes:
    """One RIFF chunk, with the pad byte after an odd-sized body."""
    declared = len(body) if size is None else size
    return struct.pack("<4sI", chunk_id, declared) + body + b"\0" * (len(body) % 2)


def fmt_body(
    tag: int,
    channels: int,
    rate: int,
    bits: int,
    *,
    block_align: int | None = None,
    sub_tag: int | None = None,
    valid_bits: int | None = None,
) -> bytes:
    """A fmt chunk body; with sub_tag it is WAVE_FORMAT_EXTENSIBLE."""
    align = channels * ((bits + 7) // 8) if block_align is None else block_align
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if sub_tag is not None:
        guid = struct.pack("<I", sub_tag) + GUID_TAIL
        body += struct.pack("<HHI16s", 22, valid_bits or bits, 0, guid)
    return body


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def alaw_encode(x: np.ndarray) -> np.ndarray:
    """G.711 A-law encoder (after Sun's g711.c), vectorised."""
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype(np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    pcm = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), pcm)
    shift = np.where(seg < 2, 1, seg)
    aval = (seg << 4) | ((pcm >> shift) & 0x0F)
    return (np.where(seg >= 8, 0x7F, aval) ^ mask).astype(np.uint8)


def ulaw_encode(x: np.ndarray) -> np.ndarray:
    """G.711 µ-law encoder, vectorised."""
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype(np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    biased = np.minimum(np.abs(pcm), 32635) + 0x84
    exponent = np.floor(np.log2(biased)).astype(np.int32) - 7
    mantissa = (biased >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def int_bytes(x: np.ndarray, width: int) -> bytes:
    """Signed little-endian integers of `width` bytes, full scale at |x| == 1."""
    ints = np.round(np.clip(x, -1, 1) * (2 ** (8 * width - 1) - 1)).astype("<i8")
    return ints.view(np.uint8).reshape(-1, 8)[:, :width].tobytes()


# name -> (format tag, bits, sub-format tag for EXTENSIBLE or None, encoder)
FORMATS = {
    "pcm8": (1, 8, None, lambda x: (np.round(x * 127) + 128).astype(np.uint8).tobytes()),
    "pcm16": (1, 16, None, lambda x: int_bytes(x, 2)),
    "pcm24": (1, 24, None, lambda x: int_bytes(x, 3)),
    "pcm32": (1, 32, None, lambda x: int_bytes(x, 4)),
    "float32": (3, 32, None, lambda x: x.astype("<f4").tobytes()),
    "float64": (3, 64, None, lambda x: x.astype("<f8").tobytes()),
    "alaw": (6, 8, None, lambda x: alaw_encode(x).tobytes()),
    "ulaw": (7, 8, None, lambda x: ulaw_encode(x).tobytes()),
    "ext_pcm24": (0xFFFE, 24, 1, lambda x: int_bytes(x, 3)),
    "ext_float32": (0xFFFE, 32, 3, lambda x: x.astype("<f4").tobytes()),
}


def build_wav(
    frames: np.ndarray,
    rate: int,
    fmt: str = "pcm16",
    *,
    data_size: int | None = None,
) -> bytes:
    """A WAV file holding `frames` (shape (n,) or (n, channels)), with a LIST chunk first."""
    frames = frames.reshape(len(frames), -1)
    tag, bits, sub_tag, encode = FORMATS[fmt]
    body = fmt_body(tag, frames.shape[1], rate, bits, sub_tag=sub_tag)
    # An odd-sized LIST chunk checks the pad byte is honoured.
    list_chunk = chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00test\x00")
    data = chunk(b"data", encode(frames.reshape(-1)), data_size)
    return riff(chunk(b"fmt ", body), list_chunk, data)


def tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def dominant_frequency(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * RATE / len(pcm))


def amplitude_at(pcm: np.ndarray, freq: float) -> float:
    """Amplitude of the sinusoid at `freq` (Hann window; freq on a bin for 1 s signals)."""
    window = np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(pcm * window))
    k = int(round(freq * len(pcm) / RATE))
    return float(2 * spectrum[k - 1 : k + 2].max() / window.sum())


def rms_amplitude(pcm: np.ndarray) -> float:
    """Peak amplitude of a sine from its RMS, ignoring resampler edge effects."""
    middle = pcm[500:-500]
    return float(np.sqrt(np.mean(middle.astype(np.float64) ** 2)) * np.sqrt(2))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- loading --------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 44100])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_format_round_trips_a_tone(tmp_path: Path, fmt: str, rate: int) -> None:
    path = write(tmp_path, f"{fmt}.wav", build_wav(tone(440, rate), rate, fmt))
    pcm = loadWAVtoPCM(path)
    assert pcm.dtype == np.float32 and pcm.ndim == 1
    assert abs(len(pcm) - RATE) <= 3
    assert abs(dominant_frequency(pcm) - 440) <= 5
    tolerance = 0.05 if fmt in ("alaw", "ulaw") else 0.02
    assert rms_amplitude(pcm) == pytest.approx(0.5, rel=tolerance)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_stereo_is_averaged_at_every_rate(tmp_path: Path, rate: int) -> None:
    stereo = np.stack([tone(440, rate, amplitude=0.5), tone(1000, rate, amplitude=0.3)], axis=1)
    pcm = loadWAVtoPCM(write(tmp_path, "stereo.wav", build_wav(stereo, rate, "float32")))
    assert abs(len(pcm) - RATE) <= 3
    assert amplitude_at(pcm, 440) == pytest.approx(0.25, rel=0.02)
    assert amplitude_at(pcm, 1000) == pytest.approx(0.15, rel=0.02)


@pytest.mark.parametrize("fmt", ["pcm16", "pcm24", "ext_pcm24", "ext_float32", "ulaw"])
def test_stereo_average_is_exact_at_8khz(tmp_path: Path, fmt: str) -> None:
    stereo = np.tile([0.5, -0.25], (100, 1))
    pcm = loadWAVtoPCM(write(tmp_path, "dc.wav", build_wav(stereo, RATE, fmt)))
    np.testing.assert_allclose(pcm, np.full(100, 0.125), atol=0.01)


def test_8bit_unsigned_centre_is_zero(tmp_path: Path) -> None:
    body = fmt_body(1, 1, RATE, 8)
    data = np.array([128, 128, 0, 255, 192], dtype=np.uint8).tobytes()
    pcm = loadWAVtoPCM(write(tmp_path, "u8.wav", riff(chunk(b"fmt ", body), chunk(b"data", data))))
    np.testing.assert_array_equal(pcm, np.array([0, 0, -1, 127 / 128, 0.5], dtype=np.float32))


def test_full_scale_integers_are_exact(tmp_path: Path) -> None:
    ints = np.array([0, 16384, -16384, 32767, -32768], dtype="<i2")
    wav = riff(chunk(b"fmt ", fmt_body(1, 1, RATE, 16)), chunk(b"data", ints.tobytes()))
    pcm = loadWAVtoPCM(write(tmp_path, "s16.wav", wav))
    np.testing.assert_array_equal(pcm, ints / np.float32(32768))


def test_extensible_valid_bits_mask_padding(tmp_path: Path) -> None:
    # 16 valid bits in 24-bit containers: the low byte is padding, here filled with junk.
    values = np.array([1000, -1000, 32767, -32768], dtype=np.int32)
    containers = ((values << 8) | 0xFF).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
    body = fmt_body(0xFFFE, 1, RATE, 24, sub_tag=1, valid_bits=16)
    wav = riff(chunk(b"fmt ", body), chunk(b"data", containers.tobytes()))
    pcm = loadWAVtoPCM(write(tmp_path, "ext.wav", wav))
    np.testing.assert_array_equal(pcm, (values / 32768).astype(np.float32))


def test_24bit_in_32bit_containers_without_extensible(tmp_path: Path) -> None:
    values = np.array([0.25, -0.5, 0.75])
    ints = np.round(values * (2**23 - 1)).astype(np.int64) << 8
    body = fmt_body(1, 1, RATE, 24, block_align=4)
    wav = riff(chunk(b"fmt ", body), chunk(b"data", ints.astype("<i4").tobytes()))
    np.testing.assert_allclose(loadWAVtoPCM(write(tmp_path, "c.wav", wav)), values, atol=1e-6)


def test_float_out_of_range_and_nan_are_tamed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = np.array([2.0, -3.0, np.nan, 0.5], dtype="<f4").tobytes()
    wav = riff(chunk(b"fmt ", fmt_body(3, 1, RATE, 32)), chunk(b"data", data))
    with caplog.at_level(logging.WARNING, logger="voip.audio.wav"):
        pcm = loadWAVtoPCM(write(tmp_path, "nan.wav", wav))
    np.testing.assert_array_equal(pcm, [1.0, -1.0, 0.0, 0.5])
    assert "nan.wav" in caplog.text and "NaN" in caplog.text


def test_resampling_keeps_a_tone_below_nyquist(tmp_path: Path) -> None:
    path = write(tmp_path, "3500.wav", build_wav(tone(3500, 48000), 48000))
    pcm = loadWAVtoPCM(path)
    assert abs(dominant_frequency(pcm) - 3500) <= 5
    assert rms_amplitude(pcm) == pytest.approx(0.5, rel=0.02)


def test_resampling_filters_a_tone_above_nyquist(tmp_path: Path) -> None:
    # Dropping samples would alias 6000 Hz to 2000 Hz at full amplitude.
    path = write(tmp_path, "6000.wav", build_wav(tone(6000, 48000), 48000, "float32"))
    pcm = loadWAVtoPCM(path)
    assert abs(len(pcm) - RATE) <= 3
    attenuation_db = 20 * np.log10(rms_amplitude(pcm) / 0.5)
    assert attenuation_db <= -40
    assert amplitude_at(pcm, 2000) < 0.005


def test_file_object_input(tmp_path: Path) -> None:
    wav = build_wav(tone(440, 16000), 16000, "pcm24")
    from_bytes = loadWAVtoPCM(io.BytesIO(wav))
    path = write(tmp_path, "f.wav", wav)
    with open(path, "rb") as fh:
        from_file = loadWAVtoPCM(fh)
    np.testing.assert_array_equal(from_bytes, from_file)
    np.testing.assert_array_equal(from_bytes, loadWAVtoPCM(str(path)))
    assert abs(dominant_frequency(from_bytes) - 440) <= 5


@pytest.mark.parametrize("size", [0xFFFFFFFF, 0])
def test_unknown_data_size_reads_to_the_end(tmp_path: Path, size: int) -> None:
    samples = tone(440, RATE, seconds=0.5)
    # A trailing half frame (one odd byte) must be dropped, not break the decode.
    wav = build_wav(samples, RATE, "pcm16", data_size=size) + b"\x01"
    pcm = loadWAVtoPCM(write(tmp_path, "stream.wav", wav))
    assert len(pcm) == len(samples)
    np.testing.assert_allclose(pcm, samples, atol=1e-4)


def test_truncated_data_loads_frames_present_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stereo = np.stack([tone(440, RATE), tone(440, RATE)], axis=1)
    wav = build_wav(stereo, RATE, "pcm16")
    # Cut 1001 bytes: 250 whole stereo frames and a partial frame (1 byte) go missing.
    path = write(tmp_path, "cut.wav", wav[:-1001])
    with caplog.at_level(logging.WARNING, logger="voip.audio.wav"):
        pcm = loadWAVtoPCM(path)
    assert len(pcm) == RATE - 251
    np.testing.assert_allclose(pcm, stereo[: RATE - 251, 0], atol=1e-4)
    assert "cut.wav" in caplog.text and "truncated" in caplog.text


def test_fmt_after_data_is_found(tmp_path: Path) -> None:
    data = np.array([0, 16384], dtype="<i2").tobytes()
    wav = riff(chunk(b"data", data), chunk(b"fmt ", fmt_body(1, 1, RATE, 16)))
    np.testing.assert_array_equal(loadWAVtoPCM(write(tmp_path, "late.wav", wav)), [0, 0.5])


# --- errors ---------------------------------------------------------------------------

GOOD_FMT = chunk(b"fmt ", fmt_body(1, 1, RATE, 16))
SOME_DATA = chunk(b"data", np.zeros(10, dtype="<i2").tobytes())


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"Hello, this is a text file.\nNot audio at all.\n", "text"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 20, "MP3"),
        (b"\xff\xfb\x90\x64" + b"\x00" * 100, "MP3"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n", "git lfs"),
        (b"OggS\x00\x02" + b"\x00" * 40, "Ogg"),
        (b"RIFF\x04\x00\x00\x00AVI LIST", "AVI"),
        (b"RIFF", "not a RIFF/WAVE"),
        (riff(SOME_DATA), "no fmt chunk"),
        (riff(GOOD_FMT, chunk(b"LIST", b"INFO\x00")), "no data chunk"),
        (riff(chunk(b"fmt ", fmt_body(85, 1, RATE, 0, block_align=1)), SOME_DATA), "85"),
        (riff(chunk(b"fmt ", fmt_body(1, 0, RATE, 16, block_align=2)), SOME_DATA), "0 channels"),
        (riff(chunk(b"fmt ", fmt_body(1, 1, 0, 16)), SOME_DATA), "0 Hz"),
        (riff(chunk(b"fmt ", fmt_body(1, 1, 8, 16)), SOME_DATA), "8 Hz"),
        (riff(chunk(b"fmt ", b"\x01\x00\xff\xff\x12\x34"), SOME_DATA), "fmt chunk is 6 bytes"),
        (riff(chunk(b"fmt ", fmt_body(1, 2, RATE, 16, block_align=3)), SOME_DATA), "block align"),
        (riff(chunk(b"fmt ", fmt_body(1, 1, RATE, 16, block_align=0)), SOME_DATA), "block align"),
        (riff(chunk(b"fmt ", fmt_body(3, 1, RATE, 16)), SOME_DATA), "16 bits"),
        (riff(chunk(b"fmt ", fmt_body(0xFFFE, 1, RATE, 16)), SOME_DATA), "EXTENSIBLE"),
        (
            riff(chunk(b"fmt ", fmt_body(0xFFFE, 1, RATE, 16, sub_tag=0x55)), SOME_DATA),
            "MP3",
        ),
    ],
)
def test_unreadable_files_raise_wav_error(tmp_path: Path, content: bytes, reason: str) -> None:
    path = write(tmp_path, "bad_input.wav", content)
    with pytest.raises(WAVError) as info:
        loadWAVtoPCM(path)
    message = str(info.value)
    assert "bad_input.wav" in message
    assert reason.lower() in message.lower()
    assert info.value.path == str(path)


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (riff(chunk(b"fmt ", fmt_body(85, 2, 44100, 0, block_align=1)), SOME_DATA), "tag 85"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 20, "not a RIFF/WAVE file"),
    ],
)
def test_mp3_in_wav_suggests_sox_told_it_is_mp3(tmp_path: Path, content: bytes, what: str) -> None:
    # Inside a RIFF header or renamed: sox, going by the name, reads neither without -t mp3.
    with pytest.raises(WAVError) as info:
        loadWAVtoPCM(write(tmp_path, "mp3.wav", content))
    message = str(info.value)
    assert what in message and "MP3" in message
    assert "`sox -t mp3 in.wav -r 8000 -c 1 -b 16 out.wav`" in message
    assert "libsox-fmt-mp3" in message


def test_other_unreadable_wavs_suggest_plain_sox(tmp_path: Path) -> None:
    wav = riff(chunk(b"fmt ", fmt_body(0x31, 1, RATE, 0, block_align=65)), SOME_DATA)  # GSM
    with pytest.raises(WAVError, match=r"GSM 6\.10.*`sox in\.wav -r 8000 -c 1 -b 16 out\.wav`$"):
        loadWAVtoPCM(write(tmp_path, "gsm.wav", wav))


def test_missing_file_is_a_wav_error(tmp_path: Path) -> None:
    path = tmp_path / "no_such_prompt.wav"
    with pytest.raises(WAVError, match="no_such_prompt.wav.*not found"):
        loadWAVtoPCM(path)


def test_directory_is_a_wav_error(tmp_path: Path) -> None:
    with pytest.raises(WAVError, match="directory"):
        loadWAVtoPCM(tmp_path)


def test_stream_errors_name_the_stream() -> None:
    with pytest.raises(WAVError, match="<stream>: .*empty"):
        loadWAVtoPCM(io.BytesIO(b""))


def test_text_mode_file_object_is_a_wav_error(tmp_path: Path) -> None:
    path = write(tmp_path, "t.wav", build_wav(tone(440, RATE, 0.1), RATE))
    with open(path, encoding="latin-1") as fh, pytest.raises(WAVError, match="'rb'"):
        loadWAVtoPCM(fh)


def test_bad_source_type_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError):
        loadWAVtoPCM(42)  # type: ignore[arg-type]


def test_every_truncation_loads_or_raises_wav_error() -> None:
    wav = build_wav(tone(440, 16000, seconds=0.01), 16000, "ext_pcm24")
    for cut in range(len(wav)):
        try:
            pcm = loadWAVtoPCM(io.BytesIO(wav[:cut]))
        except WAVError:
            continue
        assert pcm.dtype == np.float32


def test_corrupted_headers_load_or_raise_wav_error() -> None:
    rng = np.random.default_rng(1234)
    wav = np.frombuffer(build_wav(tone(440, 22050, 0.01), 22050, "ext_float32"), np.uint8)
    for _ in range(500):
        corrupt = wav.copy()
        spots = rng.integers(0, 80, size=rng.integers(1, 4))
        corrupt[spots] = rng.integers(0, 256, size=len(spots))
        try:
            pcm = loadWAVtoPCM(io.BytesIO(corrupt.tobytes()))
        except WAVError:
            continue
        assert pcm.dtype == np.float32 and np.all(np.abs(pcm) <= 1)


# --- saving ---------------------------------------------------------------------------


def read_stdlib(source: str | io.BytesIO) -> tuple[Any, np.ndarray]:
    with wave.open(source, "rb") as w:
        return w.getparams(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def test_save_writes_16bit_8khz_mono(tmp_path: Path) -> None:
    samples = tone(440, RATE, seconds=0.25).astype(np.float32)
    path = tmp_path / "out.wav"
    savePCMtoWAV(samples, path)
    params, ints = read_stdlib(str(path))
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, RATE)
    assert params.nframes == len(samples)
    np.testing.assert_array_equal(ints, np.round(samples * 32767).astype(np.int16))
    assert np.max(np.abs(loadWAVtoPCM(path) - samples)) < 1e-4


def test_save_from_a_list_clips_rather_than_wraps(tmp_path: Path) -> None:
    path = tmp_path / "list.wav"
    savePCMtoWAV([0.0, 0.25, -0.25, 1.5, -1.5, 1.0, -1.0], str(path))
    _, ints = read_stdlib(str(path))
    np.testing.assert_array_equal(ints, [0, 8192, -8192, 32767, -32767, 32767, -32767])


def test_save_to_file_object_round_trips() -> None:
    samples = np.linspace(-1, 1, 801, dtype=np.float32)
    buffer = io.BytesIO()
    savePCMtoWAV(samples, buffer)
    assert not buffer.closed
    params, _ = read_stdlib(io.BytesIO(buffer.getvalue()))
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, RATE)
    buffer.seek(0)
    assert np.max(np.abs(loadWAVtoPCM(buffer) - samples)) < 1e-4


def test_save_empty_pcm_writes_a_valid_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    savePCMtoWAV([], path)
    params, ints = read_stdlib(str(path))
    assert params.nframes == 0 and ints.size == 0
    assert loadWAVtoPCM(path).size == 0


def test_save_to_missing_directory_is_a_wav_error(tmp_path: Path) -> None:
    path = tmp_path / "missing_dir" / "out.wav"
    with pytest.raises(WAVError, match="missing_dir"):
        savePCMtoWAV([0.0], path)


def test_save_rejects_nan_before_creating_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    with pytest.raises(InvalidArgumentError):
        savePCMtoWAV([0.0, float("nan")], path)
    assert not path.exists()


def test_wav_writer_appends_frames(tmp_path: Path) -> None:
    samples = tone(440, RATE, seconds=0.2).astype(np.float32)
    path = tmp_path / "rec.wav"
    with WAVWriter(path) as writer:
        for start in range(0, len(samples), 160):
            writer.write(samples[start : start + 160])
        writer.write([2.0])
        assert writer.samples_written == len(samples) + 1
    params, ints = read_stdlib(str(path))
    assert params.nframes == len(samples) + 1
    assert ints[-1] == 32767
    np.testing.assert_allclose(loadWAVtoPCM(path)[:-1], samples, atol=1e-4)


def test_wav_writer_header_is_valid_before_close() -> None:
    buffer = io.BytesIO()
    writer = WAVWriter(buffer)
    writer.write(np.full(160, 0.5))
    writer.write(np.full(160, -0.5))
    # A recording cut short (never closed) must still be readable in full.
    pcm = loadWAVtoPCM(io.BytesIO(buffer.getvalue()))
    assert len(pcm) == 320
    writer.close()


def test_wav_writer_close_is_idempotent_and_final(tmp_path: Path) -> None:
    writer = WAVWriter(tmp_path / "w.wav")
    writer.close()
    writer.close()
    with pytest.raises(WAVError, match="w.wav.*closed"):
        writer.write([0.0])


def test_wav_writer_rejects_a_bad_destination() -> None:
    with pytest.raises(InvalidArgumentError, match="dest"):
        WAVWriter(3.5)  # type: ignore[arg-type]


# --- normalizePCM ---------------------------------------------------------------------


def test_normalize_trims_both_ends_exactly() -> None:
    burst = np.array([0.1, -0.2, 0.0, 0.05], dtype=np.float32)
    pcm = np.concatenate([np.zeros(100), burst, np.zeros(50)]).astype(np.float32)
    out = normalizePCM(pcm)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.5, -1.0, 0.0, 0.25], rtol=1e-6)


def test_normalize_threshold_is_inclusive() -> None:
    out = normalizePCM([0.25, -0.25, 0.5, 0.0, -0.375, 0.25], threshold=0.25)
    np.testing.assert_allclose(out, [1.0, 0.0, -0.75])


def test_normalize_keeps_quiet_samples_above_default_threshold() -> None:
    out = normalizePCM([0.004, 0.006, 0.5, 0.004, -0.004])
    np.testing.assert_allclose(out, [0.012, 1.0], rtol=1e-5)


def test_normalize_to_a_given_peak() -> None:
    out = normalizePCM(tone(440, RATE, amplitude=0.1), peak=0.5)
    assert float(np.max(np.abs(out))) == pytest.approx(0.5, rel=1e-6)


def test_normalize_silence_and_empty_give_empty_arrays() -> None:
    for silent in (np.zeros(1000), np.full(10, 0.001), []):
        out = normalizePCM(silent)
        assert out.dtype == np.float32 and out.shape == (0,)


def test_normalize_accepts_lists() -> None:
    np.testing.assert_allclose(normalizePCM([0.0, 0.2, -0.4, 0.0]), [0.5, -1.0])


@pytest.mark.parametrize("peak", [0.0, -0.5, 1.5, float("nan")])
def test_normalize_rejects_bad_peak(peak: float) -> None:
    with pytest.raises(InvalidArgumentError, match="peak"):
        normalizePCM([0.5], peak=peak)


def test_normalize_rejects_negative_threshold() -> None:
    with pytest.raises(InvalidArgumentError, match="threshold"):
        normalizePCM([0.5], threshold=-0.1)
