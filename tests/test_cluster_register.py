"""``--workers`` with ``--register``: the workers register the front's address with a
kamailio registrar (tests/kamailio.py), through the front, and the calls it routes there
reach a worker and are heard right; on SIGTERM the binding goes."""

from __future__ import annotations

from .test_cluster import cluster
from .test_register import TONES_APP, call_through, kamailio, wait_for_log

__all__ = ["kamailio"]  # test_register's fixture: pytest finds it here by its name


def test_workers_register_the_fronts_address_and_take_the_calls_routed_there(tmp_path, kamailio):
    args = ("--register", kamailio.aor("1001"), "--password", "secret")
    with cluster(tmp_path, TONES_APP, 2, *args) as front:
        contacts = kamailio.wait_for_contact("1001", 10)
        # One binding, the front's listen address, however many workers refresh it.
        assert [c.split(";")[0] for c in contacts] == [f"sip:1001@127.0.0.1:{front.port}"]
        assert wait_for_log(front, f"registered as {kamailio.aor('1001')}", 5)
        call_through(kamailio, tmp_path / "heard.wav")
        assert wait_for_log(front, "call ended", 5)
    assert "HANDLER RAN for peer" in front.log
    assert f"TEST relay INVITE to sip:1001@127.0.0.1:{front.port}" in kamailio.log
    assert kamailio.contacts("1001") == []
