"""Settings declared once: every layer, every role, every bad value named at start-up."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from voip import InvalidArgumentError
from voip.backends.pjsip.options import SipOptions, add_sip_arguments, sip_options_from_args
from voip.caller import CallerScript
from voip.cli import build_dial_parser
from voip.runner import build_parser
from voip.settings import resolve, settings_of

from .helpers import ROOT


def server(argv: list[str], env: dict[str, str] | None = None) -> SipOptions:
    return sip_options_from_args(build_parser("server").parse_args(argv), env or {})


def dialler(argv: list[str], env: dict[str, str] | None = None) -> SipOptions:
    args = build_dial_parser().parse_args(["sip:x@127.0.0.1", *argv])
    return sip_options_from_args(args, env or {}, role="dialler")


def toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "voip.toml"
    path.write_text(text)
    return str(path)


def test_defaults_per_role():
    s, d = server([]), dialler([])
    assert (s.listen, s.transports, s.max_calls) == ("0.0.0.0:5060", ("udp", "tcp"), 4)
    assert (d.listen, d.transports) == ("0.0.0.0:0", ("udp",))
    assert s.rtp_ports == d.rtp_ports == (4000, 4999)


def test_command_line_values():
    o = server(["--listen", "127.0.0.1:5062", "--transport", "udp", "--rtp-ports", "7000-7099"])
    assert o.host_port == ("127.0.0.1", 5062) and o.transports == ("udp",)
    assert o.rtp_ports == (7000, 7099)
    assert server(["--codecs", "pcma,g722"]).codecs == ("PCMA", "G722")
    assert server(["--codecs", "pcma", "--codecs", "g722"]).codecs == ("PCMA", "G722")
    assert server(["--transport", "udp,tls"]).transports == ("udp", "tls")


def test_toml_then_environment_then_command_line(tmp_path):
    config = toml(
        tmp_path, '[sip]\nlisten = "127.0.0.1:6000"\nallow = ["10.0.0.0/8"]\nmax-calls = 2\n'
    )
    o = server(["--config", config, "--max-calls", "3"])
    assert o.listen == "127.0.0.1:6000" and o.max_calls == 3
    assert o.allow.allows("10.1.2.3") and not o.allow.allows("127.0.0.1")
    env = {
        "VOIP_LISTEN": "127.0.0.1:7000",
        "VOIP_PASSWORD": "s3cret",
        "VOIP_ALLOW": "192.0.2.0/24, 198.51.100.1",
        "VOIP_TRANSPORTS": "tcp",
        "VOIP_GRACE": "2.5",
        "VOIP_SIP_LOG": "yes",
    }
    o = server(["--config", config, "--listen", "127.0.0.1:7001"], env)
    assert o.listen == "127.0.0.1:7001"  # the command line wins
    assert (o.password, o.transports, o.grace, o.sip_log) == ("s3cret", ("tcp",), 2.5, True)
    assert o.allow.allows("198.51.100.1") and not o.allow.allows("10.1.2.3")
    assert o.max_calls == 2  # from the file: nothing else set it


def test_the_dialler_reads_listen_and_transports_from_every_layer(tmp_path):
    """`voip dial` once wrote its defaults into the command-line layer, so a listen
    address from the TOML file or the environment was silently ignored."""
    config = toml(tmp_path, '[sip]\nlisten = "127.0.0.1:6000"\ntransports = ["tcp"]\n')
    o = dialler(["--config", config])
    assert (o.listen, o.transports) == ("127.0.0.1:6000", ("tcp",))
    o = dialler(["--config", config], {"VOIP_LISTEN": "127.0.0.1:7000"})
    assert o.listen == "127.0.0.1:7000"
    # A server's settings in a shared file are not the dialler's business.
    config = toml(tmp_path, '[sip]\nmax_calls = 2\ngrace = 3\nlisten = "127.0.0.1:6001"\n')
    assert dialler(["--config", config]).listen == "127.0.0.1:6001"


def test_the_screening_settings(tmp_path):
    o = server([])
    assert (o.invite_rate, o.options_rate, o.call_rate) == (5.0, 5.0, 20.0)
    assert "friendly-scanner" in o.scanner_user_agents
    config = toml(tmp_path, '[sip]\ninvite-rate = 2\nscanner_user_agents = ["evil-dialler"]\n')
    o = server(["--config", config, "--call-rate", "0", "--scanner-user-agent", "bad-bot"])
    assert (o.invite_rate, o.call_rate) == (2.0, 0.0)
    # The command line adds to the list; the other layers replace it.
    assert o.scanner_user_agents == ("evil-dialler", "bad-bot")
    o = server([], {"VOIP_SCANNER_USER_AGENTS": "", "VOIP_OPTIONS_RATE": "0.5"})
    assert (o.scanner_user_agents, o.options_rate) == ((), 0.5)


@pytest.mark.parametrize(
    "argv, env, config, message",
    [
        (
            ["--max-calls", "5"],
            {},
            "",
            "max_calls = '5' (from --max-calls on the command line) is not accepted:"
            " a whole number from 1 to 4",
        ),
        (
            [],
            {"VOIP_MAX_CALLS": "four"},
            "",
            "max_calls = 'four' (from VOIP_MAX_CALLS in the environment) is not accepted:"
            " a whole number from 1 to 4",
        ),
        ([], {}, 'max_calls = "four"', "max_calls = 'four' (from max_calls in "),
        ([], {}, 'inband_dtmf = "maybe"', "inband_dtmf = 'maybe' (from inband_dtmf in "),
        ([], {}, "pjsip_log_level = 99", "a whole number from 0 to 6"),
        ([], {"VOIP_GRACE": "ten"}, "", "grace = 'ten' (from VOIP_GRACE in the environment)"),
        ([], {"VOIP_SIP_LOG": "maybe"}, "", "true or false"),
        ([], {}, "sip_log = 1", "sip_log = 1 (from sip_log in "),
        (["--rtp-ports", "5000-4000"], {}, "", "an increasing range"),
        (["--rtp-ports", "abc"], {}, "", "FIRST-LAST"),
        (["--codecs", "opus"], {}, "", "choose from PCMU, PCMA, G722"),
        (["--allow", "nonsense"], {}, "", "CIDR"),
        (["--listen", "127.0.0.1:0x"], {}, "", "a port from 0 (any free port) to 65535"),
        (["--invite-rate", "-1"], {}, "", "a number, at least 0 (requests a second"),
        (["--register", "1001@pbx"], {}, "", "sip:USER@HOST[:PORT]"),
        ([], {"VOIP_SRTP": "always"}, "", "choose from off, optional, mandatory"),
        ([], {"VOIP_TRANSPORTS": ""}, "", "at least one value"),
    ],
)
def test_a_bad_value_names_its_setting_layer_and_what_is_accepted(
    tmp_path, argv, env, config, message
):
    if config:
        argv = [*argv, "--config", toml(tmp_path, f"[sip]\n{config}\n")]
    with pytest.raises(InvalidArgumentError) as err:
        server(argv, env)
    assert message in str(err.value)


def test_unknown_or_unreadable_toml(tmp_path):
    with pytest.raises(InvalidArgumentError, match="unknown setting 'lisen'; known: "):
        server(["--config", toml(tmp_path, '[sip]\nlisen = "x"\n')])
    with pytest.raises(InvalidArgumentError, match="cannot read the settings"):
        server(["--config", toml(tmp_path, "[sip\n")])
    with pytest.raises(InvalidArgumentError, match="cannot read the settings"):
        server(["--config", str(tmp_path / "missing.toml")])


def words(text: str) -> str:
    """Help text with argparse's line wrapping undone."""
    return " ".join(text.split())


