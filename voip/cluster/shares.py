"""Where each worker of a cluster listens: ports and RTP shares, from the settings. Pure.

The front (kamailio) takes the listen address, as one process would. Its side of the
loopback, from which it reaches the workers, is the listen port + 1000; worker ``i``
(from 1) listens on the listen port + 1000 + ``i``, on 127.0.0.1, UDP only (on a machine
that joins a front elsewhere, ``--join``, on its listen host), and knows its siblings'
ports (rooms and queues spanning workers call between them: :mod:`.places`). The RTP range
is cut into equal shares of an even number of ports, each starting on an even port (RTP
on even ports, RTCP on the odd one above).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import InvalidArgumentError

__all__ = [
    "FRONT_OFFSET",
    "LOOPBACK",
    "ClusterPlan",
    "WorkerPlace",
    "plan_cluster",
    "split_ports",
    "WORKER_ENV",
    "worker_place_from",
]

FRONT_OFFSET = 1000
"""kamailio's loopback port is the listen port + this; worker ``i``'s is one more per ``i``."""
LOOPBACK = "127.0.0.1"
"""Where the workers listen and kamailio reaches them from."""
WORKER_ENV = "VOIP_CLUSTER_WORKER"
"""Set by the supervisor in each worker's environment: its :class:`WorkerPlace` as JSON."""
PORTS_PER_CALL = 2


@dataclass(frozen=True)
class WorkerPlace:
    """One worker's place: its number (from 1), its SIP port on ``sip_host``, its share
    of the RTP ports, the host kamailio takes callers on (where its RTP is bound), the
    SIP ports of every worker of the machine, itself included, worker 1's first, and a
    directory they share."""

    index: int
    sip_port: int
    rtp_ports: tuple[int, int]
    front_host: str
    sip_host: str = LOOPBACK
    """:data:`LOOPBACK` beside its front; a joined machine's (``--join``) listen host."""
    siblings: tuple[int, ...] = ()
    shared: str = ""
    """A directory the workers of the machine share (rooms' and queues' state, their
    pids: :mod:`.places`), made by the supervisor; empty: none."""

    @property
    def listen(self) -> str:
        return f"{self.sip_host}:{self.sip_port}"

    @property
    def uri(self) -> str:
        return f"sip:{self.sip_host}:{self.sip_port}"

    def to_env(self) -> str:
        return json.dumps(
            {
                "index": self.index,
                "sip_port": self.sip_port,
                "rtp_ports": list(self.rtp_ports),
                "front_host": self.front_host,
                "sip_host": self.sip_host,
                "siblings": list(self.siblings),
                "shared": self.shared,
            }
        )


@dataclass(frozen=True)
class ClusterPlan:
    """The front's addresses and every worker's place."""

    front_host: str
    front_port: int
    inner_port: int
    """kamailio's port on :data:`LOOPBACK`, from which it reaches the workers."""
    workers: tuple[WorkerPlace, ...]


def split_ports(first: int, last: int, n: int) -> list[tuple[int, int]]:
    """``first``-``last`` cut into ``n`` equal shares of an even number of ports, each
    starting on an even port (what is left over at the end is unused)."""
    base = first + first % 2
    size = (last - base + 1) // n // 2 * 2
    return [(base + i * size, base + (i + 1) * size - 1) for i in range(n)]


def plan_cluster(
    workers: int,
    host: str,
    port: int,
    rtp_ports: tuple[int, int],
    max_calls: int,
    sip_host: str = LOOPBACK,
) -> ClusterPlan:
    """Where the front and ``workers`` workers listen for the listen address
    ``host``:``port`` (the workers' SIP on ``sip_host``); raises
    :class:`InvalidArgumentError` saying what does not fit."""
    if workers < 1:
        raise InvalidArgumentError(f"workers = {workers}: a cluster needs at least 1 worker")
    if port == 0:
        raise InvalidArgumentError(
            "--workers needs a fixed --listen port (not 0): the workers' ports are"
            f" counted from it (the listen port + {FRONT_OFFSET} and up)"
        )
    inner = port + FRONT_OFFSET
    if inner + workers > 65535:
        raise InvalidArgumentError(
            f"--workers {workers} with --listen port {port}: the workers' ports"
            f" ({inner}-{inner + workers}) pass 65535; listen on a lower port"
        )
    first, last = rtp_ports
    need = PORTS_PER_CALL * max_calls
    shares = split_ports(first, last, workers)
    if shares[0][1] - shares[0][0] + 1 < need:
        raise InvalidArgumentError(
            f"--rtp-ports {first}-{last} is too small for --workers {workers}: each worker"
            f" needs at least {need} ports ({max_calls} calls of {PORTS_PER_CALL}), so"
            f" {workers * need + first % 2} in all; give a larger range"
        )
    if first <= inner + workers and inner <= last:
        raise InvalidArgumentError(
            f"--rtp-ports {first}-{last} holds the cluster's loopback SIP ports"
            f" ({inner}-{inner + workers}: the listen port + {FRONT_OFFSET} and up);"
            " move one or the other"
        )
    ports = tuple(inner + i + 1 for i in range(workers))
    places = tuple(
        WorkerPlace(i + 1, ports[i], share, host, sip_host, ports) for i, share in enumerate(shares)
    )
    return ClusterPlan(host, port, inner, places)


def worker_place_from(environ: Mapping[str, str]) -> WorkerPlace | None:
    """This process's place in a cluster (from :data:`WORKER_ENV`), or None: not a worker."""
    text = environ.get(WORKER_ENV)
    if not text:
        return None
    try:
        data = json.loads(text)
        first, last = data["rtp_ports"]
        return WorkerPlace(
            int(data["index"]),
            int(data["sip_port"]),
            (int(first), int(last)),
            data["front_host"],
            data["sip_host"],
            tuple(int(port) for port in data.get("siblings", ())),
            str(data.get("shared", "")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgumentError(
            f"{WORKER_ENV} = {text!r} is not a worker's place (set by the supervisor): {exc}"
        ) from None
