"""Under CI (the ``CI`` environment variable, which .ci/run exports) a missing optional package or
data set fails the tests that need it; elsewhere it skips them."""

from __future__ import annotations

from pathlib import Path

import pytest

import secateurs.data.sources  # noqa: F401  (imported here, not again in each inner pytest run)
from ci_guard import in_ci, require, unavailable

ABSENT = "secateurs_no_such_module"


@pytest.mark.parametrize(
    ("value", "ci"), [("1", True), ("true", True), ("", False), ("0", False), ("false", False)]
)
def test_ci_is_read_from_the_environment(monkeypatch, value: str, ci: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is ci
    monkeypatch.delenv("CI")
    assert not in_ci()


def test_a_missing_module_skips_outside_ci_and_fails_under_it(monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=ABSENT):
        require(ABSENT)
    with pytest.raises(pytest.skip.Exception, match="no data"):
        unavailable("no data")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match=f"{ABSENT}.*set-up provides it"):
        require(ABSENT)
    with pytest.raises(pytest.fail.Exception, match="no data"):
        unavailable("no data")
    assert require("json").dumps([1]) == "[1]"  # a module that is there is returned


def test_cifar10_fixture_and_module_imports_fail_under_ci(pytester, monkeypatch) -> None:
    """Test files using the conftest's CIFAR-10 fixture and ``require`` at module level, run by a
    pytest of their own, without the data set and the module."""
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(
        test_needs_cifar="def test_it(cifar10_root):\n    pass\n",
        test_needs_module=f"from ci_guard import require\nrequire({ABSENT!r})\n"
        "def test_it():\n    pass\n",
    )
    monkeypatch.setenv("SECATEURS_CIFAR10", str(pytester.path / "no-cifar10"))
    monkeypatch.delenv("CI", raising=False)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(skipped=2)
    monkeypatch.setenv("CI", "1")
    result = pytester.runpytest("-p", "no:cacheprovider", "--continue-on-collection-errors")
    result.assert_outcomes(errors=2)  # a fixture's and a collection's failure: both errors
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*CIFAR-10 not found*set-up provides it*"])
    result.stdout.fnmatch_lines([f"*{ABSENT}*set-up provides it*"])
