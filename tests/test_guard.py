"""The request guard's decisions, on a clock the tests move by hand."""

from __future__ import annotations

import logging

import pytest

from voip.guard import (
    AwaitingAck,
    RateLimiter,
    RefusalLog,
    RequestGuard,
    RequestHead,
    parse_request_head,
)
from voip.sipmsg import AllowList


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(
    method: str = "INVITE",
    *,
    to_tag: bool = False,
    agent: str = "",
    branch: str = "z9hG4bK-1",
    transport: str = "UDP",
) -> bytes:
    lines = [
        f"{method} sip:app@192.0.2.1 SIP/2.0",
        f"Via: SIP/2.0/{transport} 198.51.100.7:5060;branch={branch}",
        "From: <sip:a@198.51.100.7>;tag=abc",
        "To: <sip:app@192.0.2.1>" + (";tag=xyz" if to_tag else ""),
        "Call-ID: 1@198.51.100.7",
        f"CSeq: 1 {method}",
    ]
    if agent:
        lines.append(f"User-Agent: {agent}")
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def test_parse_request_head():
    assert parse_request_head(request("OPTIONS", agent="friendly-scanner")) == RequestHead(
        "OPTIONS", False, "friendly-scanner", "z9hG4bK-1", "UDP"
    )
    assert parse_request_head(request("BYE", to_tag=True)) == RequestHead(
        "BYE", True, "", "z9hG4bK-1", "UDP"
    )
    compact = b"INVITE sip:a@b SIP/2.0\r\nt: <sip:a@b> ; TAG=1\r\nf: <sip:c@d>;tag=2\r\n\r\n"
    assert parse_request_head(compact) == RequestHead("INVITE", True, "")
    # The top Via's branch only, whatever the header's form.
    vias = (
        b"INVITE sip:a@b SIP/2.0\r\nv: SIP/2.0/tcp h;rport; Branch = z9hG4bKtop;x\r\n"
        b"Via: SIP/2.0/UDP g;branch=z9hG4bKnext\r\nTo: <sip:a@b>\r\n\r\n"
    )
    assert parse_request_head(vias) == RequestHead("INVITE", False, "", "z9hG4bKtop", "TCP")
    no_branch = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TLS h\r\nVia: x;branch=2\r\n\r\n"
    assert parse_request_head(no_branch) == RequestHead("INVITE", False, "", "", "TLS")
    # A tag in the body, or in From only, is not a To tag.
    body = b"INVITE sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\n\r\nTo: x;tag=1\r\n"
    assert parse_request_head(body) == RequestHead("INVITE", False, "")
    for junk in (b"", b"\x00\xff" * 40, b"SIP/2.0 200 OK\r\n\r\n", b"INVITE\r\n\r\n"):
        assert parse_request_head(junk) is None


def test_rate_limiter_allows_bursts_then_the_rate():
    clock = Clock()
    limiter = RateLimiter(rate=5, burst=10, clock=clock)
    assert sum(limiter.allow("a") for _ in range(30)) == 10
    assert limiter.allow("b")  # another key has its own bucket
    clock.now += 1.0
    assert sum(limiter.allow("a") for _ in range(30)) == 5


def test_refusal_log_says_it_once_a_minute_per_source(caplog):
    clock = Clock()
    refusals = RefusalLog(clock, window=60)
    with caplog.at_level(logging.WARNING, logger="voip.guard"):
        for _ in range(500):
            refusals.refused("198.51.100.7", "INVITEs above 5/s (503)")
        refusals.refused("203.0.113.9", "scanner User-Agent 'sipvicious' (dropped)")
        clock.now += 61
        refusals.refused("198.51.100.7", "INVITEs above 5/s (503)")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "refused SIP from 198.51.100.7: INVITEs above 5/s (503)",
        "refused SIP from 203.0.113.9: scanner User-Agent 'sipvicious' (dropped)",
        "refused SIP from 198.51.100.7: INVITEs above 5/s (503)"
        " (499 more refused from it in the last 60 s)",
    ]
    assert refusals.total == 502


def guard(clock: Clock, **kwargs) -> RequestGuard:
    return RequestGuard(clock=clock, refusals=RefusalLog(clock), **kwargs)


def head(raw: bytes) -> RequestHead:
    parsed = parse_request_head(raw)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize("agent", ["friendly-scanner", "sipvicious 0.3", "SIPCLI/v1.8"])
