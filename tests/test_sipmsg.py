"""Pure SIP helpers: no sockets."""

import pytest

from voip import InvalidArgumentError
from voip.sipmsg import AllowList, info_dtmf_keys, parse_headers
from voip.sipuri import join_hostport, parse_name_addr, split_hostport

INVITE = (
    "INVITE sip:app@127.0.0.1:5062 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK1\r\n"
    "v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK2\r\n"
    'f: "Ann \\"A\\" Smith" <sip:5551234@pbx.example>;tag=abc\r\n'
    "To: <sip:app@127.0.0.1:5062>\r\n"
    "X-Account-Id: 42\r\n"
    "Subject: a folded\r\n"
    "  header\r\n"
    "garbage line without colon\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
    "X-Not-A-Header: body\r\n"
)


def test_headers_case_insensitive_compact_folded_repeated():
    h = parse_headers(INVITE)
    assert h["x-account-id"] == "42" and h["X-ACCOUNT-ID"] == "42"
    assert h["From"].startswith('"Ann')  # the compact "f" is expanded
    assert h["Via"].count("SIP/2.0/UDP") == 2  # repeated headers are joined
    assert h["Subject"] == "a folded header"
    assert "X-Not-A-Header" not in h  # the body is not read
    assert h.get("missing") is None


@pytest.mark.parametrize(
    "value, expected",
    [
        (
            '"Ann \\"A\\" Smith" <sip:5551234@pbx>;tag=1',
            ('Ann "A" Smith', "sip:5551234@pbx", "5551234"),
        ),
        (
            "Bob <sip:bob@host:5060;transport=tcp>",
            ("Bob", "sip:bob@host:5060;transport=tcp", "bob"),
        ),
        ("<sip:+15551234@host>", ("", "sip:+15551234@host", "+15551234")),
        ("sip:alice@example.com;tag=9", ("", "sip:alice@example.com", "alice")),
        ("<sip:example.com>", ("", "sip:example.com", "")),
        ("<tel:+4930123>", ("", "tel:+4930123", "+4930123")),
        ("", ("", "", "")),
    ],
)
def test_name_addr(value, expected):
    assert parse_name_addr(value) == expected


def test_hostport():
    assert split_hostport("127.0.0.1:5062", 5060) == ("127.0.0.1", 5062)
    assert split_hostport("[::1]:5070", 5060) == ("::1", 5070)
    assert split_hostport("pbx.example", 5060) == ("pbx.example", 5060)
    with pytest.raises(InvalidArgumentError, match="port"):
        split_hostport("host:99999", 5060)


@pytest.mark.parametrize(
    "text, host, port",
    [
        ("[::]:5060", "::", 5060),
        ("[::1]:5062", "::1", 5062),
        ("[2001:db8::5]", "2001:db8::5", 5060),
        ("::", "::", 5060),  # without brackets a colon cannot be the port's
        ("0.0.0.0:5060", "0.0.0.0", 5060),
    ],
)
def test_hostport_round_trip(text, host, port):
    assert split_hostport(text, 5060) == (host, port)
    assert split_hostport(join_hostport(host, port), 0) == (host, port)


def test_join_hostport_brackets_ipv6_only():
    assert join_hostport("::1", 5062) == "[::1]:5062"
    assert join_hostport("127.0.0.1", 5062) == "127.0.0.1:5062"
    assert join_hostport("pbx.example", 5060) == "pbx.example:5060"


def test_allow_list():
    allow = AllowList(["192.0.2.0/24", "198.51.100.7, 2001:db8::/32"])
    assert allow.allows("192.0.2.99:5060") and allow.allows("198.51.100.7")
    assert allow.allows("[2001:db8::1]:5060")
    assert not allow.allows("203.0.113.1:5060") and not allow.allows("not-an-ip")
    assert AllowList().allows("203.0.113.1")  # empty: everyone
    with pytest.raises(InvalidArgumentError, match="10.0.0.300"):
        AllowList(["10.0.0.300"])


def test_info_dtmf_keys():
    head = "INFO sip:a@b SIP/2.0\r\nCall-ID: x\r\n"
    assert info_dtmf_keys(head + "Content-Type: application/dtmf\r\n\r\n5\r\n") == "5"
    assert info_dtmf_keys(head + "c: application/DTMF;x=y\r\n\r\n#") == "#"
    relay = head + "Content-Type: application/dtmf-relay\r\n\r\nSignal=5\r\nDuration=160"
    assert info_dtmf_keys(relay) == ""  # PJSIP reads that one itself
    assert info_dtmf_keys(head + "\r\n") == ""
