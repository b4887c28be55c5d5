#!/usr/bin/env python3
"""Hold N TCP connections to a SIP port, then open and close M more, quickly; say
whether the server still answers OPTIONS afterwards.

    python tests/peers/tcp_churn.py 127.0.0.1 5060 --hold 62 --churn 300

Against pjsua2-python 2.15.1 (its select ioqueue has 64 socket slots, and pjlib's
asserts are compiled in) about 60 held connections and some churn abort the server
process: ``ioqueue_select.c: pj_ioqueue_register_sock2: Assertion
`!pj_list_empty(&ioqueue->free_list)' failed``. Fewer held connections are harmless.
Prints one JSON line: {"held", "churned", "answers": OPTIONS statuses after, [] if none}.
"""

from __future__ import annotations

import argparse
import json
import socket
import time

from torture import ask_options


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--hold", type=int, default=62)
    p.add_argument("--churn", type=int, default=300)
    args = p.parse_args()
    held = []
    for _ in range(args.hold):
        try:
            held.append(socket.create_connection((args.host, args.port), timeout=2))
        except OSError:
            break
    time.sleep(0.5)
    churned = 0
    for _ in range(args.churn):
        try:
            socket.create_connection((args.host, args.port), timeout=2).close()
        except OSError:
            break
        churned += 1
    time.sleep(1)
    try:
        answers = ask_options(args.host, args.port)
    except OSError:
        answers = []
    for sock in held:
        sock.close()
    print(json.dumps({"held": len(held), "churned": churned, "answers": answers}))


if __name__ == "__main__":
    main()
