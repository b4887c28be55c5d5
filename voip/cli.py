"""The ``voip`` command.

``voip run app.py [options]`` does what ``python app.py [options]`` does: the app's own
``runVoipClient(handler)`` reads the options.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voip", description="Run voip apps.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run an app on a simulated call",
        description="Run APP as `python APP OPTIONS` would; see `voip run APP --help`.",
    )
    run.add_argument("app", help="the app's script, e.g. test.py")
    run.add_argument("options", nargs=argparse.REMAINDER, help="options for the app")
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run_script(args.app, args.options)
    return 2  # pragma: no cover - argparse rejects other commands


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
