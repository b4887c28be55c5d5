"""The test kit's pytest plugin, as an app author meets it: tests run by pytest itself."""

import textwrap

import pytest

from voip import loadWAVtoPCM

from .helpers import tone_spans

pytest_plugins = "pytester"

APP = """
import asyncio

async def handler(call):
    await call.playTone(440, 0.5)
    await asyncio.sleep(600)  # ten minutes of call time: virtual, so no wait
    await call.say("Goodbye")
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(app=APP)
    return pytester


def test_dial_in_a_plain_async_test_runs_on_virtual_time(suite):
    suite.makepyfile(
        test_app=textwrap.dedent(
            """
            import asyncio
            from voip.testing import dial
            from app import handler

            async def test_goodbye():
                async with dial(handler) as phone:
                    await phone.heard_tone(440, 0.5)
                    await phone.heard_say("Goodbye", timeout=700)
                assert phone.now > 600

            async def test_outside_the_block_time_is_real_again():
                loop = asyncio.get_running_loop()
                async with dial(handler) as phone:
                    await phone.hung_up(timeout=700)
                before = loop.time()
                await asyncio.sleep(0.05)
                assert 0.04 < loop.time() - before < 5
            """
        )
    )
    suite.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_a_failed_test_keeps_what_each_phone_heard(suite):
    suite.makepyfile(
        test_app=textwrap.dedent(
            """
            from voip.testing import app
            from app import handler

            async def test_wrong_prompt():
                async with app(handler) as running:
                    first = await running.dial("1")
                    await running.dial("2")
                    await first.heard_say("Welcome", timeout=700)

            async def test_passes():
                async with app(handler) as running:
                    await (await running.dial("1")).heard_tone(440, 0.5)
            """
        )
    )
    base = suite.path / "base"
    result = suite.runpytest("-p", "no:cacheprovider", f"--basetemp={base}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*heard_say('Welcome'): the call ended at 601.* without it;*",
            "*voip: what the caller heard*",
            f"phone: {base}/voip-heard/test_wrong_prompt.1.heard.wav",
            f"phone 2: {base}/voip-heard/test_wrong_prompt.2.heard.wav",
        ]
    )
    written = sorted(p.name for p in (base / "voip-heard").iterdir())
    assert written == ["test_wrong_prompt.1.heard.wav", "test_wrong_prompt.2.heard.wav"]
    heard = loadWAVtoPCM(base / "voip-heard" / "test_wrong_prompt.2.heard.wav")
    assert tone_spans(heard, 440)[0] == (0.0, 0.5)
    assert len(heard) / 8000 > 600  # the ten minutes of silence, and the goodbye


def test_the_fixtures_call_the_handler_the_test_names(suite):
    suite.makepyfile(
        test_app=textwrap.dedent(
            """
            import pytest
            from app import handler

            @pytest.fixture
            def voip_handler():
                return handler

            async def test_phone(phone):
                await phone.heard_tone(440, 0.5)

            async def test_voip_app(voip_app):
                a, b = await voip_app.dial("1"), await voip_app.dial("2")
                await a.heard_tone(440, 0.5)
                await b.heard_say("Goodbye", timeout=700)
            """
        )
    )
    suite.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_a_handler_that_raises_fails_the_test_that_used_the_phone_fixture(suite):
    suite.makepyfile(
        test_app=textwrap.dedent(
            """
            import pytest

            async def broken(call):
                await call.playTone(440, 0.2)
                raise RuntimeError("the handler's bug")

            @pytest.fixture
            def voip_handler():
                return broken

            async def test_phone(phone):
                await phone.hung_up()
            """
        )
    )
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*RuntimeError: the handler's bug*"])
