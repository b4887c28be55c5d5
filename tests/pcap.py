"""G.711 µ-law audio as an RTP capture, for SIPp's ``play_pcap_audio``; struct and numpy only.

:func:`mulaw_encode` turns float PCM into µ-law bytes and :func:`mulaw_decode` back,
:func:`write_rtp_pcap` writes them as a classic libpcap file of Ethernet/IPv4/UDP/RTP
packets (payload type 0, one 20 ms packet of 160 bytes every 20 ms), and
:func:`read_rtp_pcap` reads such a file back, checking every length and the IPv4 header
checksum on the way. :func:`write_mulaw_wav` wraps µ-law bytes in a WAV file, so that an
independent decoder can check the encoder.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 8000
PACKET_SAMPLES = 160
"""Samples (and µ-law bytes) in one 20 ms RTP packet."""

_BIAS = 0x84
_CLIP = 32635

_PCAP_HEADER = struct.Struct("<IHHiIII")  # magic, version, zone, sigfigs, snaplen, linktype
_RECORD = struct.Struct("<IIII")  # seconds, microseconds, captured length, length on the wire
_ETHERNET = struct.Struct("!6s6sH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_RTP = struct.Struct("!BBHII")
_PCAP_MAGIC = 0xA1B2C3D4
_LINKTYPE_ETHERNET = 1
_ETHERTYPE_IPV4 = 0x0800
_PROTO_UDP = 17
PT_PCMU = 0


def mulaw_encode(pcm: npt.ArrayLike) -> bytes:
    """G.711 µ-law codes of float samples in [-1, 1] (full scale is 32768 in 16 bits).

    The classic encoder: add the bias 0x84 to the 16-bit magnitude (clipped at 32635), take
    the segment from the position of its highest set bit and the 4 bits below it as the
    mantissa, and invert the whole byte.
    """
    x = np.asarray(pcm, dtype=np.float64)
    linear = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int32)
    sign = np.where(linear < 0, 0x80, 0x00)
    magnitude = np.minimum(np.abs(linear), _CLIP) + _BIAS  # 0x84 .. 0x7FFF
    # The segment: 0 for magnitudes below 0x100 (bit 7 the highest), up to 7 (bit 14).
    segment = np.zeros_like(magnitude)
    for bit in range(8, 15):
        segment = np.where(magnitude >= (1 << bit), bit - 7, segment)
    mantissa = (magnitude >> (segment + 3)) & 0x0F
    codes = ~(sign | (segment << 4) | mantissa) & 0xFF
    return codes.astype(np.uint8).tobytes()


def mulaw_decode(codes: bytes) -> npt.NDArray[np.float32]:
    """G.711 µ-law codes as float samples (the inverse of :func:`mulaw_encode`)."""
    u = ~np.frombuffer(codes, dtype=np.uint8).astype(np.int32) & 0xFF
    magnitude = ((((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)) - 0x84
    return (np.where(u & 0x80, -magnitude, magnitude) / 32768.0).astype(np.float32)


def write_mulaw_wav(path: str | Path, codes: bytes) -> None:
    """A mono 8 kHz µ-law WAV file (format tag 7) holding ``codes``."""
    fmt = struct.pack("<HHIIHHH", 7, 1, SAMPLE_RATE, SAMPLE_RATE, 1, 8, 0)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"fact" + struct.pack("<II", 4, len(codes))
    body += b"data" + struct.pack("<I", len(codes)) + codes + b"\0" * (len(codes) & 1)
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def ipv4_checksum(header: bytes) -> int:
    """The ones' complement of the ones' complement sum of the header's 16-bit words."""
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4_header(src: bytes, dst: bytes, payload_len: int, ident: int) -> bytes:
    args = [0x45, 0, 20 + payload_len, ident & 0xFFFF, 0x4000, 64, _PROTO_UDP, 0, src, dst]
    args[7] = ipv4_checksum(_IPV4.pack(*args))
    return _IPV4.pack(*args)


