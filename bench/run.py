"""Run the benchmarks and rewrite docs/benchmarks.md.

    python -m bench               # everything (a few minutes); rewrites docs/benchmarks.md
    python -m bench --quick       # a short smoke run; prints the results, writes nothing
    python -m bench --only engine,tts --out /tmp/b.md
    python -m bench --only engine --update   # rewrites only its section of docs/benchmarks.md

Each benchmark is a module listed in :data:`BENCHMARKS` (see :mod:`bench.common` for what
it must define). A new one plugs in by adding its module name there.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from bench.common import ROOT, Context, Row, Section, fmt  # noqa: E402

BENCHMARKS = [
    "bench.engine_frames",
    "bench.tts_synth",
    "bench.call_setup",
    "bench.dtmf_latency",
    "bench.media_load",
    "bench.vad",
    "bench.verbs",
    "bench.kit",
    "bench.bridge",
    "bench.load",
]
DOC = ROOT / "docs" / "benchmarks.md"

INTRO = """\
# Benchmarks

What voip costs and how quickly it answers, each figure next to a baseline **measured in
the same run on the same machine**, so that the ratio holds even where the machine's speed
does not. Everything on this page, numbers included, is written by the benchmark runner
(`bench/run.py`); do not edit it by hand, run it again. Benchmarks are not tests: the test
suite asserts no timings; a missed target shows here, marked ✗.
"""

HOW_TO_RUN = """\
## How to run

