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
- more new calls from all sources together than ``call_rate`` a second: 503;
- what the server's own screen refuses (its calls all up: 486, shutting down: 503).

Each refusal is logged through :class:`RefusalLog`: the first from a source at once, the
rest counted and reported at most once a minute per source and reason, so that a flood
makes a few lines, not one per packet. The lines start ``refused SIP from <address>:``,
for fail2ban.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .sipmsg import AllowList

__all__ = [
    "RequestGuard",
    "RequestHead",
    "RateLimiter",
    "RefusalLog",
    "Verdict",
    "SCANNER_USER_AGENTS",
    "parse_request_head",
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

_PASS_THROUGH = frozenset({"ACK", "CANCEL"})
_MAX_SOURCES = 4096
"""Sources remembered by each limiter and by the refusal log (least recently seen go)."""


@dataclass(frozen=True)
class RequestHead:
    """What the guard needs of a request: its method, whether it belongs to a dialog
    (its To header has a tag), and its User-Agent (empty when absent)."""

    method: str
    in_dialog: bool
    user_agent: str


_HEADER = re.compile(rb"^(to|t|user-agent)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
_TAG = re.compile(rb";\s*tag\s*=", re.IGNORECASE)


def parse_request_head(raw: bytes) -> RequestHead | None:
    """The :class:`RequestHead` of a raw SIP request, or None if it does not start
    with a request line. Looks only at the header block; never raises."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    method, sep, rest = head.partition(b" ")
    if not sep or not method.isalpha() or b"SIP/" not in rest.split(b"\n", 1)[0]:
        return None
    in_dialog = False
    agent = b""
    for m in _HEADER.finditer(head):
        if m.group(1).lower() == b"user-agent":
            agent = m.group(2)
        elif _TAG.search(m.group(2)):
            in_dialog = True
    return RequestHead(
        method.decode("ascii").upper(), in_dialog, agent.decode("utf-8", "replace").strip()
    )


@dataclass(frozen=True)
class Verdict:
    """``action`` is ``"pass"``, ``"drop"`` (no answer) or ``"reply"`` (with ``status``)."""

    action: str
    status: int = 0
    reason: str = ""


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

    def refused(self, source: str, reason: str) -> None:
        self.total += 1
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


class RequestGuard:
    """Decides what happens to each incoming request (see the module's docstring).

    ``screen(source)`` is the server's own check for a new call (0: take it, else a
    status and a reason). A rate of 0 turns that limit off.
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
        refusals: RefusalLog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allow = allow or AllowList()
        self.scanners = tuple(s.lower() for s in scanner_user_agents if s)
        self.screen = screen
        self.refusals = refusals or RefusalLog(clock)
        self._invites = _limiter(invite_rate, clock)
        self._others = _limiter(options_rate, clock)
        self._calls = _limiter(call_rate, clock)
        self._rates = (invite_rate, options_rate, call_rate)

    def check(self, head: RequestHead, source: str) -> Verdict:
        """The verdict on request ``head`` from ``source`` (an IP address, no port)."""
        if head.in_dialog or head.method in _PASS_THROUGH:
            return PASS
        verdict = self._judge(head, source)
        if verdict.action != "pass":
            self.refusals.refused(source, verdict.reason)
        return verdict

    def _judge(self, head: RequestHead, source: str) -> Verdict:
        agent = head.user_agent.lower()
        if agent and any(s in agent for s in self.scanners):
            return Verdict("drop", 0, f"scanner User-Agent {head.user_agent!r} (dropped)")
        invite = head.method == "INVITE"
        if not self.allow.allows(source):
            if invite:
                return Verdict("reply", 403, "not in the allow-list (403)")
            return Verdict("drop", 0, f"{head.method} from outside the allow-list (dropped)")
        if not invite:
            if self._others is not None and not self._others.allow(source):
                rate = _rate(self._rates[1])
                return Verdict("drop", 0, f"requests other than INVITE above {rate}/s (dropped)")
            return PASS
        if self._invites is not None and not self._invites.allow(source):
            return Verdict("reply", 503, f"INVITEs above {_rate(self._rates[0])}/s (503)")
        if self.screen is not None:
            status, reason = self.screen(source)
            if status:
                return Verdict("reply", status, f"{reason} ({status})")
        if self._calls is not None and not self._calls.allow(""):
            return Verdict("reply", 503, f"new calls above {_rate(self._rates[2])}/s in all (503)")
        return PASS


def _limiter(rate: float, clock: Callable[[], float]) -> RateLimiter | None:
    return RateLimiter(rate, max(2.0, 2 * rate), clock) if rate > 0 else None


def _rate(rate: float) -> str:
    return f"{rate:g}"