def write_rtp_pcap(
    path: str | Path,
    codes: bytes,
    *,
    src: tuple[str, int] = ("192.0.2.1", 40000),
    dst: tuple[str, int] = ("192.0.2.2", 50000),
    ssrc: int = 0x1F0E7A55,
    first_seq: int = 1000,
    first_timestamp: int = 160000,
    start: float = 1_700_000_000.0,
) -> int:
    """Write the µ-law ``codes`` as RTP (PCMU, payload type 0) in a libpcap file.

    One packet per 160 codes (the last one padded with µ-law silence, 0xFF), captured
    20 ms apart from ``start`` (seconds since the epoch); sequence numbers go up by 1 and
    RTP timestamps by 160; the first packet has the marker bit. SIPp replaces addresses
    and ports when it replays the file. Returns the number of packets.
    """
    if len(codes) % PACKET_SAMPLES:
        codes += b"\xff" * (PACKET_SAMPLES - len(codes) % PACKET_SAMPLES)
    src_ip, dst_ip = (ipaddress.IPv4Address(a).packed for a in (src[0], dst[0]))
    ethernet = _ETHERNET.pack(
        bytes.fromhex("020000000002"), bytes.fromhex("020000000001"), _ETHERTYPE_IPV4
    )
    start_us = int(round(start * 1_000_000))
    out = [_PCAP_HEADER.pack(_PCAP_MAGIC, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET)]
    count = len(codes) // PACKET_SAMPLES
    for i in range(count):
        payload = codes[i * PACKET_SAMPLES : (i + 1) * PACKET_SAMPLES]
        rtp = _RTP.pack(
            0x80,  # version 2, no padding, no extension, no CSRC
            (0x80 if i == 0 else 0) | PT_PCMU,
            (first_seq + i) & 0xFFFF,
            (first_timestamp + i * PACKET_SAMPLES) & 0xFFFFFFFF,
            ssrc,
        )
        udp_len = _UDP.size + len(rtp) + len(payload)
        udp = _UDP.pack(src[1], dst[1], udp_len, 0)  # checksum 0: not computed (IPv4)
        frame = ethernet + _ipv4_header(src_ip, dst_ip, udp_len, i) + udp + rtp + payload
        seconds, micros = divmod(start_us + i * 20_000, 1_000_000)
        out += [_RECORD.pack(seconds, micros, len(frame), len(frame)), frame]
    Path(path).write_bytes(b"".join(out))
    return count


@dataclass(frozen=True)
class RtpPacket:
    time: float
    """Capture time, seconds since the epoch."""
    src: tuple[str, int]
    dst: tuple[str, int]
    marker: bool
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes


def read_rtp_pcap(path: str | Path) -> list[RtpPacket]:
    """The RTP packets of a file :func:`write_rtp_pcap` wrote, checking every header.

    Raises AssertionError on a wrong magic or link type, a length that does not add up or
    an IPv4 header whose checksum does not verify.
    """
    data = Path(path).read_bytes()
    magic, major, minor, _zone, _sigfigs, _snaplen, link = _PCAP_HEADER.unpack_from(data)
    assert (magic, major, minor, link) == (_PCAP_MAGIC, 2, 4, _LINKTYPE_ETHERNET)
    packets = []
    pos = _PCAP_HEADER.size
    while pos < len(data):
        seconds, micros, captured, wire = _RECORD.unpack_from(data, pos)
        pos += _RECORD.size
        frame = data[pos : pos + captured]
        pos += captured
        assert len(frame) == captured == wire, (len(frame), captured, wire)
        *_macs, ethertype = _ETHERNET.unpack_from(frame)
        assert ethertype == _ETHERTYPE_IPV4
        ip = frame[_ETHERNET.size : _ETHERNET.size + _IPV4.size]
        version_ihl, _tos, total, _id, _frag, _ttl, proto, _sum, src, dst = _IPV4.unpack(ip)
        assert version_ihl == 0x45 and proto == _PROTO_UDP
        assert total == len(frame) - _ETHERNET.size, (total, len(frame))
        assert ipv4_checksum(ip) == 0, "bad IPv4 header checksum"
        udp_at = _ETHERNET.size + _IPV4.size
        sport, dport, udp_len, _udp_sum = _UDP.unpack_from(frame, udp_at)
        assert udp_len == total - _IPV4.size, (udp_len, total)
        rtp_at = udp_at + _UDP.size
        first, second, seq, timestamp, ssrc = _RTP.unpack_from(frame, rtp_at)
        assert first == 0x80
        packets.append(
            RtpPacket(
                seconds + micros / 1_000_000,
                (str(ipaddress.IPv4Address(src)), sport),
                (str(ipaddress.IPv4Address(dst)), dport),
                bool(second & 0x80),
                second & 0x7F,
                seq,
                timestamp,
                ssrc,
                frame[rtp_at + _RTP.size :],
            )
        )
    return packets