def test_scanners_are_dropped_whatever_the_method(agent):
    g = guard(Clock())
    for method in ("OPTIONS", "INVITE", "REGISTER"):
        verdict = g.check(head(request(method, agent=agent)), "198.51.100.7")
        assert verdict.action == "drop", verdict
    assert g.check(head(request(agent="Linphone/5.2")), "198.51.100.7").action == "pass"
    unfiltered = guard(Clock(), scanner_user_agents=())
    verdict = unfiltered.check(head(request(agent="friendly-scanner")), "198.51.100.7")
    assert verdict.action == "pass"


def test_allow_list_refuses_invites_with_403_and_drops_the_rest():
    g = guard(Clock(), allow=AllowList(["192.0.2.0/24"]))
    invite = g.check(head(request()), "198.51.100.7")
    assert (invite.action, invite.status) == ("reply", 403)
    assert g.check(head(request("OPTIONS")), "198.51.100.7").action == "drop"
    assert g.check(head(request()), "192.0.2.44").action == "pass"


def test_invite_rate_per_source_then_503():
    clock = Clock()
    g = guard(clock, invite_rate=5, call_rate=0)
    verdicts = [g.check(head(request()), "198.51.100.7") for _ in range(25)]
    assert [v.action for v in verdicts].count("pass") == 10  # the burst: twice the rate
    assert {(v.action, v.status) for v in verdicts[10:]} == {("reply", 503)}
    assert g.check(head(request()), "198.51.100.8").action == "pass"  # others unaffected
    # In-dialog requests, ACK and CANCEL are never limited: they belong to calls we took.
    for raw in (request(to_tag=True), request("BYE", to_tag=True), request("ACK")):
        assert g.check(head(raw), "198.51.100.7").action == "pass"
    clock.now += 1
    assert g.check(head(request()), "198.51.100.7").action == "pass"


def test_options_rate_drops_the_excess():
    g = guard(Clock(), options_rate=1)
    actions = [g.check(head(request("OPTIONS")), "198.51.100.7").action for _ in range(10)]
    assert actions == ["pass"] * 2 + ["drop"] * 8
    assert g.check(head(request()), "198.51.100.7").action == "pass"  # INVITEs: own bucket


def test_call_rate_counts_every_source_together():
    g = guard(Clock(), invite_rate=0, call_rate=3)
    sources = [f"198.51.100.{i}" for i in range(20)]
    actions = [g.check(head(request()), s).action for s in sources]
    assert actions.count("pass") == 6  # bursts of twice the rate, then 503
    assert g.check(head(request()), "192.0.2.1").status == 503


def test_the_servers_screen_is_asked_last_and_its_reason_logged(caplog):
    calls_up = [4]

    def screen(source: str) -> tuple[int, str]:
        return (486, f"{calls_up[0]} calls up") if calls_up[0] >= 4 else (0, "")

    g = guard(Clock(), screen=screen)
    with caplog.at_level(logging.WARNING, logger="voip.guard"):
        busy = g.check(head(request()), "198.51.100.7")
    assert (busy.action, busy.status) == ("reply", 486)
    assert caplog.records[0].getMessage() == "refused SIP from 198.51.100.7: 4 calls up (486)"
    calls_up[0] = 1
    assert g.check(head(request()), "198.51.100.7").action == "pass"


def test_awaiting_ack_counts_calls_per_source():
    waiting = AwaitingAck()
    waiting.answered("198.51.100.7", "b1")
    waiting.answered("198.51.100.7", "b2")
    waiting.answered("198.51.100.8", "")
    assert (waiting.count("198.51.100.7"), waiting.count("198.51.100.8"), len(waiting)) == (2, 1, 3)
    assert waiting.holds("198.51.100.7", "b1") and not waiting.holds("198.51.100.8", "b1")
    assert not waiting.holds("198.51.100.8", "")  # no branch: never taken for a retransmission
    waiting.settled("198.51.100.7", "b1")
    waiting.settled("198.51.100.7", "b1")  # twice (ACKed, then ended): once is enough
    waiting.settled("192.0.2.1", "b9")  # unknown: ignored
    assert (waiting.count("198.51.100.7"), len(waiting)) == (1, 2)
    waiting.settled("198.51.100.7", "b2")
    waiting.settled("198.51.100.8", "")
    assert len(waiting) == 0 and waiting.count("198.51.100.7") == 0


