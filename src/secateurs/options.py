"""Each option declared once: its field, default, help, parser and check, on a dataclass (a run's
job, a training-time method's options). The command line is built from these declarations
(:mod:`secateurs.cli.options`); the Python API fills the same dataclasses; :func:`check_fields`
applies every field's check, whichever way the dataclass was made.

A field's ``metadata["option"]`` is an :class:`Option`. Its flag is the field's name with dashes
(``finetune_epochs`` -> ``--finetune-epochs``) unless ``flags`` says otherwise; booleans that
default to False are switches. Parsers here are plain functions (text -> value, raising
ValueError with a message); the command line turns them into argparse types. This module sits
at the bottom of the package's layers: it imports nothing of secateurs but its errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from secateurs.errors import SecateursError

Check = Callable[[Any], str | None]  # a problem with the value, in words, or None


@dataclass(frozen=True)
class Option:
    help: str
    parse: Callable[[str], Any] | None = None  # text -> value (one item); ValueError if bad
    check: Check | None = None
    flags: tuple[str, ...] = ()  # default: --field-name
    positional: bool = False
    nargs: str | None = None
    action: str | None = None  # argparse action ("append" for repeatable flags)
    choices: Sequence[Any] | None = None
    metavar: str | None = None
    group: str | None = None  # options of one group are mutually exclusive on the command line
    convert: Callable[[Any], Any] | None = None  # from the parsed flag value to the field's
    cli: bool = True  # False: Python API only
    deprecated: tuple[str, ...] = ()  # old flags still accepted for one release, with a warning


def option(default: Any = dataclasses.MISSING, help: str = "", **spec: Any) -> Any:
    """A dataclass field declared as a run option (see :class:`Option`)."""
    metadata = {"option": Option(help=help, **spec)}
    if isinstance(default, list | dict | set):
        frozen = default
        return dataclasses.field(default_factory=lambda: type(frozen)(frozen), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def count(default: int | None, help: str, least: int = 1, **spec: Any) -> Any:
    """A whole-number option of at least ``least`` (a batch size, epochs, threads; 0: off)."""
    parse = positive_int if least >= 1 else non_negative_int
    return option(default, help, parse=parse, check=at_least(least), **spec)


def fraction(default: float | None, help: str, **spec: Any) -> Any:
    """A ratio strictly between 0 and 1 (a MACs target)."""
    return option(default, help, parse=ratio, check=in_unit_interval, **spec)


def share(default: float, help: str, **spec: Any) -> Any:
    """A fraction in [0, 1), 0 meaning "off" (a channel floor)."""
    return option(default, help, parse=number, check=in_half_open_unit, **spec)


# parsers: text -> value, ValueError with a message a user can act on
def ratio(text: str) -> float:
    """A number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise ValueError(f"a ratio must be between 0 and 1 exclusive, not {value}")
    return value


def number(text: str) -> float:
    """Any real number."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def positive_int(text: str) -> int:
    """A whole number of at least 1 (a batch size, a count of threads)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """A whole number of at least 0 (0 usually meaning "off")."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value < least:
        raise ValueError(f"must be at least {least}, not {value}")
    return value


# checks shared by many options
def at_least(least: int) -> Check:
    return lambda value: (
        None if value is None or value >= least else f"must be at least {least}, not {value}"
    )


def positive(value: float) -> str | None:
    return None if value > 0 else f"must be positive, not {value}"


def in_unit_interval(value: float | None) -> str | None:
    """A ratio strictly between 0 and 1 (None: not given)."""
    if value is None or 0 < value < 1:
        return None
    return f"must be between 0 and 1 exclusive, not {value}"


def in_half_open_unit(value: float) -> str | None:
    """A fraction in [0, 1)."""
    return None if 0 <= value < 1 else f"must be at least 0 and below 1, not {value}"


def declared(job_type: type) -> list[tuple[dataclasses.Field, Option]]:
    return [
        (f, f.metadata["option"]) for f in dataclasses.fields(job_type) if "option" in f.metadata
    ]


def check_fields(job: Any) -> None:
    """Every declared option's check on ``job``; the first problem is a one-line error."""
    for f, spec in declared(type(job)):
        value = getattr(job, f.name)
        problem = spec.check(value) if spec.check is not None else None
        if problem:
            raise SecateursError(f"{flag_of(f, spec)} {problem}")


def flag_of(f: dataclasses.Field, spec: Option) -> str:
    """The option's name on the command line (its first flag, or its positional name)."""
    if spec.positional:
        return f.name.upper()
    return spec.flags[0] if spec.flags else "--" + f.name.replace("_", "-")


def job_settings(job: Any) -> dict[str, Any]:
    """The job's options as plain JSON values (its config.json); a field holding another
    dataclass of declared options (a training-time method's) contributes its options flat."""
    values = {}
    for f, _ in declared(type(job)):
        value = getattr(job, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            values.update(job_settings(value))
            continue
        if isinstance(value, tuple):
            value = list(value)
        plain = isinstance(value, int | float | str | bool | list | dict | None)
        values[f.name] = value if plain else str(value)
    return values
