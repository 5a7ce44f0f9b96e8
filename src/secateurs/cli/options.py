"""Declared options (:mod:`secateurs.options`) on the command line: one argparse argument per
declared field, and the dataclass read back from the parsed arguments. Plain parsers become
argparse types here, so their messages reach the user as one line; an old flag kept for one
release (``Option.deprecated``) still works and says which flag replaces it."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from secateurs.errors import SecateursError
from secateurs.options import Option, declared


def argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` as an argparse type: its ValueError or SecateursError message, verbatim."""

    def parsed(text: str) -> Any:
        try:
            return parse(text)
        except (ValueError, SecateursError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parsed.__name__ = getattr(parse, "__name__", "value")
    return parsed


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
        argument = _argument(f, spec)
        target.add_argument(*_names(f, spec), **argument)
        for old in spec.deprecated:
            _add_deprecated(target, old, _names(f, spec)[0], argument)


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
        argument["type"] = argparse_type(spec.parse)
    return argument


def _add_deprecated(target: Any, old: str, new: str, argument: dict[str, Any]) -> None:
    """``old`` as a hidden flag storing where ``new`` does, with a one-line warning."""
    switch = argument.get("action") == "store_true"

    class Deprecated(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None) -> None:
            print(f"secateurs: warning: {old} is deprecated; use {new}", file=sys.stderr)
            setattr(namespace, self.dest, True if switch else values)

    extra = {key: argument[key] for key in ("type", "choices", "nargs") if key in argument}
    target.add_argument(
        old,
        dest=argument["dest"],
        action=Deprecated,
        nargs=0 if switch else extra.pop("nargs", None),
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
        **extra,
    )


def job_from_args(job_type: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """The dataclass the parsed command line describes (``fixed``: fields set by the command)."""
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
