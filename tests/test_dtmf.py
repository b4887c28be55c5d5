"""DTMF collection: the pure collector and getDTMF on a call."""

import asyncio

import pytest

from voip import CallEndedError, InvalidArgumentError, VoipError
from voip.bridge import MediaBridge
from voip.call import Call, CallInfo
from voip.dtmf import DTMFCollector, parse_filter, parse_key_script


def test_collects_n_keys():
    c = DTMFCollector()
    req, done = c.request(n=3)
    assert done is None
    assert c.push("1") is None and c.push("2") is None
    assert c.push("3") == (req, "123")
    assert c.pending is None


def test_filter_skips_other_keys():
    c = DTMFCollector()
    c.request(n=2, filter="0123456789")
    assert c.push("*") is None and c.push("#") is None
    assert c.push("4") is None
    assert c.push("5")[1] == "45"


def test_type_ahead_is_served_in_order_and_filtered():
    c = DTMFCollector()
    for k in "1*23":
        c.push(k)
    _, done = c.request(n=2, filter="0123456789")
    assert done == "12"
    _, done = c.request(n=1)
    assert done == "3"


def test_type_ahead_is_bounded_oldest_dropped():
    c = DTMFCollector(type_ahead=4)
    for k in "123456":
        c.push(k)
    assert c.flush() == "3456"
    assert c.flush() == ""


def test_lowercase_abcd_accepted():
    c = DTMFCollector()
    c.push("a")
    assert c.request(n=1, filter="abcd")[1] == "A"


def test_on_first_called_once_with_first_accepted_key():
    seen = []
    c = DTMFCollector()
    c.request(n=3, filter="0123456789", on_first=seen.append)
    for k in "#12":
        c.push(k)
    assert seen == ["1"]
    c.push("3")
    assert seen == ["1"]


def test_on_first_fires_for_type_ahead():
    seen = []
    c = DTMFCollector()
    c.push("9")
    assert c.request(n=2, on_first=seen.append)[1] is None
    assert seen == ["9"]


def test_abandoned_request_gives_its_keys_back():
    c = DTMFCollector()
    req, _ = c.request(n=4)
    c.push("1")
    c.push("2")
    c.abandon(req)
    c.push("3")
    assert c.request(n=3)[1] == "123"


@pytest.mark.parametrize(
    "bad, word",
    [("12x", "'x'"), (["1", "22"], "'22'"), ("", "empty"), ("E", "'E'"), ([1, 2], "1")],
)
def test_unknown_filter_keys_are_named(bad, word):
    with pytest.raises(InvalidArgumentError) as err:
        parse_filter(bad)
    assert word in str(err.value)


@pytest.mark.parametrize("n", [0, -1, 1.5, "4", True])
def test_bad_n_rejected(n):
    with pytest.raises(InvalidArgumentError, match="n is a whole number of keys, 1 or more"):
        DTMFCollector().request(n=n)


def test_key_script_timing():
    assert parse_key_script("ww12") == [(1.0, "1"), (1.2, "2")]
    assert parse_key_script("1w#") == [(0.0, "1"), (0.7, "#")]
    with pytest.raises(InvalidArgumentError, match="character 2"):
        parse_key_script("1x")


# -- getDTMF on a Call ---------------------------------------------------------------------


def make_call() -> Call:
    loop = asyncio.get_running_loop()
    return Call(MediaBridge(loop), CallInfo('"Ann" <sip:123@x>', "123", "Ann"))


async def test_getdtmf_resolves_on_keys():
    call = make_call()
    fut = call.getDTMF(n=2)
    call.feed_dtmf("4")
    assert not fut.done()
    call.feed_dtmf("2")
    assert await fut == "42"


async def test_keys_pressed_before_getdtmf_are_kept():
    call = make_call()
    call.feed_dtmf("7")
    call.feed_dtmf("8")
    assert await call.getDTMF(n=2) == "78"


async def test_flush_discards_type_ahead():
    call = make_call()
    call.feed_dtmf("1")
    assert call.flushDTMF() == "1"
    fut = call.getDTMF()
    call.feed_dtmf("2")
    assert await fut == "2"


async def test_wait_for_timeout_raises_and_keeps_partial_keys():
    call = make_call()
    call.feed_dtmf("5")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(call.getDTMF(n=3), 0.05)
    call.feed_dtmf("6")
    call.feed_dtmf("7")
    assert await asyncio.wait_for(call.getDTMF(n=3), 1) == "567"


async def test_second_getdtmf_while_waiting_is_an_error():
    call = make_call()
    fut = call.getDTMF()
    with pytest.raises(VoipError, match="already waiting"):
        call.getDTMF()
    fut.cancel()
    await asyncio.sleep(0)
    call.feed_dtmf("1")
    assert await call.getDTMF() == "1"


async def test_on_first_barge_in_and_errors_in_it_are_logged(caplog):
    call = make_call()
    prompt = call.playTone(500, 5)

    def on_first(key):
        prompt.cancel()
        raise RuntimeError("oops in on_first")

    fut = call.getDTMF(n=2, on_first=on_first)
    call.feed_dtmf("1")
    call.feed_dtmf("2")
    assert await fut == "12"
    assert await prompt is False
    assert "oops in on_first" in caplog.text


async def test_call_end_fails_waiting_getdtmf():
    call = make_call()
    fut = call.getDTMF(n=2)
    call.feed_dtmf("4")
    call.mark_ended()
    with pytest.raises(CallEndedError):
        await fut
    with pytest.raises(CallEndedError):
        call.getDTMF()
    # The request is over, not left pending: the key typed for it is back, as on a time-out.
    assert call.dtmf.pending is None
    assert call.flushDTMF() == "4"
