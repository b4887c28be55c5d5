"""Settings declared once, read from every layer.

A settings class is a dataclass whose fields are made with :func:`setting`: the field's
default, its parser (which also validates), its help, its command-line flag, whether it
has an environment variable (``VOIP_<NAME>``) and a TOML key, and which roles use it
(``server``: answering SIP calls, ``dialler``: ``voip dial`` and ``voip.dial``, ``sim``:
the simulator). From that one declaration :func:`add_arguments` makes a role's flags and
:func:`resolve` reads the layers, in order: the defaults, a TOML file, the environment,
the command line. A bad value from any layer is an :class:`~voip.errors.InvalidArgumentError`
naming the setting, where the value came from, and what is accepted.

Parsers take text (from the environment or the command line) or a TOML value and return
the field's value; they raise :class:`ValueError` whose message says what is accepted.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from .errors import InvalidArgumentError

__all__ = [
    "Role",
    "Setting",
    "setting",
    "settings_of",
    "add_arguments",
    "flags_given",
    "resolve",
    "ENV_PREFIX",
    "text",
    "boolean",
    "integer",
    "number",
    "choice",
    "items",
]

Role = Literal["server", "dialler", "sim"]
"""Who reads a setting: the SIP server, the dialler (``voip dial``, ``voip.dial``), the
simulator."""

ENV_PREFIX = "VOIP_"

T = TypeVar("T")
Parser = Callable[[Any], Any]


@dataclass(frozen=True)
class Setting:
    """One setting's declaration (a dataclass field's metadata; see :func:`setting`)."""

    help: str
    parse: Parser
    roles: frozenset[str]
    flag: str | None
    metavar: str | None
    kind: Literal["value", "list", "switch"]
    env: bool
    toml: bool
    defaults: Mapping[str, Any]
    """Defaults of roles that differ from the field's own."""
    negative: str | None
    """For a switch that is on by default: the flag that turns it off."""
    extends: bool
    """The command line adds to the list the other layers give, instead of replacing it."""
    show_default: str | None
    """How the help states the default (None: from the value)."""


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    parse: Parser,
    roles: Iterable[str] = ("server", "dialler"),
    flag: str | None | Literal[True] = True,
    metavar: str | None = None,
    kind: Literal["value", "list", "switch"] = "value",
    env: bool = True,
    toml: bool = True,
    factory: Callable[[], Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    negative: str | None = None,
    extends: bool = False,
    show_default: str | None = None,
) -> Any:
    """A dataclass field declared as a setting. ``flag=True`` derives the flag from the
    field's name (``max_calls``: ``--max-calls``); None gives it no flag."""
    meta = Setting(
        help=help,
        parse=parse,
        roles=frozenset(roles),
        flag=None if flag is None else ("" if flag is True else flag),
        metavar=metavar,
        kind=kind,
        env=env,
        toml=toml,
        defaults=dict(defaults or {}),
        negative=negative,
        extends=extends,
        show_default=show_default,
    )
    if factory is not None:
        return field(default_factory=factory, metadata={"setting": meta})
    return field(default=default, metadata={"setting": meta})


def settings_of(cls: type, role: str | None = None) -> list[tuple[str, Setting]]:
    """The settings of a settings class (those a ``role`` uses, if given), in order."""
    found = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("setting")
        if meta is not None and (role is None or role in meta.roles):
            found.append((f.name, meta))
    return found


def _flag_of(cls: type, name: str, meta: Setting, role: str) -> str:
    """The setting's flag for ``role``: a switch on by default has its ``negative``."""
    if meta.kind == "switch" and meta.negative and _default(cls, name, meta, role):
        return meta.negative
    return meta.flag or "--" + name.replace("_", "-")


def _default(cls: type, name: str, meta: Setting, role: str) -> Any:
    if role in meta.defaults:
        return meta.defaults[role]
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value) or "none"
    return str(value)


def add_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    role: str,
    *,
    hidden: bool = False,
) -> None:
    """Add the flags of ``cls``'s settings that ``role`` uses, their help ending with
    the role's default (``hidden``: no help, for flags taken only to say they do not
    apply). Each stores what was given (None when not given), for :func:`resolve`."""
    for name, meta in settings_of(cls, role):
        if meta.flag is None:
            continue
        default = _default(cls, name, meta, role)
        flag = _flag_of(cls, name, meta, role)
        if meta.kind == "switch":
            parser.add_argument(
                flag,
                dest=name,
                action="store_false" if flag == meta.negative else "store_true",
                default=None,
                help=argparse.SUPPRESS if hidden else meta.help,
            )
            continue
        shown = meta.show_default if meta.show_default is not None else _shown(default)
        parser.add_argument(
            flag,
            dest=name,
            action="append" if meta.kind == "list" else "store",
            default=None,
            metavar=meta.metavar,
            help=argparse.SUPPRESS
            if hidden
            else meta.help
            + (f" (default {shown})" if shown else "")
            + ("; repeatable, or comma-separated" if meta.kind == "list" else ""),
        )