def test_one_call_awaiting_its_ack_per_source(caplog):
    g = guard(Clock(), invite_rate=0, call_rate=0)
    assert g.check(head(request(branch="z9hG4bK-a")), "198.51.100.7").action == "pass"
    g.awaiting_ack.answered("198.51.100.7", "z9hG4bK-a")  # the backend answered it
    with caplog.at_level(logging.WARNING, logger="voip.guard"):
        udp = g.check(head(request(branch="z9hG4bK-b")), "198.51.100.7")
        tcp = g.check(head(request(branch="z9hG4bK-b", transport="TCP")), "198.51.100.7")
    # Over UDP dropped (the caller sends it again in 0.5 s; 503 if it cannot be dropped),
    # over TCP, where nothing is sent again, 503 at once.
    assert (udp.action, udp.status, tcp.action, tcp.status) == ("drop", 503, "reply", 503)
    assert [r.getMessage() for r in caplog.records] == [
        "refused SIP from 198.51.100.7: a call from it already awaits its ACK"
        " (dropped: UDP callers send it again)",
        "refused SIP from 198.51.100.7: a call from it already awaits its ACK (503)",
    ]
    # The first INVITE again (same branch) is a retransmission, not a call: it passes,
    # and is not counted as a refusal.
    assert g.check(head(request(branch="z9hG4bK-a")), "198.51.100.7").action == "pass"
    assert g.refusals.total == 2
    # Other sources are not affected; in-dialog requests and ACKs never are.
    assert g.check(head(request(branch="z9hG4bK-c")), "198.51.100.8").action == "pass"
    for raw in (request("ACK"), request("BYE", to_tag=True)):
        assert g.check(head(raw), "198.51.100.7").action == "pass"
    # ACKed (or ended): the source may call again.
    g.awaiting_ack.settled("198.51.100.7", "z9hG4bK-a")
    assert g.check(head(request(branch="z9hG4bK-d")), "198.51.100.7").action == "pass"


def test_calls_awaiting_their_ack_limit_can_be_raised_or_turned_off():
    two = guard(Clock(), invite_rate=0, call_rate=0, unacked_per_source=2)
    off = guard(Clock(), invite_rate=0, call_rate=0, unacked_per_source=0)
    for g in (two, off):
        g.awaiting_ack.answered("198.51.100.7", "b1")
        assert g.check(head(request(branch="b2")), "198.51.100.7").action == "pass"
        g.awaiting_ack.answered("198.51.100.7", "b2")
    third = two.check(head(request(branch="b3", transport="TLS")), "198.51.100.7")
    assert (third.status, third.reason) == (503, "2 calls from it already await their ACK (503)")
    assert off.check(head(request(branch="b3")), "198.51.100.7").action == "pass"


def offer(*sdp: str) -> bytes:
    """An INVITE (as :func:`request` makes) carrying these SDP lines."""
    body = "\r\n".join(("v=0", "o=- 1 1 IN IP4 198.51.100.7", "s=-", *sdp, "")).encode()
    headers = request().removesuffix(b"Content-Length: 0\r\n\r\n")
    length = b"Content-Length: %d\r\n\r\n" % len(body)
    return headers + b"Content-Type: application/sdp\r\n" + length + body


AUDIO = "m=audio 4000 RTP/AVP 0"


@pytest.mark.parametrize(
    "sdp, ipv6_only",
    [
        (["c=IN IP6 ::1", "t=0 0", AUDIO], True),
        (["c=IN IP4 198.51.100.7", "t=0 0", AUDIO], False),
        # A stream's own c= line is the one that counts.
        (["c=IN IP4 198.51.100.7", "t=0 0", AUDIO, "c=IN IP6 2001:db8::7"], True),
        (["c=in ip6 ::1", "t=0 0", AUDIO, "c=IN IP4 198.51.100.7"], False),
        # One audio stream on IPv4 is enough; a refused stream (port 0) and video do not count.
        (["c=IN IP6 ::1", "t=0 0", AUDIO, "m=audio 4002 RTP/AVP 0", "c=IN IP4 192.0.2.9"], False),
        (
            [
                "c=IN IP4 192.0.2.9",
                "t=0 0",
                "m=audio 0 RTP/AVP 0",
                "c=IN IP4 192.0.2.9",
                AUDIO,
                "c=IN IP6 ::1",
            ],
            True,
        ),
        (["c=IN IP6 ::1", "t=0 0", "m=video 5000 RTP/AVP 96", "c=IN IP4 192.0.2.9"], False),
        ([], False),  # no offer: PJSIP makes one, on IPv4
    ],
)
def test_parse_request_head_sees_an_offer_with_audio_on_ipv6_only(sdp, ipv6_only):
    assert head(offer(*sdp)).ipv6_audio_only is ipv6_only


