"""Each option of a run declared once: its field, default, help and check, in the run's job
dataclass. The command line is built from these declarations (:func:`add_options`) and read back
into the job (:func:`job_from_args`); the Python API fills the same dataclass; :func:`check_fields`
applies every field's check, whichever way the job was made.

A field's ``metadata["option"]`` is an :class:`Option`. Its flag is the field's name with dashes
(``finetune_epochs`` -> ``--finetune-epochs``) unless ``flag`` says otherwise; booleans that
default to False are switches.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from secateurs.errors import SecateursError

Check = Callable[[Any], str | None]  # a problem with the value, in words, or None


@dataclass(frozen=True)
class Option:
    help: str
    parse: Callable[[str], Any] | None = None  # argparse type (one item)
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


def option(default: Any = dataclasses.MISSING, help: str = "", **spec: Any) -> Any:
    """A dataclass field declared as a run option (see :class:`Option`)."""
    metadata = {"option": Option(help=help, **spec)}
    if isinstance(default, list | dict | set):
        frozen = default
        return dataclasses.field(default_factory=lambda: type(frozen)(frozen), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def count(default: int | None, help: str, least: int = 1, **spec: Any) -> Any:
    """A whole-number option of at least ``least`` (a batch size, epochs, threads; 0: off)."""
    from secateurs.cli.parser import non_negative_int, positive_int

    parse = positive_int if least >= 1 else non_negative_int
    return option(default, help, parse=parse, check=at_least(least), **spec)


def fraction(default: float | None, help: str, **spec: Any) -> Any:
    """A ratio strictly between 0 and 1 (a MACs target)."""
    from secateurs.cli.parser import ratio

    return option(default, help, parse=ratio, check=in_unit_interval, **spec)


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
            raise SecateursError(f"{_flag(f, spec)} {problem}")


def _flag(f: dataclasses.Field, spec: Option) -> str:
    if spec.positional:
        return f.name.upper()
    return spec.flags[0] if spec.flags else "--" + f.name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser, job_type: type) -> None:
    """One argument per declared option of ``job_type``, with its help and default."""
    groups: dict[str, Any] = {}
    for f, spec in declared(job_type):
        if not spec.cli:
            continue
        target: Any = parser
        if spec.group is not None:
            if spec.group not in groups:
                groups[spec.group] = parser.add_mutually_exclusive_group()
            target = groups[spec.group]
        target.add_argument(*_names(f, spec), **_argument(f, spec))


def _names(f: dataclasses.Field, spec: Option) -> tuple[str, ...]:
    if spec.positional:
        return (f.name,)
    return spec.flags or ("--" + f.name.replace("_", "-"),)


def _argument(f: dataclasses.Field, spec: Option) -> dict[str, Any]:
    default = None if f.default is dataclasses.MISSING else f.default
    if f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    argument: dict[str, Any] = {"help": spec.help}
    if not spec.positional:
        argument["dest"] = f.name
    if default is False and spec.parse is None:
        argument["action"] = "store_true"
        return argument
    # repeatable flags collect into a fresh list; the field's default applies when none is given
    argument["default"] = None if spec.action == "append" else default
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        if not spec.positional:
            argument["required"] = True
        argument.pop("default")
    for key in ("nargs", "action", "choices", "metavar"):
        if getattr(spec, key) is not None:
            argument[key] = getattr(spec, key)
    if spec.parse is not None:
        argument["type"] = spec.parse
    return argument


def job_from_args(job_type: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """The job the parsed command line describes (``fixed``: fields set by the command)."""
    values = dict(fixed)
    for f, spec in declared(job_type):
        if not spec.cli or f.name in values:
            continue
        value = getattr(args, f.name)
        if spec.convert is not None:
            value = spec.convert(value) if value is not None else _field_default(f)
        values[f.name] = value
    return job_type(**values)


def _field_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def job_settings(job: Any) -> dict[str, Any]:
    """The job's options as plain JSON values (its config.json)."""
    values = {}
    for f, _ in declared(type(job)):
        value = getattr(job, f.name)
        if isinstance(value, tuple):
            value = list(value)
        plain = isinstance(value, int | float | str | bool | list | dict | None)
        values[f.name] = value if plain else str(value)
    return values
