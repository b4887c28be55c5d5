"""Screening SIP requests before the SIP stack spends anything on them.

Pure logic, no PJSIP: the backend's request filter (``voip.backends.pjsip.prefilter``)
hands each incoming request's method, source and a few headers to a :class:`RequestGuard`,
which says whether to let it through, drop it without a word, or answer it with a status.

What is refused, for a request that starts nothing new (in-dialog requests, ACK and CANCEL
always pass):

- a known scanner's User-Agent (SIPVicious' ``friendly-scanner`` and the like): dropped,
  so that a scan sees nothing at all;
- a source outside the allow-list: INVITE answered 403, anything else dropped;
- more INVITEs from one source than ``invite_rate`` a second (bursts of twice that):
  503; more other requests (OPTIONS, REGISTER, ...) than ``options_rate``: dropped;
- a new INVITE from a source that already has ``unacked_per_source`` calls answered and
  awaiting their ACK: dropped over UDP, 503 over TCP or TLS (its top Via says which). A
  caller that never ACKs holds a call slot until the backend's ACK deadline, and may hold
  only so many; an honest one ACKs within milliseconds, so its own INVITE, or another
  caller's behind the same address (a PBX trunk, a NAT), sent again over UDP half a
  second later by the SIP transaction, then passes (not applied with an allow-list, whose
  addresses are trusted);
- an INVITE whose offer puts all its audio on IPv6 (``c=IN IP6``, as linphone does on a
  dual-stack host): 488, before the call is answered. The pjsua2 build voip runs on
  (pjsua2-python 2.15) has no IPv6 media: answered, such a call could only fail;
- more new calls from all sources together than ``call_rate`` a second: 503;
- what the server's own screen refuses (its calls all up: 486, shutting down: 503).

With ``answer_options`` (a worker behind kamailio: :mod:`voip.cluster`), an OPTIONS
outside a dialog from an allowed source is the front's probe: it is answered here,
statelessly, with 200 while the screen would take a call and 503 when it would not (all
calls up, or shutting down), so that kamailio's dispatcher sends new calls elsewhere.
PJSIP would answer 200 whatever the room.

Each refusal is logged through :class:`RefusalLog`: the first from a source at once, the
rest counted and reported at most once a minute per source and reason, so that a flood
makes a few lines, not one per packet. The lines start ``refused SIP from <address>:``,
for fail2ban. Each refusal also has a :data:`RefusalKind`, one of a few words (for
counting: the server's metrics count refusals by kind), and the log hands it, with
whether the request was a new call's INVITE, to its ``on_refused`` listener.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from .sipmsg import AllowList

__all__ = [
    "AwaitingAck",
    "REFUSAL_KINDS",
    "RefusalKind",
    "RequestGuard",
    "RequestHead",
    "RateLimiter",
    "burst_of",
    "RefusalLog",
    "Verdict",
    "SCANNER_USER_AGENTS",
    "parse_request_head",
    "screen_kind",
    "rate_reason",
    "awaiting_ack_reason",
    "NOT_ALLOWED",
]

log = logging.getLogger("voip.guard")

SCANNER_USER_AGENTS = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipscan",
    "iwar",
    "sivus",
    "sundayddr",
    "pplsip",
    "vaxsipuseragent",
    "smap",
)
"""User-Agent fragments of SIP scanners and war-diallers (matched case-insensitively)."""

RefusalKind = Literal[
    "scanner",
    "allow-list",
    "rate",
    "call-rate",
    "awaiting-ack",
    "ipv6-media",
    "full",
    "shutting-down",
    "screen",
    "never-acked",
    "media",
    "failed",
    "other",
]
"""Why a request was refused, in a word: a scanner's User-Agent; a source outside the
allow-list; above the per-source rate (``invite_rate``, ``options_rate``); above the rate
of new calls from everyone (``call_rate``); a call from the source already awaiting its
ACK; audio offered on IPv6 only; the server's screen: all calls up (486), shutting down
(503), another status; answered and never ACKed; the media refused after all (PJSIP's
488 when answering); another failure before the ACK; anything else."""
REFUSAL_KINDS: tuple[RefusalKind, ...] = get_args(RefusalKind)


def screen_kind(status: int) -> RefusalKind:
    """The kind of a refusal by the server's screen, from its status: 486 when all
    calls are up, 503 when shutting down."""
    if status == 486:
        return "full"
    return "shutting-down" if status == 503 else "screen"


NOT_ALLOWED = "not in the allow-list (403)"
"""Why an INVITE from outside the allow-list is refused (kamailio's front says it too)."""


def rate_reason(limit: Literal["invite", "other", "call"], rate: float) -> str:
    """Why a request above a rate is refused: ``invite_rate``'s, ``options_rate``'s or
    ``call_rate``'s (kamailio's front, :mod:`voip.cluster.kamailio`, logs the same)."""
    if limit == "invite":
        return f"INVITEs above {rate:g}/s (503)"
    if limit == "other":
        return f"requests other than INVITE above {rate:g}/s (dropped)"
    return f"new calls above {rate:g}/s in all (503)"


def awaiting_ack_reason(waiting: int, udp: bool) -> str:
    """Why a new INVITE is refused while ``waiting`` calls from its source await their
    ACK: dropped over UDP, 503 over TCP or TLS (kamailio's front logs the same)."""
    calls = "a call" if waiting == 1 else f"{waiting} calls"
    verb = "awaits its" if waiting == 1 else "await their"
    reason = f"{calls} from it already {verb} ACK"
    return f"{reason} (dropped: UDP callers send it again)" if udp else f"{reason} (503)"


_PASS_THROUGH = frozenset({"ACK", "CANCEL"})
_IPV6_AUDIO = (
    "its offer has audio on IPv6 only (c=IN IP6), and this PJSIP build carries IPv4 media"
    " only: the phone must offer IPv4 (linphone: ipv6 disable) (488)"
)
_MAX_SOURCES = 4096
"""Sources remembered by each limiter and by the refusal log (least recently seen go)."""


@dataclass(frozen=True)
class RequestHead:
    """What the guard needs of a request: its method, whether it belongs to a dialog
    (its To header has a tag), its User-Agent (empty when absent), and the branch of its
    top Via, which names its transaction, and that Via's transport (upper case, e.g.
    ``UDP``; both empty when absent); for an INVITE, whether its SDP offer has audio on
    IPv6 only."""

    method: str
    in_dialog: bool
    user_agent: str
    branch: str = ""
    transport: str = ""
    ipv6_audio_only: bool = False


_HEADER = re.compile(
    rb"^(to|t|user-agent|via|v)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE
)
_TAG = re.compile(rb";\s*tag\s*=", re.IGNORECASE)
_BRANCH = re.compile(rb";\s*branch\s*=\s*([^;,\s]+)", re.IGNORECASE)
_TRANSPORT = re.compile(rb"SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)", re.IGNORECASE)


_SDP_LINE = re.compile(rb"^([cm])=([^\r\n]*)", re.MULTILINE)


def _ipv6_audio_only(body: bytes) -> bool:
    """Whether an SDP offer has audio and all of it on IPv6: each ``m=audio`` stream
    (port not 0) has its section's ``c=`` line, else the session's."""
    session = b""
    streams: list[bytes] = []  # the address type of each audio stream
    audio = in_media = False
    for kind, value in _SDP_LINE.findall(body):
        fields = value.split()
        if kind == b"m":
            in_media = True
            audio = fields[:1] == [b"audio"] and fields[1:2] != [b"0"]
            if audio:
                streams.append(session)
            continue
        addrtype = fields[1].upper() if len(fields) > 1 else b""  # c=IN IP6 ::1
        if not in_media:
            session = addrtype
        elif audio:
            streams[-1] = addrtype
    return bool(streams) and all(t == b"IP6" for t in streams)


def parse_request_head(raw: bytes) -> RequestHead | None:
    """The :class:`RequestHead` of a raw SIP request, or None if it does not start
    with a request line. Looks only at the header block, and at an INVITE's body for
    its offer's address family; never raises."""
    head, _, body = raw.partition(b"\r\n\r\n")
    method, sep, rest = head.partition(b" ")
    if not sep or not method.isalpha() or b"SIP/" not in rest.split(b"\n", 1)[0]:
        return None
    in_dialog = False
    agent = b""
    branch: bytes | None = None
    transport = b""
    for m in _HEADER.finditer(head):
        name = m.group(1).lower()
        if name == b"user-agent":
            agent = m.group(2)
        elif name in (b"via", b"v"):
            if branch is None:  # the top Via's
                found = _BRANCH.search(m.group(2))
                branch = found.group(1) if found else b""
                proto = _TRANSPORT.match(m.group(2))
                transport = proto.group(1) if proto else b""
        elif _TAG.search(m.group(2)):
            in_dialog = True
    name = method.decode("ascii").upper()
    return RequestHead(
        name,
        in_dialog,
        agent.decode("utf-8", "replace").strip(),
        (branch or b"").decode("utf-8", "replace"),
        transport.decode("ascii").upper(),
        name == "INVITE" and _ipv6_audio_only(body),
    )


@dataclass(frozen=True)
class Verdict:
    """``action`` is ``"pass"``, ``"drop"`` (no answer) or ``"reply"`` (with ``status``).
    A drop's ``status``, if any, is the answer where dropping is no longer possible (a
    request PJSIP has already made a transaction of)."""

    action: Literal["pass", "drop", "reply"]
    status: int = 0
    reason: str = ""
    kind: RefusalKind = "other"


PASS = Verdict("pass")


class RateLimiter:
    """A token bucket per key: ``rate`` a second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str) -> bool:
        """Take one token for ``key``; False when its bucket is empty."""
        now = self._clock()
        tokens, then = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        ok = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if ok else tokens, now)
        if len(self._buckets) > _MAX_SOURCES:
            self._buckets.popitem(last=False)
        return ok


class RefusalLog:
    """Logs refusals: the first of a source for a reason at once, then at most one line
    per ``window`` seconds for that source and reason, saying how many more were refused
    meanwhile."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        window: float = 60.0,
        logger: logging.Logger = log,
    ) -> None:
        self._clock = clock
        self.window = window
        self._log = logger
        self._sources: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self.total = 0
        """Refusals since the start."""
        self.on_refused: Callable[[RefusalKind, bool], None] | None = None
        """Told of every refusal: its kind, and whether it was of a new call (an INVITE)."""

    def refused(
        self, source: str, reason: str, kind: RefusalKind = "other", call: bool = True
    ) -> None:
        """``source`` was refused for ``reason`` (a :data:`RefusalKind` in a sentence);
        ``call``: the request was a new call's INVITE."""
        self.total += 1
        if self.on_refused is not None:
            self.on_refused(kind, call)
        now = self._clock()
        key = f"{source} {reason}"
        logged_at, unlogged = self._sources.pop(key, (None, 0))
        if logged_at is not None and now - logged_at < self.window:
            self._sources[key] = (logged_at, unlogged + 1)
            return
        if unlogged:
            more = f" ({unlogged} more refused from it in the last {self.window:.0f} s)"
        else:
            more = ""
        self._log.warning("refused SIP from %s: %s%s", source, reason, more)
        self._sources[key] = (now, 0)
        if len(self._sources) > _MAX_SOURCES:
            self._sources.popitem(last=False)


