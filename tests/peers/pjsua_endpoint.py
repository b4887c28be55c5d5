"""How a plain pjsua2 far end starts: the pjsua2 test peers in this folder (pjsua_peer,
pjsua_multi, pjsua_load), and the benchmark's caller, answerer and load generator
(bench/sip/), which put this folder on ``sys.path``.

Independent of the voip package, on purpose: a far end built on voip could share its
mistakes and hide them. It lives with the test peers, which every CI run uses, so that
the tests depend on nothing in bench/; the benchmarks reuse it rather than keep a copy.

The media settings match voip's own endpoint (voip/backends/pjsip/stack.py), so that in
the benchmarks the only difference between the app and the bare answerer is voip itself.
"""

from __future__ import annotations

from collections.abc import Mapping

import pjsua2 as pj

VOIP_CODECS = {"PCMU/8000": 255, "PCMA/8000": 254, "G722/16000": 253}
"""voip's default codecs and their order (voip/backends/pjsip/options.py), others off."""


def start_endpoint(
    port: int,
    *,
    tcp: bool = False,
    log_level: int = 0,
    codecs: Mapping[str, int] | None = VOIP_CODECS,
    host: str = "127.0.0.1",
) -> pj.Endpoint:
    """A started pjsua2 endpoint on ``host``:``port`` (UDP, or TCP; ``::1`` for IPv6),
    with the null sound device; PJSIP runs on the caller's thread (``ep.libHandleEvents``).

    ``log_level``: PJSIP's own log, to the console (0: none, 1: errors). ``codecs``: the
    priority of each codec, by the start of its id; None keeps PJSIP's defaults.
    """
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.maxCalls = 4
    cfg.logConfig.level = log_level
    cfg.logConfig.consoleLevel = log_level
    m = cfg.medConfig
    m.clockRate = 8000
    m.sndClockRate = 8000
    m.audioFramePtime = 20
    m.ptime = 20
    m.noVad = True
    m.ecTailLen = 0
    m.threadCnt = 1
    m.sndAutoCloseTime = -1  # the null device's clock must not stop (platform notes)
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()
    tc = pj.TransportConfig()
    tc.port = port
    tc.boundAddress = host
    tc.publicAddress = host
    kind = pj.PJSIP_TRANSPORT_TCP if tcp else pj.PJSIP_TRANSPORT_UDP
    ep.transportCreate(kind | (pj.PJSIP_TRANSPORT_IPV6 if ":" in host else 0), tc)
    if codecs is not None:
        for info in ep.codecEnum2():
            cid = info.codecId
            ep.codecSetPriority(cid, next((p for k, p in codecs.items() if cid.startswith(k)), 0))
    ep.libStart()
    return ep


def account_config(
    user: str,
    port: int,
    rtp_port: int,
    rtp_range: int,
    name: str = "",
    host: str = "127.0.0.1",
    tcp: bool = False,
) -> pj.AccountConfig:
    """An account ``sip:user@host:port`` (shown as ``name`` when given) whose RTP uses
    ``rtp_range`` ports from ``rtp_port`` on 127.0.0.1 (``tcp``: its transport's)."""
    acfg = pj.AccountConfig()
    ipv6 = ":" in host
    uri = f"sip:{user}@{f'[{host}]' if ipv6 else host}:{port}"
    acfg.idUri = f'"{name}" <{uri}>' if name else uri
    if ipv6:
        # The pjsua2 wheel, built without IPv6, can neither make an IPv6 Contact nor pick
        # an IPv6 transport by itself; the audio stays on 127.0.0.1.
        acfg.sipConfig.contactForced = f"<{uri}{';transport=tcp' if tcp else ''}>"
        acfg.sipConfig.transportId = 0  # the endpoint's one transport
    t = acfg.mediaConfig.transportConfig
    t.port = rtp_port
    t.portRange = rtp_range
    t.boundAddress = "127.0.0.1"
    t.publicAddress = "127.0.0.1"
    return acfg


def tone_generator(freq: int = 440, on_msec: int = 10_000, off_msec: int = 0) -> pj.ToneGenerator:
    """A PJSIP ToneGenerator playing ``freq`` Hz without end (a C port: no Python per frame),
    or bursts of it: ``on_msec`` of tone, ``off_msec`` of silence, over and over.

    Connect it to a call's audio with ``startTransmit``; one generator can feed every call.
    Keep it until the endpoint goes: it is never destroyed while the conference clock runs
    (ports leave the conference bridge asynchronously in pjsua2 2.15, pjproject #3928).
    """
    gen = pj.ToneGenerator()
    gen.createToneGenerator(8000, 1)
    tone = pj.ToneDesc()
    tone.freq1 = freq
    tone.freq2 = 0
    tone.on_msec = on_msec
    tone.off_msec = off_msec
    tones = pj.ToneDescVector()
    tones.append(tone)
    gen.play(tones, True)
    return gen
