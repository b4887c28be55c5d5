"""The ``voip`` command.

* ``voip run app.py [options]`` does what ``python app.py [options]`` does: the app's
  own ``runVoipClient(handler)`` reads the options (a simulated call by default). A
  script that defines ``handler`` without starting it is run with it.
* ``voip serve app.py [options]`` is ``voip run app.py --sip [options]``: real SIP calls.
* ``voip dial sip:app@host:port [options]`` is a terminal softphone for checking a
  deployment, with the simulator's caller options.

Bad options, settings or files, and an app script that cannot run, exit with status 2
and one line saying why.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .backends.pjsip.options import add_sip_arguments
from .caller import CallerScript
from .errors import VoipError
from .runner import AppRole, add_log_level, build_parser, runVoipClient, watch_runs
from .settings import add_arguments

__all__ = ["main", "build_dial_parser"]


class _AppHelp(argparse.Action):
    """``-h`` before the app's name: the app options' help, as ``APP --help`` shows it."""

    def __init__(self, option_strings: Sequence[str], dest: str, role: AppRole) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the app's options and exit")
        self.role: AppRole = role

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any) -> None:
        build_parser(self.role, prog=f"{parser.prog} APP").print_help()
        parser.exit()


def build_dial_parser(prog: str = "voip dial") -> argparse.ArgumentParser:
    """``voip dial``'s options: the caller script's and the dialler's SIP settings."""
    p = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description="Call a SIP URI: microphone and speaker (or WAV files), keys as DTMF.",
        epilog="SIP settings also come from VOIP_<SETTING> variables (e.g. VOIP_PASSWORD)"
        " and --config; the command line wins.",
    )
    p.add_argument("uri", help="whom to call, e.g. sip:app@127.0.0.1:5062")
    add_arguments(p, CallerScript, "dialler")
    add_sip_arguments(p.add_argument_group("SIP"), "dialler")
    add_log_level(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="voip", description="Run and check voip apps.")
    sub = parser.add_subparsers(dest="command", required=True)
    roles: dict[str, AppRole] = {"run": "app", "serve": "server"}
    for name, text in (
        ("run", "run an app on a simulated call (or with --sip, on real calls)"),
        ("serve", "run an app on real SIP calls (same as: voip run APP --sip)"),
    ):
        p = sub.add_parser(
            name,
            help=text,
            description=f"{text}. Options after APP go to the app; -h lists them.",
            add_help=False,
        )
        p.add_argument("-h", "--help", action=_AppHelp, role=roles[name])
        p.add_argument("app", help="the app's script, e.g. test.py")
        p.add_argument("options", nargs=argparse.REMAINDER, help="options for the app")
    sub.add_parser("dial", help="call a SIP URI with a terminal softphone")
    if argv[:1] == ["dial"]:  # its own parser, for its own prog name in messages
        args = build_dial_parser().parse_args(argv[1:])
        from .backends.pjsip.softphone import softphone_main

        return _guarded(lambda: softphone_main(args))
    args = parser.parse_args(argv)
    options = list(args.options)
    if args.command == "serve" and "--sip" not in options:
        options.insert(0, "--sip")
    return _run_script(args.app, options)


def _guarded(fn: Callable[[], int]) -> int:
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
    with watch_runs() as runs:
        try:
            names = runpy.run_path(path, run_name="__main__")
        except SyntaxError as exc:
            # The error alone: a traceback through runpy says nothing about the app.
            print("".join(traceback.format_exception_only(exc)).rstrip(), file=sys.stderr)
            return 2
    if runs:
        return 0
    handler = names.get("handler")
    if handler is None:
        print(
            f"voip: {path} neither calls runVoipClient(handler) nor defines"
            " `async def handler(call)`: nothing to run",
            file=sys.stderr,
        )
        return 2
    return _guarded(lambda: _run_handler(handler))


def _run_handler(handler: Any) -> int:
    runVoipClient(handler)  # exits with its status when not 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
