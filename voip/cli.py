"""The ``voip`` command.

* ``voip run app.py [options]`` does what ``python app.py [options]`` does: the app's
  own ``runVoipClient(handler)`` reads the options (a simulated call by default).
* ``voip serve app.py [options]`` is ``voip run app.py --sip [options]``: real SIP calls.
* ``voip dial sip:app@host:port [options]`` is a terminal softphone for checking a
  deployment, with the simulator's headless options.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voip", description="Run and check voip apps.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "run an app on a simulated call (or with --sip, on real calls)"),
        ("serve", "run an app on real SIP calls (same as: voip run APP --sip)"),
    ):
        p = sub.add_parser(
            name, help=text, description=f"{text}; see `voip {name} APP --help` for options."
        )
        p.add_argument("app", help="the app's script, e.g. test.py")
        p.add_argument("options", nargs=argparse.REMAINDER, help="options for the app")
    _add_dial_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "dial":
        from .backends.pjsip.dial import softphone_main

        return _guarded(lambda: softphone_main(args))
    options = list(args.options)
    if args.command == "serve" and "--sip" not in options:
        options.insert(0, "--sip")
    return _run_script(args.app, options)


def _add_dial_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .backends.pjsip.options import add_sip_arguments

    p = sub.add_parser(
        "dial",
        help="call a SIP URI with a terminal softphone",
        description="Call a SIP URI: microphone and speaker (or WAV files), keys as DTMF.",
    )
    p.add_argument("uri", help="whom to call, e.g. sip:app@127.0.0.1:5062")
    p.add_argument("--mic", metavar="WAV", help="send this WAV instead of the microphone")
    p.add_argument("--speaker", metavar="WAV", help="write what is heard to this WAV")
    p.add_argument("--keys", default="", help="keys to press, 'w' waits 0.5 s, e.g. ww1234")
    p.add_argument(
        "--dtmf",
        default="rfc4733",
        choices=["rfc4733", "info", "inband"],
        help="how keys are sent (default rfc4733)",
    )
    p.add_argument("--no-audio", action="store_true", help="open no sound device")
    p.add_argument("--hangup-after", type=float, metavar="SECONDS", help="hang up after this long")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_sip_arguments(p)


def _guarded(fn: Callable[[], int]) -> int:
    from .errors import VoipError

    try:
        return fn()
    except VoipError as exc:
        print(f"voip: {exc}", file=sys.stderr)
        return 2


def _run_script(path: str, options: Sequence[str]) -> int:
    if not os.path.isfile(path):
        print(f"voip: no such app script: {path}", file=sys.stderr)
        return 2
    sys.argv = [path, *options]
    # As `python app.py` does: the script's folder comes first on the import path.
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    runpy.run_path(path, run_name="__main__")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
