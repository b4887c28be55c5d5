"""The pjsua2 endpoint settings the benchmark's caller and bare answerer share.

They match the media settings of voip's own endpoint (voip/backends/pjsip/stack.py), so
that the only difference between the app and the bare answerer is voip itself.
"""

from __future__ import annotations

import pjsua2 as pj

CODECS = {"PCMU/8000": 255, "PCMA/8000": 254, "G722/16000": 253}


def start_endpoint(port: int) -> pj.Endpoint:
    """A pjsua2 endpoint on 127.0.0.1:``port`` (UDP), PJSIP run by the caller's thread."""
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.maxCalls = 4
    cfg.logConfig.level = 0
    cfg.logConfig.consoleLevel = 0
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
    tc.boundAddress = "127.0.0.1"
    tc.publicAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
    for info in ep.codecEnum2():
        cid = info.codecId
        ep.codecSetPriority(cid, next((p for k, p in CODECS.items() if cid.startswith(k)), 0))
    ep.libStart()
    return ep


def account_config(user: str, port: int, rtp_port: int, rtp_range: int) -> pj.AccountConfig:
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{user}@127.0.0.1:{port}"
    t = acfg.mediaConfig.transportConfig
    t.port = rtp_port
    t.portRange = rtp_range
    t.boundAddress = "127.0.0.1"
    t.publicAddress = "127.0.0.1"
    return acfg


def tone_generator(freq: int = 440) -> pj.ToneGenerator:
    """A PJSIP ToneGenerator playing ``freq`` Hz without end (a C port: no Python per frame).

    Connect it to a call's audio with ``startTransmit``; one generator can feed every call.
    Keep it until the endpoint goes: it is never destroyed while the conference clock runs
    (ports leave the conference bridge asynchronously in pjsua2 2.15, pjproject #3928).
    """
    gen = pj.ToneGenerator()
    gen.createToneGenerator(8000, 1)
    tone = pj.ToneDesc()
    tone.freq1 = freq
    tone.freq2 = 0
    tone.on_msec = 10_000
    tone.off_msec = 0
    tones = pj.ToneDescVector()
    tones.append(tone)
    gen.play(tones, True)
    return gen