class AwaitingAck:
    """The calls answered and not yet ACKed, by source address and by the Via branch of
    their INVITE. The backend reports each call answered and, once it is ACKed or has
    ended, settled; the guard counts them per source and recognises a retransmission
    of their INVITE (same branch: the SIP transaction answers it again, it is no new
    call). Holds live calls only, so it stays as small as the number of call slots."""

    def __init__(self) -> None:
        self._calls: dict[str, list[str]] = {}

    def answered(self, source: str, branch: str) -> None:
        self._calls.setdefault(source, []).append(branch)

    def settled(self, source: str, branch: str) -> None:
        branches = self._calls.get(source)
        if branches is None or branch not in branches:
            return
        branches.remove(branch)
        if not branches:
            del self._calls[source]

    def count(self, source: str) -> int:
        """Calls from ``source`` awaiting their ACK."""
        return len(self._calls.get(source, ()))

    def holds(self, source: str, branch: str) -> bool:
        """Whether an INVITE from ``source`` with this branch is one of those calls'."""
        return bool(branch) and branch in self._calls.get(source, ())

    def __len__(self) -> int:
        return sum(len(b) for b in self._calls.values())


class RequestGuard:
    """Decides what happens to each incoming request (see the module's docstring).

    ``screen(source)`` is the server's own check for a new call (0: take it, else a
    status and a reason). A rate of 0 turns that limit off, and so does
    ``unacked_per_source=0`` for calls awaiting their ACK (counted in
    :attr:`awaiting_ack`, which the backend keeps up to date). ``answer_options``:
    OPTIONS from allowed sources are answered with the screen's verdict (200 or 503).
    """

    def __init__(
        self,
        *,
        allow: AllowList | None = None,
        invite_rate: float = 5.0,
        options_rate: float = 5.0,
        call_rate: float = 20.0,
        scanner_user_agents: Iterable[str] = SCANNER_USER_AGENTS,
        screen: Callable[[str], tuple[int, str]] | None = None,
        unacked_per_source: int = 1,
        answer_options: bool = False,
        refusals: RefusalLog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allow = allow or AllowList()
        self.answer_options = answer_options
        self.scanners = tuple(s.lower() for s in scanner_user_agents if s)
        self.screen = screen
        self.unacked_per_source = unacked_per_source
        self.awaiting_ack = AwaitingAck()
        """Calls answered and not yet ACKed (see :class:`AwaitingAck`)."""
        self.refusals = refusals or RefusalLog(clock)
        self._invites = _limiter(invite_rate, clock)
        self._others = _limiter(options_rate, clock)
        self._calls = _limiter(call_rate, clock)
        self._rates = (invite_rate, options_rate, call_rate)

    def check(self, head: RequestHead, source: str) -> Verdict:
        """The verdict on request ``head`` from ``source`` (an IP address, no port)."""
        if head.in_dialog or head.method in _PASS_THROUGH:
            return PASS
        if head.method == "INVITE" and self.awaiting_ack.holds(source, head.branch):
            return PASS  # a retransmission: its transaction answers it again
        if head.method == "OPTIONS" and self.answer_options and self.allow.allows(source):
            return self._room(source)  # the front's probe: no refusal, nothing to log
        verdict = self._judge(head, source)
        if verdict.action != "pass":
            self.refusals.refused(source, verdict.reason, verdict.kind, head.method == "INVITE")
        return verdict

    def _judge(self, head: RequestHead, source: str) -> Verdict:
        agent = head.user_agent.lower()
        if agent and any(s in agent for s in self.scanners):
            return Verdict(
                "drop", 0, f"scanner User-Agent {head.user_agent!r} (dropped)", "scanner"
            )
        invite = head.method == "INVITE"
        if not self.allow.allows(source):
            if invite:
                return Verdict("reply", 403, NOT_ALLOWED, "allow-list")
            reason = f"{head.method} from outside the allow-list (dropped)"
            return Verdict("drop", 0, reason, "allow-list")
        if not invite:
            if self._others is not None and not self._others.allow(source):
                return Verdict("drop", 0, rate_reason("other", self._rates[1]), "rate")
            return PASS
        if self._invites is not None and not self._invites.allow(source):
            return Verdict("reply", 503, rate_reason("invite", self._rates[0]), "rate")
        waiting = self.awaiting_ack.count(source)
        # With an allow-list every source is one we trust (a PBX, a proxy carrying many
        # callers' INVITEs at once): the limit is for ports open to anyone.
        limited = self.unacked_per_source > 0 and not self.allow.networks
        if limited and waiting >= self.unacked_per_source:
            if head.transport == "UDP":
                # Not refused: the caller sends the INVITE again after 0.5 s (Timer A).
                # (503 is for the fallback, applied once PJSIP has a transaction.)
                dropped = awaiting_ack_reason(waiting, udp=True)
                return Verdict("drop", 503, dropped, "awaiting-ack")
            return Verdict("reply", 503, awaiting_ack_reason(waiting, udp=False), "awaiting-ack")
        if head.ipv6_audio_only:
            return Verdict("reply", 488, _IPV6_AUDIO, "ipv6-media")
        if self.screen is not None:
            status, reason = self.screen(source)
            if status:
                return Verdict("reply", status, f"{reason} ({status})", screen_kind(status))
        if self._calls is not None and not self._calls.allow(""):
            return Verdict("reply", 503, rate_reason("call", self._rates[2]), "call-rate")
        return PASS

    def _room(self, source: str) -> Verdict:
        """200 while the server's screen would take a new call from ``source``, else 503."""
        status = self.screen(source)[0] if self.screen is not None else 0
        return Verdict("reply", 503 if status else 200)


def burst_of(rate: float) -> float:
    """The requests a limit of ``rate`` a second lets through at once: twice the rate,
    at least 2 (the guard's, and the kamailio front's)."""
    return max(2.0, 2 * rate)


def _limiter(rate: float, clock: Callable[[], float]) -> RateLimiter | None:
    return RateLimiter(rate, burst_of(rate), clock) if rate > 0 else None