def test_only_an_invites_offer_is_read():
    raw = offer("c=IN IP6 ::1", "t=0 0", AUDIO).replace(b"INVITE", b"UPDATE")
    assert not head(raw).ipv6_audio_only


def test_an_offer_with_audio_on_ipv6_only_is_refused_with_488_before_it_is_answered(caplog):
    g = guard(Clock(), invite_rate=0, call_rate=0)
    with caplog.at_level(logging.WARNING, logger="voip.guard"):
        verdict = g.check(head(offer("c=IN IP6 ::1", "t=0 0", AUDIO)), "::1")
    assert (verdict.action, verdict.status) == ("reply", 488)
    assert [r.getMessage() for r in caplog.records] == [
        "refused SIP from ::1: its offer has audio on IPv6 only (c=IN IP6), and this PJSIP"
        " build carries IPv4 media only: the phone must offer IPv4 (linphone: ipv6 disable)"
        " (488)"
    ]
    assert g.check(head(offer("c=IN IP4 127.0.0.1", "t=0 0", AUDIO)), "::1").action == "pass"


def test_no_limit_on_calls_awaiting_their_ack_from_an_allow_list():
    # A proxy or PBX on the allow-list carries many callers' INVITEs at once.
    g = guard(Clock(), invite_rate=0, call_rate=0, allow=AllowList(["192.0.2.0/24"]))
    g.awaiting_ack.answered("192.0.2.1", "b1")
    second = g.check(head(request(branch="b2", transport="TCP")), "192.0.2.1")
    assert second.action == "pass"


def test_each_refusal_reaches_the_listener_with_its_kind():
    clock = Clock()
    full = [False]
    g = guard(
        clock,
        allow=AllowList(["192.0.2.0/24"]),
        call_rate=0,
        screen=lambda source: (486, "4 calls up") if full[0] else (0, ""),
    )
    seen: list[tuple[str, bool]] = []
    g.refusals.on_refused = lambda kind, call: seen.append((kind, call))
    g.check(head(request(agent="friendly-scanner")), "192.0.2.7")
    g.check(head(request("OPTIONS", agent="sipvicious")), "192.0.2.7")
    g.check(head(request()), "198.51.100.7")
    g.check(head(request("OPTIONS")), "198.51.100.7")
    assert g.check(head(request()), "192.0.2.7").action == "pass"  # passes: no listener call
    full[0] = True
    assert g.check(head(request(branch="z9hG4bK-2")), "192.0.2.8").status == 486
    assert seen == [
        ("scanner", True),
        ("scanner", False),
        ("allow-list", True),
        ("allow-list", False),
        ("full", True),
    ]
    assert g.refusals.total == 5


def test_a_workers_guard_answers_the_fronts_probes_with_its_room(caplog):
    """Behind kamailio (voip.cluster) a worker answers OPTIONS itself: 200 while it would
    take a call, 503 when full or stopping; nothing is logged, others' OPTIONS are not
    answered, and OPTIONS in a dialog go to PJSIP."""
    refusal = [(0, "")]
    g = guard(
        Clock(),
        allow=AllowList(["127.0.0.1"]),
        screen=lambda source: refusal[0],
        answer_options=True,
    )
    probe = head(request("OPTIONS"))
    with caplog.at_level(logging.WARNING, logger="voip.guard"):
        room = g.check(probe, "127.0.0.1")
        assert (room.action, room.status) == ("reply", 200)
        refusal[0] = (486, "4 calls up")
        assert g.check(probe, "127.0.0.1").status == 503
        refusal[0] = (503, "shutting down")
        assert [g.check(probe, "127.0.0.1").status for _ in range(20)] == [503] * 20
    assert not caplog.records  # probes are no refusals, and have no rate limit
    assert g.check(probe, "198.51.100.7").action == "drop"  # outside the allow-list
    assert g.check(head(request("OPTIONS", to_tag=True)), "127.0.0.1").action == "pass"
    assert guard(Clock()).check(probe, "127.0.0.1").action == "pass"  # PJSIP answers
