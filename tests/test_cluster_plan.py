"""A cluster's ports, shares, worker settings and kamailio configuration: pure, no process."""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from voip import InvalidArgumentError
from voip.backends.pjsip.options import sip_options_from_args
from voip.cluster.kamailio import (
    KamailioMissing,
    dispatcher_list,
    find_kamailio,
    host_addresses,
    listen_lines,
    module_dirs,
    parse_destinations,
    parse_statistics,
    policy_defines,
    rate_window,
    render_config,
    scanner_pattern,
    tls_config,
    write_front,
)
from voip.cluster.shares import WORKER_ENV, plan_cluster, split_ports, worker_place_from
from voip.cluster.supervisor import exit_reason
from voip.cluster.worker import cluster_plan, worker_options
from voip.runner import build_parser
from voip.sipmsg import AllowList

JOINER = ("--listen", "192.0.2.20:5060")
"""A joining machine's listen address."""


def server(*argv: str):
    return sip_options_from_args(build_parser("server").parse_args(list(argv)), {})


def test_the_rtp_range_is_cut_into_even_shares_on_even_ports():
    assert split_ports(4000, 4999, 3) == [(4000, 4331), (4332, 4663), (4664, 4995)]
    assert split_ports(4001, 4024, 2) == [(4002, 4011), (4012, 4021)]  # 4022-4024 unused
    for n in range(1, 9):
        shares = split_ports(20000, 20099, n)
        assert all(lo % 2 == 0 and (hi - lo + 1) % 2 == 0 for lo, hi in shares)
        assert all(a[1] < b[0] for a, b in zip(shares, shares[1:], strict=False))
        assert shares[0][0] >= 20000 and shares[-1][1] <= 20099


def test_the_plan_counts_ports_from_the_listen_port():
    plan = plan_cluster(3, "127.0.0.1", 5070, (4000, 4999), 4)
    assert (plan.front_host, plan.front_port, plan.inner_port) == ("127.0.0.1", 5070, 6070)
    assert [w.listen for w in plan.workers] == [f"127.0.0.1:{p}" for p in (6071, 6072, 6073)]
    assert [w.index for w in plan.workers] == [1, 2, 3]
    assert plan.workers[2].rtp_ports == (4664, 4995)
    assert [w.siblings for w in plan.workers] == [(6071, 6072, 6073)] * 3
    assert worker_place_from({WORKER_ENV: plan.workers[1].to_env()}) == plan.workers[1]
    assert worker_place_from({}) is None


@pytest.mark.parametrize(
    "args, says",
    [
        (("--workers", "3", "--rtp-ports", "4000-4019"), "too small for --workers 3"),
        (("--workers", "2", "--listen", "127.0.0.1:0"), "fixed --listen port"),
        (("--workers", "2", "--listen", "127.0.0.1:65000"), "pass 65535"),
        (("--workers", "2", "--listen", "[::1]:5060", "--register", "sip:1@p"), r"\[::\]"),
        (("--workers", "2", "--rtp-ports", "5000-6999"), "holds the cluster's loopback"),
        (("--workers", "2", "--join", "sip:192.0.2.10", *JOINER, "--register", "sip:1@p"), "front"),
        (("--workers", "2", "--tls-listen", "0.0.0.0:6061", "--transport", "tls"), "loopback"),
        (("--workers", "2", "--tls-listen", "0.0.0.0:4100", "--transport", "tls"), "rtp-ports"),
        (("--join", "sip:192.0.2.10"), "give --workers N too"),
        (("--workers", "2", "--join", "sip:192.0.2.10"), "not 0.0.0.0"),
        (("--workers", "2", "--join", "sip:front.example", *JOINER), "IPv4 address, not a name"),
        (("--workers", "2", "--join", "sip:192.0.2.10", *JOINER, "--tls-cert", "c"), "TLS"),
        (("--workers", "2", "--join", "sip:192.0.2.10", *JOINER, "--srtp", "optional"), "keys"),
    ],
)
def test_what_a_cluster_refuses_is_said_at_once(args, says):
    with pytest.raises(InvalidArgumentError, match=says):
        cluster_plan(server(*args))


