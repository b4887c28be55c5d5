"""What every benchmark module shares: the result rows, the run context and small helpers.

A benchmark module defines ``NAME`` (short, for ``--only``), ``TITLE``, ``METHOD`` (markdown
describing how it measures) and ``run(ctx) -> Section``. The runner (:mod:`bench.run`)
imports the modules listed in its ``BENCHMARKS``, calls ``run`` and renders the rows.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

ROOT = Path(__file__).resolve().parent.parent
"""The repository's root (the folder holding ``voip/`` and ``bench/``)."""


@dataclass
class Row:
    """One figure of the results table, with the baseline measured in the same run."""

    measure: str
    """What is measured, e.g. ``Engine, one tone: CPU per 20 ms frame``."""
    value: float | None
    """voip's figure (None: could not be measured; ``note`` says why)."""
    unit: str
    baseline_label: str = ""
    """What the baseline is, e.g. ``per-sample Python engine``."""
    baseline: float | None = None
    lower_is_better: bool = True
    target: str = ""
    """The issue's target in words, e.g. ``≥ 30× less CPU than the baseline``."""
    met: bool | None = None
    """Whether the target is met; None when the row has no target or was not measured."""
    note: str = ""
    """Shown in the table's last column (e.g. why a figure is missing)."""

    @property
    def ratio(self) -> float | None:
        """How many times better voip is than the baseline (below 1: the baseline is)."""
        if self.value is None or self.baseline is None or self.value <= 0 or self.baseline <= 0:
            return None
        return self.baseline / self.value if self.lower_is_better else self.value / self.baseline


@dataclass
class Section:
    """What one benchmark module produced."""

    name: str
    title: str
    method: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Findings of this run (markdown), printed under the method."""
    error: str = ""
    """Set when the benchmark failed; its rows may then be incomplete."""
    seconds: float = 0.0


@dataclass
class Context:
    """Run-wide settings handed to every benchmark."""

    quick: bool = False
    """A short smoke run: fewer frames, repeats and calls."""

    def pick(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def log(self, message: str) -> None:
        """Progress, to stderr (stdout may carry the rendered table)."""
        print(f"[bench] {message}", file=sys.stderr, flush=True)


class Labelled(Protocol):
    """A set-up a benchmark measures in turn: a short key and a label for the notes."""

    @property
    def key(self) -> str: ...

    @property
    def label(self) -> str: ...


_Setup = TypeVar("_Setup", bound=Labelled)
_Result = TypeVar("_Result")


def measured(
    ctx: Context,
    section: Section,
    setups: Sequence[_Setup],
    measure: Callable[[_Setup], _Result],
) -> Iterator[tuple[_Setup, _Result]]:
    """Each set-up with what ``measure`` found, in turn; one that fails is noted in the
    section (and the log) and skipped, so that the others are still measured."""
    for setup in setups:
        ctx.log(f"{section.name}: {setup.label}")
        try:
            result = measure(setup)
        except Exception as exc:  # noqa: BLE001 - reported; the others are still measured
            section.notes.append(f"**{setup.label}: failed: {exc}**")
            ctx.log(f"{section.name}: {setup.label} failed: {exc}")
            continue
        yield setup, result


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by linear interpolation between closest ranks."""
    data = sorted(values)
    if not data:
        return math.nan
    k = (len(data) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def fmt(value: float | None) -> str:
    """Three significant figures, without scientific notation for everyday sizes."""
    if value is None or math.isnan(value):
        return "n/a"
    if value == 0:
        return "0"
    if float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value):,}"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:,.{digits}f}"


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``), all threads."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name (field 2) may hold spaces; the rest follows the last ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_rss_bytes(pid: int) -> int:
    """A process's resident set size now (Linux ``/proc``)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def proc_memory_bytes(pid: int) -> int:
    """A process's resident set size plus the in-memory files (memfd) it holds open.

    voip's recordings in PJSIP fill such files (voip/backends/pjsip/native.py): memory
    the process uses that ``VmRSS`` does not count, as it is not mapped.
    """
    files: dict[tuple[int, int], int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        path = f"/proc/{pid}/fd/{fd}"
        try:
            if not os.readlink(path).startswith("/memfd:"):
                continue
            st = os.stat(path)
        except OSError:  # closed meanwhile
            continue
        files[(st.st_dev, st.st_ino)] = st.st_size
    return proc_rss_bytes(pid) + sum(files.values())