def test_each_role_gets_only_its_flags():
    dial_help = words(build_dial_parser().format_help())
    for server_only in ("--sip ", "--allow", "--max-calls", "--grace", "--invite-rate"):
        assert server_only not in dial_help
    for flag in ("--mic", "--keys", "--dtmf", "--listen", "--srtp", "--log-level"):
        assert flag in dial_help
    assert "(default 0.0.0.0:0)" in dial_help  # a dialler listens on any free port
    server_help = words(build_parser("server").format_help())
    assert "--mic" not in server_help and "--keys" not in server_help
    assert "(default 0.0.0.0:5060)" in server_help and "--max-calls" in server_help
    app_help = words(build_parser("app").format_help())
    assert "--mic" in app_help and "--max-calls" in app_help and "--dtmf" not in app_help
    assert "each taking 0.2 s" in app_help and "from the moment the call is answered" in app_help


def test_every_setting_has_help_and_a_role():
    for cls in (SipOptions, CallerScript):
        for name, meta in settings_of(cls):
            assert meta.help and meta.roles, name


def test_caller_script_from_the_command_line():
    args = build_dial_parser().parse_args(
        ["sip:x@h", "--keys", "ww12", "--no-audio", "--hangup-after", "3", "--dtmf", "info"]
    )
    script = resolve(CallerScript, "dialler", args)
    assert (script.keys, script.audio, script.hangup_after, script.dtmf) == (
        "ww12",
        False,
        3.0,
        "info",
    )
    assert script.presses() == [(1.0, "1"), (1.2, "2")]
    with pytest.raises(InvalidArgumentError, match="character 2 \\('x'\\) is not a key"):
        resolve(CallerScript, "sim", build_parser().parse_args(["--keys", "1x"]))