From the repository root: `.ci/setup bench` installs what the benchmarks use (the test
dependencies with pjsua2, pyVoIP, silero's VAD and the profilers from PyPI; Debian's
`espeak-ng`, the text-to-speech baseline, `tshark`, which captures on loopback, and
`kamailio` and SIPp (`sip-tester`), the cluster's front and its load), then, with
`.venv/bin/python` or the venv active:

```sh
python -m bench                  # everything, about 20 minutes; rewrites docs/benchmarks.md
python -m bench --quick          # smoke run (well under a minute); prints, writes nothing
python -m bench --only engine,tts --out /tmp/bench.md   # some benchmarks, elsewhere
python -m bench --only engine --update   # some benchmarks again, only their sections
python -m bench --list           # the benchmarks' names
```

Only a full run (not `--quick`, not `--only`) rewrites this page unless `--out` says
where to write. `--update` reruns the `--only` benchmarks and replaces just their
sections, each then with its own table, date, command and machine, and takes their rows
out of the full run's table; the rest of the page stays as the last full run wrote it. A
benchmark's section is found by the name in its **This run** line, so one whose title
changed replaces its old section, and any older section of it is dropped; a new one is
added at the end, and the sections are numbered in page order. The machine should be
otherwise idle: CPU-time figures are the best of several repeats and suffer little from
other load, wall-clock figures more. Each benchmark is a module in `bench/` returning
rows; a new one is added to `BENCHMARKS` in `bench/run.py`.
"""


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _program_version(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        return "absent"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "present, version unknown"
    text = out.stdout.strip().splitlines()[0] if out.stdout.strip() else "present"
    return text.split("  Data at:")[0].strip()  # espeak-ng adds its data folder


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def machine() -> list[tuple[str, str]]:
    """What the figures were measured on."""
    import numpy

    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return [
        ("CPU", _cpu_model()),
        ("Cores", f"{cores} ({usable} usable by this process)"),
        ("OS", platform.platform()),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("numpy", numpy.__version__),
        ("pjsua2-python", _version("pjsua2-python")),
        ("espeakng-loader (in-process libespeak-ng)", _version("espeakng-loader")),
        ("espeak-ng program", _program_version("espeak-ng")),
        ("soxr", _version("soxr")),
        ("voip commit", f"{_commit()} (plus any uncommitted changes in the checkout)"),
    ]


def run_one(module_name: str, ctx: Context) -> Section:
    module = importlib.import_module(module_name)
    start = time.perf_counter()
    try:
        section = module.run(ctx)
    except Exception:  # noqa: BLE001 - reported in the doc; the other benchmarks go on
        section = Section(module.NAME, module.TITLE, module.METHOD)
        section.error = traceback.format_exc(limit=6)
        ctx.log(f"{module.NAME} FAILED:\n{section.error}")
    section.seconds = time.perf_counter() - start
    return section


def _ratio(row: Row) -> str:
    r = row.ratio
    if r is None:
        return "n/a"
    return f"{fmt(r)}×" if r >= 100 else f"{r:#.3g}×"


def _met(row: Row) -> str:
    if row.met is None:
        return ""
    return "✓ met" if row.met else "✗ missed"


def table(sections: list[Section]) -> str:
    lines = [
        "| Measure | voip | Baseline (same run) | Baseline | Ratio | Target | Met | Note |",
        "|---|---:|---|---:|---:|---|---|---|",
    ]
    for section in sections:
        if section.error and not section.rows:
            lines.append(f"| {section.title} | failed: see below | | | | | | |")
        for row in section.rows:
            value = f"{fmt(row.value)} {row.unit}".strip() if row.value is not None else "n/a"
            base = f"{fmt(row.baseline)} {row.unit}".strip() if row.baseline is not None else "n/a"
            lines.append(
                f"| {row.measure} | {value} | {row.baseline_label} | {base} | {_ratio(row)} "
                f"| {row.target} | {_met(row)} | {row.note} |"
            )
    return "\n".join(lines)


RATIO_NOTE = (
    "*Ratio*: how many times better voip is than its baseline: baseline ÷ voip for times "
    "and CPU, voip ÷ baseline for rates. Below 1 the baseline is better."
)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _load_note(load: tuple) -> str:
    return (
        f"Load average (1 min) {load[0]:.2f} at the start, {load[1]:.2f} at the end: "
        "other processes were running on the machine."
    )


def section_lines(number: int, section: Section, apart: str = "") -> list[str]:
    """One benchmark's part of "Method and findings". ``apart``: the run that measured it,
    when not the page's full run (--update); its table then comes with it."""
    out = [f"### {number}. {section.title}", "", section.method, ""]
    if apart:
        out += [f"**This run** (`{section.name}`, {section.seconds:.0f} s), {apart}", ""]
        out += [table([section]), ""]
    else:
        out += [f"**This run** (`{section.name}`, {section.seconds:.0f} s):", ""]
    for note in section.notes:
        out += [note, ""]
    if section.error:
        out += ["The benchmark failed:", "", "```", section.error.rstrip(), "```", ""]
    return out


def render(sections: list[Section], command: str, seconds: float, load: tuple) -> str:
    out = [INTRO, HOW_TO_RUN, "## Results", ""]
    out.append(
        f"Measured {_now()} by `{command}`, which took {seconds / 60:.1f} minutes. "
        + _load_note(load)
    )
    out += ["", "| Machine | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in machine()]
    out += ["", table(sections), "", RATIO_NOTE, "", "## Method and findings", ""]
    for i, section in enumerate(sections, 1):
        out += section_lines(i, section)
    return "\n".join(out).rstrip() + "\n"


_HEADING = re.compile(r"^### (\d+)\. (.*)$", re.M)
_THIS_RUN = re.compile(r"^\*\*This run\*\* \(`([^`]+)`", re.M)
"""The line :func:`section_lines` writes under a section's method: it names the benchmark
(``**This run** (`bridge`, 343 s)``), whatever the section's title."""


@dataclass
class Part:
    """One benchmark's section of "Method and findings", as found on the page."""

    name: str
    """The benchmark's name, from its ``**This run**`` line ("" when it has none)."""
    title: str
    text: str
    """The section, heading included, up to the next one."""


def parts(findings: str) -> tuple[str, list[Part]]:
    """``findings`` (the page after "## Method and findings") as the text before its
    first section and its sections, in order."""
    starts = [m.start() for m in _HEADING.finditer(findings)]
    found = []
    for start, end in zip(starts, [*starts[1:], len(findings)], strict=True):
        text = findings[start:end]
        heading = _HEADING.match(text)
        assert heading is not None
        run = _THIS_RUN.search(text)
        found.append(Part(run.group(1) if run else "", heading.group(2), text))
    return findings[: starts[0] if starts else len(findings)], found


def joined(lead: str, found: list[Part]) -> str:
    """``findings`` again from :func:`parts`, its sections numbered 1, 2 ... in order, as
    a full run numbers them."""
    out = [lead.rstrip("\n") + "\n\n" if lead.strip() else lead]
    for number, part in enumerate(found, 1):
        text = _HEADING.sub(f"### {number}. {part.title}", part.text, count=1)
        out.append(text.rstrip("\n") + "\n\n")
    return "".join(out)


def update(page: str, sections: list[Section], command: str, load: tuple) -> str:
    """``page`` (a full run's) with ``sections`` measured again, and their rows out of
    the full run's table.

    A benchmark's section on the page is found by its name (the ``**This run**
    (`name`, ...)`` line), or by its title if it has no such line, so that a benchmark
    whose title changed still replaces its own section: the new one takes the place of
    the first found, any other section of the same benchmark is dropped (an older run),
    and a benchmark with none is added at the end. Sections are then numbered in page
    order, as a full run numbers them."""
    results = page.partition("\n## Results\n")[2]
    summary, _, findings = results.partition("\n## Method and findings\n")
    specs = dict(machine())
    apart = (
        f"measured {_now()} by `{command}`, apart from the full run: "
        f"{specs['CPU']}, {specs['Python']}, numpy {specs['numpy']}, "
        f"voip commit {specs['voip commit']}. " + _load_note(load)
    )
    lead, found = parts(findings)
    for section in sections:
        stale = tuple(f"| {row.measure} |" for row in section.rows)
        summary = "\n".join(x for x in summary.split("\n") if not x.startswith(stale))
        text = "\n".join(section_lines(0, section, apart))
        fresh = Part(section.name, section.title, text)
        mine = [
            k
            for k, part in enumerate(found)
            if part.name == section.name or (not part.name and part.title == section.title)
        ]
        if not mine:
            found.append(fresh)
            continue
        found[mine[0]] = fresh
        for k in reversed(mine[1:]):
            del found[k]
    findings = joined(lead, found)
    head = "\n".join([INTRO, HOW_TO_RUN])
    body = f"{head}\n## Results\n{summary}\n## Method and findings\n{findings}"
    return body.rstrip() + "\n"


def main(argv: list[str] | None = None, prog: str = "python -m bench") -> int:
    args_in = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog=prog, description="Run voip's benchmarks.")
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    p.add_argument("--only", metavar="NAMES", help="comma-separated benchmark names")
    p.add_argument("--out", metavar="PATH", help="write the markdown here ('-': stdout)")
    p.add_argument(
        "--update",
        action="store_true",
        help="with --only: replace only these benchmarks' sections of docs/benchmarks.md "
        "(or of --out), keeping the rest of the last full run",
    )
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = p.parse_args(args_in)
    modules = {importlib.import_module(m).NAME: m for m in BENCHMARKS}
    if args.list:
        for name, m in modules.items():
            print(f"{name:8s} {importlib.import_module(m).TITLE}")
        return 0
    chosen = list(modules)
    if args.only:
        chosen = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in modules]
        if unknown:
            p.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(modules)}")
    if args.update and (not args.only or args.quick or args.out == "-"):
        p.error("--update takes --only, and neither --quick nor --out -")
    page = Path(args.out or DOC)
    old_page = page.read_text(encoding="utf-8") if args.update and page.is_file() else ""
    if args.update and "\n## Method and findings\n" not in old_page:
        p.error(f"--update needs the page of a full run at {page}")
    ctx = Context(quick=args.quick)
    command = shlex.join([*prog.split(), *args_in])
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    sections = []
    for name in chosen:
        ctx.log(f"running {name}")
        sections.append(run_one(modules[name], ctx))
    seconds = time.perf_counter() - start
    load = (load_start, os.getloadavg()[0])
    if args.update:
        doc = update(old_page, sections, command, load)
    else:
        doc = render(sections, command, seconds, load)

    target = args.out
    if target is None and not args.quick and (not args.only or args.update):
        target = str(DOC)
    if target == "-":
        sys.stdout.write(doc)
    else:
        print(table(sections))
        print()
        for s in sections:
            for note in s.notes:
                if note.startswith("**"):
                    print(note)
        if target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(target).write_text(doc, encoding="utf-8")
            ctx.log(f"wrote {target}")
    ctx.log(f"done in {seconds:.0f} s")
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main(prog="python bench/run.py"))
