"""``runVoipClient``: command-line options -> backend -> calls.

The same script runs in the simulator (the default) and, with ``--sip``, on a server.
Options come from the command line, preceded by those in the ``VOIP_OPTIONS``
environment variable (for scripts started by something that cannot pass arguments);
with ``--sip`` the SIP settings also come from ``VOIP_<SETTING>`` variables and a
``--config`` TOML file (:mod:`voip.backends.pjsip.options`).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Literal

from .backends.base import Backend
from .backends.pjsip.options import SipOptions, add_sip_arguments, sip_options_from_args
from .backends.sim import DEFAULT_CALLER, SimBackend, SimOptions
from .caller import CallerScript
from .cluster.shares import worker_place_from
from .cluster.worker import worker_options
from .errors import InvalidArgumentError, VoipError
from .lifecycle import Handler, check_handler
from .runtime import LOG_LEVELS, collecting, configure_logging, run_loop
from .settings import add_arguments, flags_given, resolve

__all__ = ["runVoipClient", "build_parser", "ENV_OPTIONS", "AppRole", "watch_runs"]

log = logging.getLogger(__name__)

ENV_OPTIONS = "VOIP_OPTIONS"

AppRole = Literal["app", "server"]
"""Which options an app's parser offers: ``app`` the simulator's and, for ``--sip``, the
server's; ``server`` only the server's (``--sip`` given, or ``voip serve``)."""

_runs: ContextVar[list[Handler] | None] = ContextVar("voip_app_runs", default=None)


def add_log_level(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=LOG_LEVELS,
        help="how much to log (default INFO)",
    )


def build_parser(role: AppRole = "app", prog: str | None = None) -> argparse.ArgumentParser:
    """The options of a voip app: a simulated call's (``app``), and the SIP server's."""
    p = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description=(
            "Run this voip app on a simulated call (microphone, speaker, keyboard), "
            "or with --sip answer real SIP calls."
            if role == "app"
            else "Answer real SIP calls with this voip app."
        ),
        epilog=f"Options are also read from ${ENV_OPTIONS}, before those given here."
        + (
            " SIP settings also come from VOIP_<SETTING> variables (e.g. VOIP_PASSWORD)"
            " and --config; the command line wins."
        ),
    )
    if role == "app":
        p.add_argument(
            "caller",
            nargs="?",
            default=DEFAULT_CALLER,
            help=f"the simulated caller's number (default {DEFAULT_CALLER})",
        )
        p.add_argument("--name", default="", help="the simulated caller's display name")
        add_arguments(p, CallerScript, "sim")
        group = p.add_argument_group("real SIP calls (with --sip, or `voip serve`)")
    else:
        group = p.add_argument_group("SIP")
        # Taken, to say they do not apply (VOIP_OPTIONS may hold them for simulated runs).
        add_arguments(p, CallerScript, "sim", hidden=True)
    group.add_argument(
        "--sip", action="store_true", help="answer real SIP calls instead of simulating one"
    )
    add_sip_arguments(group, "server")
    add_log_level(p)
    return p


def _make_backend(opts: argparse.Namespace, args: Sequence[str] = ()) -> Backend:
    if opts.sip:
        from .backends.pjsip.server import SipServer

        simulated = [f for f in flags_given(CallerScript, "sim", opts) if f != "--no-audio"]
        if simulated:
            raise InvalidArgumentError(
                f"{', '.join(simulated)} only apply to the simulated call: with --sip"
                " callers are real (`voip dial` is a scripted caller for them)"
            )
        sip = sip_options_from_args(opts)
        place = worker_place_from(os.environ)
        if place is not None:  # one of a cluster's workers (voip.cluster)
            return SipServer(worker_options(sip, place), place)
        if sip.workers or sip.join:  # (--join without --workers: refused there)
            from .cluster.supervisor import Supervisor

            # Each worker runs this app again, through `voip run`, with these options.
            script = os.path.abspath(sys.argv[0])
            return Supervisor(sip, [sys.executable, "-m", "voip.cli", "run", script, *args])
        return SipServer(sip)
    given = flags_given(SipOptions, "server", opts)
    if opts.config:
        given.insert(0, "--config")
    if given:
        raise InvalidArgumentError(
            f"{', '.join(given)} only apply to real SIP calls: add --sip (or run"
            " `voip serve APP`), or leave them out to simulate a call"
        )
    return SimBackend(
        SimOptions(caller=opts.caller, name=opts.name, script=resolve(CallerScript, "sim", opts))
    )


def runVoipClient(handler: Handler, argv: Sequence[str] | None = None) -> None:
    """Run ``handler`` on calls: by default one simulated call that starts at once.

    ``argv`` defaults to ``sys.argv[1:]``; see ``python app.py --help``. Returns when the
    call is over. If the handler raised (the traceback is logged) the process exits with
    status 1, so a scripted run in CI fails; bad options or files exit with status 2.
    """
    check_handler(handler)
    runs = _runs.get()
    if runs is not None:
        runs.append(handler)
    args = list(sys.argv[1:] if argv is None else argv)
    args = shlex.split(os.environ.get(ENV_OPTIONS, "")) + args
    opts = build_parser("server" if "--sip" in args else "app").parse_args(args)
    configure_logging(opts.log_level)
    try:
        status = run_loop(_make_backend(opts, args).run(handler))
    except VoipError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None
    if status:
        raise SystemExit(status)


def watch_runs() -> AbstractContextManager[list[Handler]]:
    """Within it, the handlers :func:`runVoipClient` was started with (``voip run``
    uses it to tell whether an app script started itself)."""
    return collecting(_runs)