def test_add_sip_arguments_on_a_plain_parser():
    import argparse

    p = argparse.ArgumentParser()
    add_sip_arguments(p)
    assert sip_options_from_args(p.parse_args(["--max-calls", "2"]), {}).max_calls == 2


# -- the same, as a user meets it: exit status 2 and one line ----------------------------------

APP = ROOT / "examples" / "hello.py"


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_bad_settings_exit_2_before_anything_starts(tmp_path):
    bad = run(str(APP), "--sip", "--max-calls", "four")
    assert bad.returncode == 2
    assert "max_calls = 'four' (from --max-calls on the command line)" in bad.stderr
    assert "SIP listening" not in bad.stderr
    bad = run(str(APP), "--sip", env={"VOIP_GRACE": "ten"})
    assert bad.returncode == 2 and "grace = 'ten' (from VOIP_GRACE" in bad.stderr
    config = toml(tmp_path, 'inband_dtmf = "maybe"\n')
    bad = run("-m", "voip.cli", "dial", "sip:x@127.0.0.1:9", "--config", config)
    assert bad.returncode == 2 and "inband_dtmf = 'maybe'" in bad.stderr
    bad = run("-m", "voip.cli", "dial", "sip:x@127.0.0.1:9", "--max-calls", "2")
    assert bad.returncode == 2 and "unrecognized arguments: --max-calls" in bad.stderr


def test_sip_settings_without_sip_are_an_error():
    bad = run(str(APP), "--no-audio", "--listen", "127.0.0.1:5099")
    assert bad.returncode == 2
    assert "--listen only apply to real SIP calls: add --sip" in bad.stderr
    bad = run(str(APP), "--sip", "--no-audio", "--mic", "x.wav")  # --no-audio is harmless
    assert bad.returncode == 2
    assert "--mic only apply to the simulated call: with --sip callers are real" in bad.stderr


def test_voip_serve_and_run_help_list_their_options():
    for argv in (["serve", "--help"], ["serve", str(APP), "--help"]):
        out = run("-m", "voip.cli", *argv)
        assert out.returncode == 0, out.stderr
        assert "--max-calls" in out.stdout and "--listen" in out.stdout
        assert "--mic" not in out.stdout
    out = run("-m", "voip.cli", "run", "--help")
    assert out.returncode == 0 and "--mic" in out.stdout and "--sip" in out.stdout


def test_voip_run_starts_a_handler_the_script_does_not_start(tmp_path):
    app = tmp_path / "bare.py"
    app.write_text(
        textwrap.dedent(
            """\
            async def handler(call):
                call.log.info("bare handler ran for %s", call.caller)
            """
        )
    )
    out = run("-m", "voip.cli", "run", str(app), "--no-audio", "5551234")
    assert out.returncode == 0, out.stderr
    assert "bare handler ran for 5551234" in out.stderr
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    out = run("-m", "voip.cli", "run", str(empty))
    assert out.returncode == 2
    assert "neither calls runVoipClient(handler) nor defines" in out.stderr


def test_voip_run_shows_a_syntax_error_alone(tmp_path):
    app = tmp_path / "broken.py"
    app.write_text("async def handler(call)\n    pass\n")
    out = run("-m", "voip.cli", "run", str(app))
    assert out.returncode == 2
    assert "SyntaxError" in out.stderr and "broken.py" in out.stderr
    assert "Traceback" not in out.stderr and "runpy" not in out.stderr