def test_workers_is_a_server_setting_from_every_layer():
    assert server().workers == 0
    assert server("--workers", "3").workers == 3
    args = build_parser("server").parse_args([])
    assert sip_options_from_args(args, {"VOIP_WORKERS": "2"}).workers == 2
    with pytest.raises(InvalidArgumentError, match="workers = '-1'"):
        server("--workers", "-1")


def test_a_worker_takes_udp_from_the_front_alone_on_its_place():
    opts = server("--workers", "3", "--listen", "0.0.0.0:5060", "--max-calls", "3")
    place = cluster_plan(opts).workers[0]
    w = worker_options(opts, place)
    assert (w.listen, w.transports, w.rtp_ports) == ("127.0.0.1:6061", ("udp",), (4000, 4331))
    assert w.allow.allows("127.0.0.1") and not w.allow.allows("192.0.2.1")
    assert (w.invite_rate, w.options_rate, w.workers, w.max_calls) == (0, 0, 0, 3)
    assert w.front_host == "0.0.0.0"
    assert w.outbound_proxy == "sip:127.0.0.1:6060;lr"  # calls out through the front
    assert not w.srtp_without_tls


def test_a_joined_machines_workers_listen_on_its_host_and_take_calls_from_the_front():
    opts = server("--workers", "2", *JOINER, "--join", "sip:192.0.2.10:5070")
    assert opts.join_host_port == ("192.0.2.10", 5070)
    plan = cluster_plan(opts)
    assert [w.uri for w in plan.workers] == ["sip:192.0.2.20:6061", "sip:192.0.2.20:6062"]
    assert worker_place_from({WORKER_ENV: plan.workers[1].to_env()}) == plan.workers[1]
    w = worker_options(opts, plan.workers[0])
    assert (w.listen, w.front_host, w.join, w.workers) == ("192.0.2.20:6061", "192.0.2.20", "", 0)
    assert w.allow.allows("192.0.2.10") and not w.allow.allows("127.0.0.1")
    assert w.outbound_proxy == "sip:192.0.2.10:5070;lr"


@pytest.mark.parametrize("uri", ["192.0.2.10", "sip:1@192.0.2.10", "sip:h;transport=tcp", "sip:"])
def test_join_takes_a_sip_uri_of_a_host_and_port(uri):
    with pytest.raises(InvalidArgumentError, match="sip:HOST"):
        server("--workers", "2", "--join", uri)


def test_only_loopback_may_join_a_front_unless_told():
    plan = plan_cluster(1, "127.0.0.1", 5060, (4000, 4999), 4)
    assert 'is_in_subnet("$si", "127.0.0.0/8")' in render_config(plan, server(), Path("."))
    told = server("--join-allow", "10.1.0.0/16,192.0.2.7")
    assert 'is_in_subnet("$si", "10.1.0.0/16,192.0.2.7/32")' in render_config(plan, told, Path("."))
    with pytest.raises(InvalidArgumentError, match="at least one"):
        server("--join-allow", "")


def test_a_worker_leaves_tls_to_the_front_and_trusts_its_srtp_keys():
    tls = ("--tls-cert", "c.pem", "--tls-key", "k.pem", "--srtp", "mandatory")
    opts = server("--workers", "2", "--listen", "0.0.0.0:5060", *tls, "--tls-ca", "ca.pem")
    w = worker_options(opts, cluster_plan(opts).workers[0])
    assert w.sip_transports == ("udp",) and (w.tls_cert, w.tls_key) == ("", "")
    assert w.srtp == "mandatory" and w.srtp_without_tls and w.tls_ca == "ca.pem"


