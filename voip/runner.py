"""``runVoipClient``: command-line options -> backend -> calls.

The same script runs in the simulator (the default) and, with the SIP options, on a
server. Options come from the command line, preceded by those in the ``VOIP_OPTIONS``
environment variable (for scripts started by something that cannot pass arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from .backends.base import Backend
from .backends.pjsip.options import add_sip_arguments, sip_options_from_args
from .backends.sim import DEFAULT_CALLER, SimBackend, SimOptions
from .errors import VoipError
from .lifecycle import CANCEL_GRACE, Handler, check_handler

__all__ = ["runVoipClient", "build_parser", "ENV_OPTIONS"]

log = logging.getLogger(__name__)

ENV_OPTIONS = "VOIP_OPTIONS"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options every voip app understands."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run this voip app on a simulated call (microphone, speaker, keyboard), "
        "or with --sip answer real SIP calls.",
        epilog=f"Options are also read from ${ENV_OPTIONS}, before those given here.",
    )
    p.add_argument(
        "caller",
        nargs="?",
        default=DEFAULT_CALLER,
        help=f"the simulated caller's number (default {DEFAULT_CALLER})",
    )
    p.add_argument("--name", default="", help="the simulated caller's display name")
    p.add_argument("--mic", metavar="WAV", help="play this WAV as the caller's voice")
    p.add_argument(
        "--speaker", metavar="WAV", help="write what the caller hears to this WAV (8 kHz mono)"
    )
    p.add_argument(
        "--keys",
        default="",
        metavar="KEYS",
        help="keys the caller presses, 'w' waits 0.5 s, e.g. ww1234#",
    )
    p.add_argument("--no-audio", action="store_true", help="open no sound device (headless runs)")
    p.add_argument(
        "--hangup-after",
        type=float,
        metavar="SECONDS",
        help="the caller hangs up after this many seconds",
    )
    add_sip_arguments(p)
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log (default INFO)",
    )
    return p


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
        )
    else:
        root.setLevel(level)


def _run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Like ``asyncio.run``, but tasks the app left behind that ignore cancellation
    get :data:`~voip.lifecycle.CANCEL_GRACE` seconds, not forever: the process must end."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.wait(leftover, timeout=CANCEL_GRACE))
        if any(not t.done() for t in leftover):
            log.warning("tasks that ignored cancellation were abandoned at exit")
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def _make_backend(opts: argparse.Namespace) -> Backend:
    if opts.sip:
        from .backends.pjsip.server import SipServer

        return SipServer(sip_options_from_args(opts))
    return SimBackend(
        SimOptions(
            caller=opts.caller,
            name=opts.name,
            mic=opts.mic,
            speaker=opts.speaker,
            keys=opts.keys,
            audio=not opts.no_audio,
            hangup_after=opts.hangup_after,
        )
    )


def runVoipClient(handler: Handler, argv: Sequence[str] | None = None) -> None:
    """Run ``handler`` on calls: by default one simulated call that starts at once.

    ``argv`` defaults to ``sys.argv[1:]``; see ``python app.py --help``. Returns when the
    call is over. If the handler raised (the traceback is logged) the process exits with
    status 1, so a scripted run in CI fails; bad options or files exit with status 2.
    """
    check_handler(handler)
    args = list(sys.argv[1:] if argv is None else argv)
    args = shlex.split(os.environ.get(ENV_OPTIONS, "")) + args
    opts = build_parser().parse_args(args)
    _configure_logging(opts.log_level)
    try:
        status = _run_loop(_make_backend(opts).run(handler))
    except VoipError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None
    if status:
        raise SystemExit(status)
