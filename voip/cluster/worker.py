"""A cluster's settings: what the supervisor refuses, and what a worker runs with.

Both start from the :class:`~voip.backends.pjsip.options.SipOptions` the user gave (every
layer: TOML, environment, command line). The workers re-read the same layers (they are
started with the same arguments and environment) and :func:`worker_options` then moves
them to their place: SIP over UDP on the loopback (a joined machine's: its listen host),
from kamailio alone.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from ..backends.pjsip.options import SipOptions
from ..errors import InvalidArgumentError
from ..sipmsg import AllowList
from ..sipuri import join_hostport
from .shares import FRONT_OFFSET, LOOPBACK, ClusterPlan, WorkerPlace, plan_cluster

__all__ = ["check_join", "cluster_plan", "front_of", "worker_options"]


def cluster_plan(opts: SipOptions) -> ClusterPlan:
    """The plan for ``opts`` (``workers`` > 0); raises :class:`InvalidArgumentError` for
    settings a cluster does not take yet, and for ports that do not fit."""
    host, port = opts.host_port
    if opts.join:
        check_join(opts)
    if opts.register and ":" in host and host != "::":
        raise InvalidArgumentError(
            f"--register with --workers on {host} alone: the workers register over IPv4"
            " (this PJSIP build has no IPv6 calls out), through the front, which then has"
            " no IPv4 address; listen on [::] (IPv4 and IPv6) or an IPv4 address"
        )
    sip_host = host if opts.join else LOOPBACK
    plan = plan_cluster(opts.workers, host, port, opts.rtp_ports, opts.max_calls, sip_host)
    if "tls" in opts.sip_transports:
        tls_port = opts.tls_host_port[1]
        if plan.inner_port <= tls_port <= plan.workers[-1].sip_port:
            raise InvalidArgumentError(
                f"--tls-listen port {tls_port} is one of the cluster's loopback SIP ports"
                f" ({plan.inner_port}-{plan.workers[-1].sip_port}); choose another"
            )
        first, last = opts.rtp_ports
        if first <= tls_port <= last:
            raise InvalidArgumentError(
                f"--tls-listen port {tls_port} is in --rtp-ports {first}-{last}; move one"
            )
    return plan


def check_join(opts: SipOptions) -> None:
    """Raise :class:`InvalidArgumentError` for ``join`` settings that cannot work."""
    if not opts.workers:
        raise InvalidArgumentError(
            f"--join {opts.join} runs this machine's workers for a front elsewhere: give"
            " --workers N too"
        )
    host = opts.host_port[0]
    if host in ("", "0.0.0.0") or ":" in host:
        raise InvalidArgumentError(
            f"--join needs --listen with this machine's IPv4 address as the front reaches it"
            f" (not {host or 'empty'}): its workers listen there, and the front only lets"
            " a machine join with the address its request comes from"
        )
    front = opts.join_host_port[0]
    try:
        ipaddress.IPv4Address(front)
    except ValueError:
        raise InvalidArgumentError(
            f"--join {opts.join}: give the front's IPv4 address, not a name (its workers"
            " take calls from that address alone)"
        ) from None
    if opts.register:
        raise InvalidArgumentError(
            "--join with --register: the front's workers register the front's address;"
            " give --register to the front's supervisor, not to the joining one"
        )
    if "tls" in opts.sip_transports:
        raise InvalidArgumentError(
            "--join with TLS: callers' TLS ends at the front, whose certificate it is;"
            " give --tls-cert to the front's supervisor, not to the joining one"
        )
    if opts.srtp != "off" and not opts.srtp_without_tls:
        raise InvalidArgumentError(
            f"--join with --srtp {opts.srtp}: the front would pass each call's SRTP keys to"
            " this machine's workers over plain UDP, readable on the network between the"
            " two; keep SRTP calls on the front's own workers, or add --srtp-without-tls"
            " if that network is private (a VPN)"
        )


def front_of(opts: SipOptions) -> tuple[str, int]:
    """Where a worker reaches its front: kamailio's loopback side (the listen port +
    :data:`~.shares.FRONT_OFFSET`), or the front a machine joined."""
    if opts.join:
        return opts.join_host_port
    return LOOPBACK, opts.host_port[1] + FRONT_OFFSET


def worker_options(opts: SipOptions, place: WorkerPlace) -> SipOptions:
    """``opts`` as worker ``place`` runs them: SIP over UDP on its place's port, taken
    from kamailio alone (its allow-list; no per-address rates, every call coming from the
    front, which applies them; scanners dropped by the front), its share of the RTP ports
    bound on the front's host, and no cluster of its own; its metrics (with ``--metrics``)
    are labelled with its index and served by the supervisor.

    TLS is the front's: the worker opens no TLS listener (its certificate is kamailio's),
    and with ``--srtp`` it takes SDES keys over its UDP hop from kamailio, the loopback,
    which it trusts as it trusts nothing else: the front refuses calls with SRTP that do
    not come over TLS (406), as a lone server does.

    Its own calls out go through the front (``outbound_proxy``, :func:`front_of`), which
    relays them from its public address (over TLS for a ``sips:`` target, verifying its
    certificate, when the front has TLS; refused when it has none). With
    ``register``, its REGISTERs go the same way, and the front puts its own public
    address in their Contact."""
    return dataclasses.replace(
        opts,
        listen=place.listen,
        transports=("udp",),
        rtp_ports=place.rtp_ports,
        # From the front alone (its loopback side, or the front a machine joined), and
        # from the sibling workers of this machine (voip.cluster.places).
        allow=AllowList(tuple(dict.fromkeys((front_of(opts)[0], place.sip_host)))),
        invite_rate=0.0,
        options_rate=0.0,
        # Dropped by the front: a worker dropping one would look dead to kamailio.
        scanner_user_agents=(),
        tls_listen="",
        tls_cert="",
        tls_key="",
        tls_verify_client=False,
        srtp_without_tls=opts.srtp_without_tls or opts.srtp != "off",
        workers=0,
        join="",
        outbound_proxy=f"sip:{join_hostport(*front_of(opts))};lr",
        front_host=place.front_host,
        metrics="",
        metrics_worker=str(place.index) if opts.metrics else "",
    )