def test_kamailios_configuration_is_rendered_whole(tmp_path):
    plan = plan_cluster(2, "0.0.0.0", 5060, (4000, 4999), 4)
    opts = server("--workers", "2", "--public-address", "203.0.113.5")
    text = render_config(plan, opts, tmp_path, addresses=lambda: ["127.0.0.1", "10.0.0.2"])
    assert not re.search(r"@[A-Z_]+@", text)  # every placeholder filled in
    # The workers' REGISTERs give the PBX the public address.
    assert 'subst_hf("Contact", "/@[^>;]+/@203.0.113.5:5060/", "a")' in text
    listen = [ln for ln in text.splitlines() if ln.startswith("listen=")]
    assert listen == [
        "listen=udp:127.0.0.1:5060",
        "listen=udp:10.0.0.2:5060 advertise 203.0.113.5:5060",
        "listen=tcp:127.0.0.1:5060",
        "listen=tcp:10.0.0.2:5060 advertise 203.0.113.5:5060",
        "listen=udp:127.0.0.1:6060",  # kamailio's side of the loopback
    ]
    # The workers' calls out leave from the front's first address beyond the loopback.
    assert "#!define OUT_UDP udp:10.0.0.2:5060\n#!define OUT_TCP tcp:10.0.0.2:5060" in text
    assert f'modparam("ctl", "binrpc", "unix:{tmp_path}/ctl.sock")' in text
    assert 'modparam("dispatcher", "ds_ping_interval", 2)' in text
    assert 'remove_hf_re("^X-Voip-");' in text  # the workers' own headers: never a caller's
    assert dispatcher_list(plan) == (
        "1 sip:127.0.0.1:6061 0 0 socket=udp:127.0.0.1:6060\n"
        "1 sip:127.0.0.1:6062 0 0 socket=udp:127.0.0.1:6060\n"
    )


def test_a_front_on_ipv6_listens_there_and_its_workers_stay_on_ipv4(tmp_path):
    tls = ("--tls-cert", "c.pem", "--tls-key", "k.pem")
    opts = server("--workers", "2", "--listen", "[::1]:5060", "--transport", "udp,tcp", *tls)
    plan = cluster_plan(opts)
    w = worker_options(opts, plan.workers[0])
    assert (w.listen, w.front_host) == ("127.0.0.1:6061", "::1")  # its audio: 127.0.0.1
    text = render_config(plan, opts, tmp_path, addresses=lambda: ["127.0.0.1", "::1"])
    listen = [ln for ln in text.splitlines() if ln.startswith("listen=")]
    assert listen == [
        "listen=udp:[::1]:5060",
        "listen=tcp:[::1]:5060",
        "listen=tls:[::1]:5061",
        "listen=udp:127.0.0.1:6060",
    ]
    # The workers call IPv4 addresses alone: a front on IPv6 alone refuses their calls.
    assert "#!define NO_IPV4_OUT" in text and "OUT_UDP" not in text.split("debug=")[0]


def test_a_front_on_both_families_listens_on_every_address_and_calls_out_on_ipv4(tmp_path):
    opts = server("--workers", "2", "--listen", "[::]:5060", "--public-address", "203.0.113.5")
    opts.transports = ("udp",)
    opts.allow = AllowList(["2001:db8::/32,10.0.0.0/8"])
    host = ["127.0.0.1", "10.0.0.2", "::1", "2001:db8::7"]
    text = render_config(cluster_plan(opts), opts, tmp_path, addresses=lambda: host)
    listen = [ln for ln in text.splitlines() if ln.startswith("listen=")]
    assert listen == [
        "listen=udp:127.0.0.1:5060",
        "listen=udp:10.0.0.2:5060 advertise 203.0.113.5:5060",  # IPv4's public address
        "listen=udp:[::1]:5060",
        "listen=udp:[2001:db8::7]:5060",
        "listen=udp:127.0.0.1:6060",
    ]
    assert "#!define OUT_UDP udp:10.0.0.2:5060" in text
    assert 'is_in_subnet("$si", "2001:db8::/32,10.0.0.0/8")' in text


