"""Every ``secateurs ...`` command the README shows parses: a flag renamed or dropped fails here,
not in a new user's terminal. (The Python example runs as written in test_api.py.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from secateurs.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [line.strip() for line in joined.splitlines() if line.startswith("secateurs ")]
    return commands


def test_the_readme_shows_the_whole_path() -> None:
    commands = " ".join(readme_commands())
    for step in ("secateurs train", "secateurs prune", "--target-latency", "secateurs measure",
                 "secateurs export", "secateurs import", "secateurs compare"):  # fmt: skip
        assert step in commands, step


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_parses(command: str) -> None:
    argv = shlex.split(command.replace("$DATA", "data"), comments=True)[1:]
    args = build_parser().parse_args(argv)
    assert callable(args.run)
