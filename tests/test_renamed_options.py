"""Renamed options keep working for one release: an old flag is accepted with a one-line warning
and lands in the new field, and a checkpoint written under an old setting name still resumes
(docs/CHANGES.md lists the renames)."""

from __future__ import annotations

import json

import pytest

from secateurs.cli.main import build_parser
from secateurs.errors import SecateursError
from secateurs.pruning.campfire.callback import CampfireCallback, CampfireSettings


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_old_sgcnn_flags_are_deprecated_aliases(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("sgcnn", "model", "--data", "d", "-o", "out", "--balance", "--fc")
    assert args.balanced is True and args.linear is True
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "secateurs: warning: --balance is deprecated; use --balanced",
        "secateurs: warning: --fc is deprecated; use --linear",
    ]
    args = parse("sgcnn", "model", "--data", "d", "-o", "out")
    assert args.balanced is False and args.linear is False
    assert capsys.readouterr().err == ""


def test_new_flags_say_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("sgcnn", "model", "--data", "d", "-o", "out", "--balanced", "--linear")
    assert args.balanced is True and args.linear is True
    assert capsys.readouterr().err == ""


def old_checkpoint_state(callback: CampfireCallback, exempt_ends: bool) -> dict:
    """The callback's state as secateurs before 0.2 wrote it: ``exempt_ends`` for the ends."""
    state = callback.state_dict()
    settings = json.loads(state["settings"])
    settings["exempt_ends"] = exempt_ends
    del settings["prune_first_last"]
    state["settings"] = json.dumps(settings, sort_keys=True)
    return state


def test_a_campfire_checkpoint_from_before_the_rename_resumes() -> None:
    callback = CampfireCallback(CampfireSettings("window", epochs=2), (3, 32, 32))
    callback.load_state_dict(old_checkpoint_state(callback, exempt_ends=True))
    assert callback.step == 0


def test_a_campfire_checkpoint_with_other_ends_is_still_refused() -> None:
    callback = CampfireCallback(CampfireSettings("window", epochs=2), (3, 32, 32))
    with pytest.raises(SecateursError, match=r"other Campfire settings \(prune_first_last\)"):
        callback.load_state_dict(old_checkpoint_state(callback, exempt_ends=False))
