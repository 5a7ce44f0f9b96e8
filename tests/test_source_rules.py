"""Rules read off the source text: no ``torch.load`` in secateurs without ``weights_only=True``
(a plain ``torch.load`` unpickles, and unpickling a file can run any code in it)."""

from __future__ import annotations

import ast
from pathlib import Path

import secateurs

SOURCE = Path(secateurs.__file__).resolve().parent


def torch_loads(source: str) -> list[tuple[int, bool]]:
    """Every reference to ``torch.load`` in ``source`` as (line, safe): safe when it is called
    with ``weights_only=True`` spelled out. Follows ``import torch as t``, ``from torch import
    load`` and ``torch.serialization``; a reference that is not a call (``f = torch.load``) or a
    call with ``**kwargs`` cannot be checked and is not safe."""
    tree = ast.parse(source)
    torch_names, serialization_names, load_names = set(), set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "torch" or (alias.name.startswith("torch.") and not alias.asname):
                    torch_names.add(alias.asname or "torch")
                elif alias.name == "torch.serialization":
                    serialization_names.add(alias.asname)
        elif isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization"):
            for alias in node.names:
                if alias.name == "load":
                    load_names.add(alias.asname or "load")
                elif node.module == "torch" and alias.name == "serialization":
                    serialization_names.add(alias.asname or "serialization")

    def is_torch_load(node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return node.id in load_names
        if not isinstance(node, ast.Attribute) or node.attr != "load":
            return False
        owner = node.value
        if isinstance(owner, ast.Name):
            return owner.id in torch_names or owner.id in serialization_names
        return (
            isinstance(owner, ast.Attribute)
            and owner.attr == "serialization"
            and isinstance(owner.value, ast.Name)
            and owner.value.id in torch_names
        )

    called = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and is_torch_load(node.func):
            called[id(node.func)] = any(
                keyword.arg == "weights_only"
                and isinstance(keyword.value, ast.Constant)
                and keyword.value.value is True
                for keyword in node.keywords
            ) and not any(keyword.arg is None for keyword in node.keywords)
    found = []
    for node in ast.walk(tree):
        if is_torch_load(node):
            found.append((node.lineno, called.get(id(node), False)))
    return sorted(found)


def test_the_rule_reader_sees_every_spelling_of_torch_load() -> None:
    assert torch_loads("import torch\ntorch.load(p, weights_only=True)\n") == [(2, True)]
    assert torch_loads("import torch\ntorch.load(p)\n") == [(2, False)]
    assert torch_loads("import torch\ntorch.load(p, weights_only=False)\n") == [(2, False)]
    assert torch_loads("import torch\ntorch.load(p, weights_only=flag)\n") == [(2, False)]
    assert torch_loads("import torch\ntorch.load(p, **options)\n") == [(2, False)]
    assert torch_loads("import torch as t\nt.load(p)\n") == [(2, False)]
    assert torch_loads("import torch.nn\ntorch.load(p)\n") == [(2, False)]
    assert torch_loads("from torch import load\nload(p)\n") == [(2, False)]
    assert torch_loads("from torch import load as l\nl(p, weights_only=True)\n") == [(2, True)]
    assert torch_loads("import torch\ntorch.serialization.load(p)\n") == [(2, False)]
    assert torch_loads("from torch import serialization as s\ns.load(p)\n") == [(2, False)]
    assert torch_loads("import torch\nread = torch.load\n") == [(2, False)]
    # not torch's: json, pickle, a method named load
    assert torch_loads("import json, pickle\njson.load(f)\npickle.load(f)\nself.load(p)\n") == []


def test_no_torch_load_without_weights_only_in_secateurs() -> None:
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 20, SOURCE  # the package's sources, not an empty folder
    found = {
        f"{path.relative_to(SOURCE)}:{line}": safe
        for path in files
        for line, safe in torch_loads(path.read_text(encoding="utf-8"))
    }
    unsafe = sorted(place for place, safe in found.items() if not safe)
    assert not unsafe, f"torch.load without weights_only=True at {unsafe}"
    assert any(place.startswith("train/checkpoint.py:") for place in found)  # the reader reads
