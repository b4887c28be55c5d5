#!/usr/bin/env python3
"""A plain pjsua2 caller, independent of the voip package: the far end in SIP tests.

It calls URI (from --sip-ip: 127.0.0.1, or ::1 over IPv6), plays --play into the call,
records what it hears to --record, sends --dtmf digits (RFC 4733 or SIP INFO) at
--dtmf-at seconds after the answer, and hangs up after --duration seconds unless the
other side does first. With --refuse-transfer it declines a REFER (603); "transfers" in
its summary lists the Refer-To URIs it was asked to call. With --transfer-to it transfers
the call itself (REFER) at --transfer-at seconds; "transfer_status" lists the statuses
PJSIP reported for it. The last line it prints is a JSON summary: {"status": final SIP
code, "answered": bool, "seconds": call length, "media_at": time.monotonic() when
its audio started (--play's start and --record's, comparable between processes)}.
"""

import argparse
import json
import sys
import time

import pjsua2 as pj
from pjsua_endpoint import account_config, start_endpoint


class Call(pj.Call):
    def __init__(
        self, acc, rec_path, play_path, refuse_transfer=False, call_id=pj.PJSUA_INVALID_ID
    ):
        super().__init__(acc, call_id)
        self.refuse_transfer = refuse_transfer
        self.transfers = []
        self.transfer_status = []
        self.state = None
        self.status = 0
        self.answered_at = None
        self.ended_at = None
        self.recorder = None
        self.player = None
        self.media_at = None
        self.rec_path = rec_path
        self.play_path = play_path

    def onCallState(self, prm):
        info = self.getInfo()
        self.state = info.state
        self.status = info.lastStatusCode
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self.answered_at is None:
            self.answered_at = time.monotonic()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.ended_at = time.monotonic()

    def onCallTransferStatus(self, prm):
        self.transfer_status.append(prm.statusCode)

    def onCallTransferRequest(self, prm):
        self.transfers.append(prm.dstUri)
        if self.refuse_transfer:
            prm.statusCode = 603

    def onCallMediaState(self, prm):
        info = self.getInfo()
        for mi in info.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                media = self.getAudioMedia(mi.index)
                if self.media_at is None:
                    self.media_at = time.monotonic()
                if self.rec_path and self.recorder is None:
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(self.rec_path)
                    media.startTransmit(self.recorder)
                if self.play_path and self.player is None:
                    self.player = pj.AudioMediaPlayer()
                    self.player.createPlayer(self.play_path, pj.PJMEDIA_FILE_NO_LOOP)
                    self.player.startTransmit(media)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("uri")
    p.add_argument("--port", type=int, default=5090, help="local SIP port")
    p.add_argument("--rtp-port", type=int, default=6000)
    p.add_argument("--play")
    p.add_argument("--record")
    p.add_argument("--dtmf", default="")
    p.add_argument(
        "--dtmf-method",
        choices=["rfc4733", "info", "info-dtmf"],
        default="rfc4733",
        help="info: application/dtmf-relay; info-dtmf: application/dtmf, one INFO a key",
    )
    p.add_argument("--dtmf-at", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--tcp", action="store_true")
    p.add_argument("--header", action="append", default=[], help="'Name: value' for the INVITE")
    p.add_argument("--name", default="", help="display name in From")
    p.add_argument("--sip-ip", default="127.0.0.1", help="local SIP address (::1: over IPv6)")
    p.add_argument("--refuse-transfer", action="store_true", help="answer a REFER with 603")
    p.add_argument("--transfer-to", default="", help="REFER the other side to this URI")
    p.add_argument("--transfer-at", type=float, default=1.0)
    args = p.parse_args()

    # PJSIP's default codecs: the offer of a stock PJSIP phone, some of which voip refuses.
    ep = start_endpoint(args.port, tcp=args.tcp, log_level=1, codecs=None, host=args.sip_ip)
    acc = pj.Account()
    acc.create(
        account_config(
            "peer", args.port, args.rtp_port, 10, name=args.name, host=args.sip_ip, tcp=args.tcp
        )
    )

    call = Call(acc, args.record, args.play, args.refuse_transfer)
    prm = pj.CallOpParam(True)
    for line in args.header:
        h = pj.SipHeader()
        h.hName, _, value = line.partition(":")
        h.hValue = value.strip()
        prm.txOption.headers.append(h)
    uri = args.uri + (";transport=tcp" if args.tcp else "")
    call.makeCall(uri, prm)
    start = time.monotonic()
    sent = False
    referred = False
    while call.ended_at is None and time.monotonic() - start < args.duration + 10:
        ep.libHandleEvents(10)
        now = time.monotonic()
        if call.answered_at is not None:
            if args.transfer_to and not referred and now - call.answered_at >= args.transfer_at:
                call.xfer(args.transfer_to, pj.CallOpParam(True))
                referred = True
            if args.dtmf and not sent and now - call.answered_at >= args.dtmf_at:
                if args.dtmf_method == "info-dtmf":
                    for key in args.dtmf:
                        req = pj.CallSendRequestParam()
                        req.method = "INFO"
                        req.txOption.contentType = "application/dtmf"
                        req.txOption.msgBody = key
                        call.sendRequest(req)
                        for _ in range(20):  # one INFO at a time, as phones send them
                            ep.libHandleEvents(5)
                    sent = True
                    continue
                d = pj.CallSendDtmfParam()
                d.digits = args.dtmf
                d.method = (
                    pj.PJSUA_DTMF_METHOD_RFC2833
                    if args.dtmf_method == "rfc4733"
                    else pj.PJSUA_DTMF_METHOD_SIP_INFO
                )
                call.sendDtmf(d)
                sent = True
            if now - call.answered_at >= args.duration:
                call.hangup(pj.CallOpParam())
                break
    end = time.monotonic() + 2
    while call.ended_at is None and time.monotonic() < end:
        ep.libHandleEvents(10)
    answered = call.answered_at is not None
    seconds = ((call.ended_at or time.monotonic()) - call.answered_at) if answered else 0
    status = call.status
    media_at = call.media_at
    transfers = call.transfers
    transfer_status = call.transfer_status
    if call.recorder is not None:
        del call.recorder
    if call.player is not None:
        del call.player
    del call
    ep.libHandleEvents(50)
    acc.shutdown()
    del acc
    ep.libDestroy()
    summary = {"status": status, "answered": answered, "seconds": round(seconds, 3)}
    details = {"transfers": transfers, "transfer_status": transfer_status, "media_at": media_at}
    print(json.dumps({**summary, **details}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