def test_a_front_listening_on_a_name_advertises_the_public_address_there():
    plan = plan_cluster(1, "sip.example", 5060, (4000, 4999), 4)
    lines = listen_lines(plan, ("udp",), "203.0.113.5").splitlines()
    assert lines == ["listen=udp:sip.example:5060 advertise 203.0.113.5:5060"]


def test_the_hosts_ipv6_addresses_leave_out_the_link_local(tmp_path):
    table = tmp_path / "if_inet6"
    table.write_text(
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n"
        "20010db8000000000000000000000007 04 40 00 80     eth0\n"
    )
    assert host_addresses(table)[-2:] == ["::1", "2001:db8::7"]
    assert not any(":" in a for a in host_addresses(tmp_path / "none"))


def test_kamailio_accepts_the_configuration(tmp_path):
    kamailio = shutil.which("kamailio", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if kamailio is None:
        pytest.skip("kamailio is not installed (apt install kamailio)")
    plan = plan_cluster(3, "127.0.0.1", 13060, (20000, 20099), 4)
    everything = server(
        *("--workers", "3", "--scanner-user-agent", 'a.b]"^c', "--allow", "10.0.0.0/8,192.0.2.7"),
        *("--invite-rate", "0.5", "--call-rate", "30", "--options-rate", "0"),
        *("--tls-cert", "c.pem", "--tls-key", "k.pem", "--srtp", "optional"),
    )
    ipv6 = server("--workers", "3", "--listen", "[::1]:13060", "--allow", "::1,10.0.0.0/8")
    for opts in (server("--workers", "3"), everything, ipv6):
        cfg = write_front(cluster_plan(opts) if opts is ipv6 else plan, opts, tmp_path)
        check = subprocess.run([kamailio, "-c", "-f", str(cfg)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


def test_the_fronts_policy_comes_from_the_guards_settings(tmp_path):
    plan = plan_cluster(2, "127.0.0.1", 5060, (4000, 4999), 4)
    plain = render_config(plan, server("--workers", "2"), tmp_path)
    assert policy_defines(server("--workers", "2")) == [
        "#!define WITH_SCANNERS",
        "#!define INVITE_WINDOW 2",
        "#!define INVITE_LIMIT 10",
        "#!define OTHERS_WINDOW 2",
        "#!define OTHERS_LIMIT 10",
        "#!define CALL_WINDOW 2",
        "#!define CALL_LIMIT 40",
    ]
    assert '"INVITEs above 5/s (503)"' in plain and '"@' not in plain
    assert "new calls above 20/s in all (503)" in plain
    opts = server(
        *("--workers", "2", "--allow", "192.0.2.7,10.0.0.0/8"),
        *("--invite-rate", "0.5", "--options-rate", "0", "--call-rate", "0"),
        *("--tls-listen", "127.0.0.1:5071", "--tls-cert", "c.pem", "--tls-key", "k.pem"),
        *("--srtp", "mandatory", "--tls-ca", "ca.pem", "--tls-verify-client"),
    )
    opts.scanner_user_agents = ()  # none to drop: no WITH_SCANNERS
    assert policy_defines(opts) == [
        "#!define WITH_ALLOW",
        "#!define INVITE_WINDOW 4",  # the guard's burst of 2, at 0.5 a second
        "#!define INVITE_LIMIT 2",
        "#!define WITH_TLS",
        "#!define SRTP_NEEDS_TLS",
    ]
    text = render_config(plan, opts, tmp_path)
    assert 'is_in_subnet("$si", "192.0.2.7/32,10.0.0.0/8")' in text
    assert "listen=tls:127.0.0.1:5071" in text.splitlines()
    assert rate_window(5) == (2, 10) and rate_window(1) == (2, 2) and rate_window(2.5) == (2, 5)
    assert tls_config(opts).splitlines() == [
        "[server:default]",
        "method = TLSv1.2+",
        "certificate = c.pem",
        "private_key = k.pem",
        "verify_certificate = yes",
        "require_certificate = yes",
        "ca_list = ca.pem",
        "",
        # The workers' calls out over TLS: the far side's certificate verified.
        "[client:default]",
        "method = TLSv1.2+",
        "verify_certificate = yes",
        "require_certificate = yes",
        "ca_list = ca.pem",
    ]
    assert "#!define OUT_TLS tls:127.0.0.1:5071" in text


def test_the_front_verifies_servers_against_the_systems_cas_unless_told_not_to():
    tls = ("--tls-cert", "c.pem", "--tls-key", "k.pem")
    client = tls_config(server("--workers", "2", *tls)).split("[client:default]")[1]
    assert f"ca_list = {ssl.get_default_verify_paths().cafile}" in client
    assert "verify_certificate = yes" in client
    told = tls_config(server("--workers", "2", *tls, "--tls-no-verify-server"))
    assert "verify_certificate = no" in told.split("[client:default]")[1]


def test_the_fronts_scanner_pattern_holds_nothing_special():
    assert scanner_pattern(["Friendly-Scanner", "sip cli", 'a.b]"^c\\']) == (
        "friendly[-]scanner|sip cli|a[.]bc"
    )
    assert scanner_pattern([]) == ""


def test_without_kamailio_the_error_says_how_to_install_it(tmp_path):
    with pytest.raises(KamailioMissing, match="sudo apt install kamailio"):
        find_kamailio(str(tmp_path))


def fake_kamailio(tmp_path, modules: list[str]) -> str:
    """A directory with a ``kamailio`` whose ``-I`` names a module directory holding
    ``modules``, and a ``kamcmd``; the directory, as a PATH."""
    bin_dir, module_dir = tmp_path / "bin", tmp_path / "modules"
    bin_dir.mkdir()
    module_dir.mkdir()
    for module in modules:
        (module_dir / f"{module}.so").touch()
    for name, text in (
        ("kamailio", f"echo 'Default paths to modules: {module_dir}'"),
        ("kamcmd", "true"),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\n{text}\n")
        (bin_dir / name).chmod(0o755)
    return str(bin_dir)


def test_tls_without_kamailios_tls_module_says_which_package_has_it(tmp_path):
    path = fake_kamailio(tmp_path, ["dispatcher", "tm"])
    assert module_dirs(f"{path}/kamailio") == [tmp_path / "modules"]
    find_kamailio(path)  # no TLS asked: no module looked for
    with pytest.raises(KamailioMissing, match="tls.so.*`sudo apt install kamailio-tls-modules`"):
        find_kamailio(path, tls=True)
    (tmp_path / "modules" / "tls.so").touch()
    assert find_kamailio(path, tls=True).kamailio == f"{path}/kamailio"


def test_kamailios_statistics_are_read_as_prometheus_names():
    text = "core:rcv_requests = 12\nsl:1xx_replies = 3\ntmx:UAS_transactions = 2\nerror: x\n"
    assert parse_statistics(text) == {
        "kamailio_core_rcv_requests": 12,
        "kamailio_sl_1xx_replies": 3,
        "kamailio_tmx_UAS_transactions": 2,
    }
    listed = (
        "DEST: {\n URI: sip:127.0.0.1:6061\n FLAGS: AP\n}\n"
        "DEST: {\n URI: sip:10.0.0.2:6061\n FLAGS: IP\n}\n"
    )
    assert parse_destinations(listed) == {"sip:127.0.0.1:6061": True, "sip:10.0.0.2:6061": False}


def test_how_a_child_ended_is_said_in_words():
    assert exit_reason(-9) == "killed by SIGKILL"
    assert exit_reason(2) == "exited with status 2"
    assert exit_reason(-200) == "killed by signal 200"
