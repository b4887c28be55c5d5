"""The test kit's pytest plugin, registered as the ``pytest11`` entry point ``voip``.

pytest loads it by itself once voip is installed. It:

* keeps the audio each phone heard in a test that fails (in its call or its teardown)
  as a WAV in pytest's base temporary folder, ``<basetemp>/voip-heard/<test>.heard.wav``
  (``<test>.<n>.heard.wav`` for the n-th phone of a test with several), and says where
  in the failure's report;
* offers fixtures for the common cases: ``voip_handler`` (override it to return the
  handler under test), ``phone`` (a call to it from the default caller, through
  :func:`voip.testing.dial`) and ``voip_app`` (a :class:`~voip.testing.RunningApp` of
  it, for several callers).

``async with dial(...)`` needs no marker and no set-up in a pytest-asyncio test: the kit
puts the test's loop on virtual time for the block itself (pytest-asyncio's loops come
prepared by looptime's own plugin). Importing this module needs neither looptime nor
pytest-asyncio, so an install without them still runs pytest.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest

from ..audio.wav import savePCMtoWAV
from ..lifecycle import Handler
from .local import RunningApp, app, dial
from .phone import Phone, recording_phones

__all__ = ["HEARD_FOLDER"]

HEARD_FOLDER = "voip-heard"
"""The folder of the base temporary folder where failed tests' audio goes."""

_phones_key = pytest.StashKey[list[Phone]]()
_folder_key = pytest.StashKey[Path]()


@pytest.fixture(autouse=True)
def _voip_heard(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Lists the phones the test makes, for :func:`pytest_runtest_makereport`."""
    with recording_phones() as phones:
        request.node.stash[_phones_key] = phones
        request.node.stash[_folder_key] = tmp_path_factory.getbasetemp() / HEARD_FOLDER
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    phones = item.stash.get(_phones_key, [])
    if report.failed and report.when in ("call", "teardown") and phones:
        folder = item.stash[_folder_key]
        folder.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.\[\]-]+", "_", item.name)
        written = []
        for n, phone in enumerate(phones, 1):
            path = folder / (f"{name}.heard.wav" if len(phones) == 1 else f"{name}.{n}.heard.wav")
            savePCMtoWAV(phone.heard, path)
            written.append(f"{phone.name}: {path}")
        report.sections.append(("voip: what the caller heard", "\n".join(written)))
    return report


try:
    import pytest_asyncio
except ImportError:  # no async fixtures without it (nor async tests to use them)
    pass
else:

    @pytest.fixture
    def voip_handler() -> Handler:
        """The handler the ``phone`` and ``voip_app`` fixtures call: override it."""
        raise pytest.UsageError(
            "the phone and voip_app fixtures call the handler that a fixture named "
            "voip_handler returns: define one, e.g. "
            "@pytest.fixture\ndef voip_handler():\n    return handler"
        )

    @pytest_asyncio.fixture
    async def phone(voip_handler: Handler) -> AsyncIterator[Phone]:
        """A call to ``voip_handler`` from the default caller, on virtual time; the
        handler's error, if any, fails the test at its teardown."""
        async with dial(voip_handler) as caller:
            yield caller

    @pytest_asyncio.fixture
    async def voip_app(voip_handler: Handler) -> AsyncIterator[RunningApp]:
        """``voip_handler`` taking calls on virtual time: ``await voip_app.dial(...)``."""
        async with app(voip_handler) as running:
            yield running
