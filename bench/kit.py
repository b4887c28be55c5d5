"""The test kit: a scripted path through a phone tree, in the kit and in the simulator."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from voip import loadWAVtoPCM
from voip.dtmf import parse_key_script
from voip.testing import dial

from . import kit_tree
from .common import ROOT, Context, Row, Section, fmt, median

NAME = "kit"
TITLE = "Test kit: a phone tree's 120 s of call time"
METHOD = """\
`bench/kit_tree.py` is a phone tree whose prompts (`call.say`), waits and time-outs last
120 s of call time: a welcome, a menu whose 15 s time-out passes once, the menu again,
key 2, 30 s of hold music, an account number typed slowly, a 20 s time-out around it,
then waits until the app hangs up at 120 s. The same caller script (keys at the same call
times: `--keys` syntax, each key 0.2 s, `w` 0.5 s) runs it twice in this run:

* in the test kit: `async with voip.testing.dial(handler)`, the keys pressed with
  `phone.wait` / `phone.press` at their times, until `phone.hung_up()`; wall time of the
  whole block (`time.perf_counter`), in this process, median of several runs (the first,
  which also synthesises the prompts, is reported apart);
* in the simulator, the baseline: `python bench/kit_tree.py --no-audio --keys KEYS
  --hangup-after 130 --speaker out.wav`, wall time of the whole process (it runs in real
  time, so about 120 s plus start-up).

Both runs are checked to have taken the same path: the kit's prompts said, and the
simulator's `--speaker` timeline as long as the kit's heard audio. Target: at most 1 s
of wall time in the kit, and at least 120× faster than the simulator."""

KEYS = "w" * 50 + "2" + "w" * 80 + "123456"
"""Key 2 at 25 s (during the second menu), the account number from 65.2 s."""
PATH = [
    "Welcome to the benchmark line",
    "For sales press 1, for support press 2",
    "Sorry, I did not get that",
    "For sales press 1, for support press 2",
    "Please hold for the next agent",
    "All our agents are busy. Enter your six digit account number",
    "Thank you. We will call you back about account 1 2 3 4 5 6",
    "Goodbye",
]
KIT_TARGET_S = 1.0
RATIO_TARGET = 120.0


async def run_in_kit() -> tuple[float, float, list[str]]:
    """Wall time of one kit run, the call's length, and what was said."""
    start = time.perf_counter()
    async with dial(kit_tree.handler) as phone:
        for at, key in parse_key_script(KEYS):
            await phone.wait(max(0.0, at - phone.now))
            await phone.press(key, gap=0)
        await phone.hung_up(timeout=300)
    return time.perf_counter() - start, phone.now, phone.said


def run_in_simulator(folder: Path) -> tuple[float, float]:
    """Wall time of the simulator's process and the length of what its caller heard."""
    speaker = folder / "heard.wav"
    command = [sys.executable, str(ROOT / "bench" / "kit_tree.py"), "--no-audio"]
    command += ["--keys", KEYS, "--hangup-after", "130", "--speaker", str(speaker)]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or "key 6" not in proc.stderr:
        raise RuntimeError(f"the simulator's run failed ({proc.returncode}):\n{proc.stderr}")
    return seconds, len(loadWAVtoPCM(speaker)) / 8000


def run(ctx: Context) -> Section:
    section = Section(NAME, TITLE, METHOD)
    runs = []
    for _ in range(ctx.pick(6, 2)):
        wall, length, said = asyncio.run(run_in_kit())
        if said != PATH or not kit_tree.CALL_SECONDS < length < kit_tree.CALL_SECONDS + 2:
            raise RuntimeError(f"the kit took another path ({length:.2f} s): {said}")
        ctx.log(f"kit: {length:.2f} s of call time in {wall:.3f} s")
        runs.append(wall)
    first, kit = runs[0], median(runs[1:])
    sim = heard = None
    if not ctx.quick:
        folder = Path(tempfile.mkdtemp(prefix="voip-bench-kit-"))
        try:
            sim, heard = run_in_simulator(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        ctx.log(f"simulator: {heard:.2f} s heard in {sim:.1f} s")
        if abs(heard - length) > 0.5:
            raise RuntimeError(f"the simulator's call lasted {heard:.2f} s, the kit's {length:.2f}")
    row = Row(
        "Test kit: 120 s of call time (prompts, waits, time-outs): wall time",
        kit,
        "s",
        "the simulator, in real time (`--no-audio --keys`)",
        sim,
        target=f"≤ {KIT_TARGET_S:g} s, ≥ {RATIO_TARGET:g}× faster than the simulator",
    )
    row.met = kit <= KIT_TARGET_S and (row.ratio is None or row.ratio >= RATIO_TARGET)
    if sim is None:
        row.note = "no baseline in --quick runs (the simulator takes 2 minutes)"
    section.rows.append(row)
    section.notes.append(
        f"The path: {len(PATH)} prompts, {length:.2f} s of call time"
        + ("" if heard is None else f" ({heard:.2f} s in the simulator's `--speaker` file)")
        + f". Kit runs after the first: {', '.join(fmt(r) for r in runs[1:])} s; the first, "
        f"which also synthesised the prompts, {fmt(first)} s."
    )
    return section
