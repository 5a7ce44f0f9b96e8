"""docs/architecture.md names every module of src/secateurs (one line each), so the map a new
reader starts from never falls behind the code."""

from __future__ import annotations

from pathlib import Path

import secateurs

SOURCE = Path(secateurs.__file__).resolve().parent
PAGE = SOURCE.parents[1] / "docs" / "architecture.md"


def test_every_module_is_named_on_the_architecture_page() -> None:
    text = PAGE.read_text()
    modules = sorted(str(path.relative_to(SOURCE)) for path in SOURCE.rglob("*.py"))
    assert len(modules) > 150
    missing = [module for module in modules if f"`{module}`" not in text]
    assert missing == []


def test_the_page_names_no_module_that_is_gone() -> None:
    import re

    text = PAGE.read_text()
    named = set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py)`", text))
    modules = {str(path.relative_to(SOURCE)) for path in SOURCE.rglob("*.py")}
    # a bare file name in the prose (`history.py`) may name a module of any package
    gone = sorted(n for n in named if not any(m == n or m.endswith("/" + n) for m in modules))
    assert gone == []
