"""Capturing UDP on the loopback interface with tshark, and reading RTP out of the capture.

The SIP benchmarks time what crosses the wire: tshark (the Debian package) records the
packets with the kernel's capture time (CLOCK_REALTIME, the clock of ``time.time()``), so
figures need no clock of the processes under test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .common import Row, Section

__all__ = [
    "Packet",
    "RtpPacket",
    "capture",
    "capture_dir",
    "rtp_packets",
    "tshark_path",
    "udp_packets",
    "PCMU_SILENCE",
]

PCMU_SILENCE = frozenset({0xFF, 0x7F})
"""The two µ-law codes of a zero sample (+0 and -0): a payload of only these is silence."""

_RTCP_TYPES = range(200, 205)
"""RTCP packet types (SR, RR, SDES, BYE, APP), in the byte where RTP has marker and type."""


def tshark_path() -> str | None:
    """The tshark program, or None when it is not installed."""
    return shutil.which("tshark")


def mark_skipped(section: Section, measure: str, unit: str) -> None:
    """Record in ``section`` that ``measure`` was not taken for want of tshark."""
    note = "tshark is not installed (Debian package `tshark`): not measured"
    section.rows.append(Row(measure, None, unit, note=note))
    section.notes.append(f"**Skipped: {note}.**")


@contextmanager
def capture_dir() -> Iterator[Path]:
    """A temporary folder that tshark's capture process (dumpcap) may write into."""
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o777)  # dumpcap may drop privileges
        yield Path(tmp)


@contextmanager
def capture(tshark: str, bpf: str, pcap: Path) -> Iterator[None]:
    """tshark capturing the loopback interface into ``pcap`` with the filter ``bpf``
    (e.g. ``udp src portrange 10000-10099``); capturing has begun when this enters."""
    proc = subprocess.Popen(
        [tshark, "-i", "lo", "-f", bpf, "-w", str(pcap), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    err = ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        err += line
        if "Capturing on" in line:
            break
    if "Capturing on" not in err:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"tshark did not start capturing:\n{err}")
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    try:
        yield
    finally:
        time.sleep(0.3)  # the last packets are still on their way into the file
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Packet:
    """A captured UDP datagram."""

    time: float
    """Capture time, seconds since the epoch (the clock of ``time.time()``)."""
    sport: int
    dport: int
    payload: bytes


def udp_packets(tshark: str, pcap: Path) -> list[Packet]:
    """Every UDP datagram in the capture, in capture order."""
    out = subprocess.run(
        [tshark, "-r", str(pcap), "-T", "fields", "-e", "frame.time_epoch"]
        + ["-e", "udp.srcport", "-e", "udp.dstport", "-e", "udp.payload"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    packets = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 4 or not parts[3]:
            continue
        payload = bytes.fromhex(parts[3].replace(":", ""))
        packets.append(Packet(float(parts[0]), int(parts[1]), int(parts[2]), payload))
    return packets


@dataclass(frozen=True)
class RtpPacket:
    """The RTP header fields the benchmarks use, and the payload."""

    time: float
    sport: int
    dport: int
    ssrc: int
    seq: int
    timestamp: int
    pt: int
    marker: bool
    payload: bytes

    @property
    def silent(self) -> bool:
        """Whether a PCMU payload is digital silence (every sample zero)."""
        return set(self.payload) <= PCMU_SILENCE


def rtp_packets(packets: list[Packet]) -> list[RtpPacket]:
    """The packets that are RTP (version 2, not RTCP), parsed; others are skipped."""
    out = []
    for p in packets:
        data = p.payload
        if len(data) < 12 or data[0] >> 6 != 2 or data[1] in _RTCP_TYPES:
            continue
        head = 12 + 4 * (data[0] & 0x0F)  # CSRC list
        out.append(
            RtpPacket(
                time=p.time,
                sport=p.sport,
                dport=p.dport,
                ssrc=int.from_bytes(data[8:12], "big"),
                seq=int.from_bytes(data[2:4], "big"),
                timestamp=int.from_bytes(data[4:8], "big"),
                pt=data[1] & 0x7F,
                marker=bool(data[1] & 0x80),
                payload=data[head:],
            )
        )
    return out