def flags_given(cls: type, role: str, args: argparse.Namespace) -> list[str]:
    """The flags of ``cls``'s settings for ``role`` that ``args`` holds a value for."""
    return [
        _flag_of(cls, name, meta, role)
        for name, meta in settings_of(cls, role)
        if meta.flag is not None and getattr(args, name, None) is not None
    ]


def resolve(
    cls: type[T],
    role: str,
    args: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
    config: str | None = None,
    section: str = "sip",
) -> T:
    """An instance of ``cls`` for ``role``: its defaults, then the TOML file ``config``
    (the table ``[section]``, or the whole file), then ``VOIP_<NAME>`` environment
    variables, then the flags in ``args``. Raises :class:`InvalidArgumentError`."""
    declared = settings_of(cls, role)
    values: dict[str, Any] = {}
    if config:
        metas = dict(declared)
        for name, value in _read_toml(cls, role, config, section).items():
            values[name] = _parse(metas[name], name, value, f"{name} in {config}")
    env = os.environ if environ is None else environ
    for name, meta in declared:
        variable = ENV_PREFIX + name.upper()
        if meta.env and variable in env:
            # A list's parser splits text at its commas itself.
            values[name] = _parse(meta, name, env[variable], f"{variable} in the environment")
    extended: dict[str, Any] = {}
    for name, meta in declared:
        given = getattr(args, name, None) if args is not None else None
        if given is None:
            continue
        where = f"{_flag_of(cls, name, meta, role)} on the command line"
        if meta.kind != "list":
            values[name] = _parse(meta, name, given, where)
            continue
        parsed = _parse(meta, name, ",".join(given), where)  # a repeated flag, or commas
        if meta.extends:
            parsed = (*values.get(name, _default(cls, name, meta, role)), *parsed)
        extended[name] = parsed
    values.update(extended)
    for name, meta in declared:
        if name not in values and role in meta.defaults:
            values[name] = meta.defaults[role]
    return cls(**values)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse(meta: Setting, name: str, value: Any, where: str) -> Any:
    """``value`` parsed; ``where`` names the layer it came from in the error."""
    try:
        return meta.parse(value)
    except ValueError as exc:
        raise InvalidArgumentError(
            f"{name} = {value!r} (from {where}) is not accepted: {exc}"
        ) from None


def _read_toml(cls: type, role: str, config: str, section: str) -> dict[str, Any]:
    path = Path(config)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidArgumentError(f"{path}: cannot read the settings: {exc}") from None
    table = data.get(section, data)
    if not isinstance(table, dict):
        raise InvalidArgumentError(f"{path}: [{section}] must be a table of settings")
    known = {name: meta for name, meta in settings_of(cls) if meta.toml}
    used = {name for name, _ in settings_of(cls, role)}
    values = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in known:
            raise InvalidArgumentError(
                f"{path}: unknown setting {key!r}; known: {', '.join(sorted(known))}"
            )
        if name in used:  # a setting of another role (a server's in a dialler) is skipped
            values[name] = value
    return values


# -- parsers -------------------------------------------------------------------------------


def text(value: Any) -> str:
    """Any text."""
    if not isinstance(value, str):
        raise ValueError("text")
    return value


def boolean(value: Any) -> bool:
    """true or false (1, yes, on / 0, no, off in text)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off", ""):
            return False
    raise ValueError("true or false (1 or 0, yes or no)")


def integer(low: int, high: int | None = None, why: str = "") -> Parser:
    """A whole number from ``low`` (to ``high``); ``why`` explains the range."""
    accepted = f"a whole number from {low}" + (f" to {high}" if high is not None else " up")
    accepted += f" ({why})" if why else ""

    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(accepted)
        try:
            n = int(value)
        except ValueError:
            raise ValueError(accepted) from None
        if n < low or (high is not None and n > high):
            raise ValueError(accepted)
        return n

    return parse


def number(low: float, why: str = "") -> Parser:
    """A number of at least ``low``; ``why`` says what it counts."""
    accepted = f"a number, at least {low:g}" + (f" ({why})" if why else "")

    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(accepted)
        try:
            x = float(value)
        except ValueError:
            raise ValueError(accepted) from None
        if not x >= low or x == float("inf"):
            raise ValueError(accepted)
        return x

    return parse


def choice(*options: str) -> Parser:
    """One of ``options``."""

    def parse(value: Any) -> str:
        if value not in options:
            raise ValueError(f"choose from {', '.join(options)}")
        return str(value)

    return parse


def items(each: Parser, *, empty: bool = True) -> Parser:
    """A list (TOML array, or comma-separated text) of values ``each`` parses, as a tuple
    without repeats."""

    def parse(value: Any) -> tuple[Any, ...]:
        if isinstance(value, str):
            value = _split(value)
        if not isinstance(value, Sequence):
            raise ValueError("a list")
        parsed = [each(v) for v in value]
        if not parsed and not empty:
            raise ValueError("at least one value")
        return tuple(dict.fromkeys(parsed))

    return parse
