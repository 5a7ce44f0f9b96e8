"""The shape rules of src/ (docs/architecture.md): no file over 400 lines, no function over 60
lines or 8 parameters, and one place that builds a Trainer."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "secateurs"


def functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    return len([name for name in names if name not in ("self", "cls")])


def test_no_file_over_400_lines_and_no_function_over_60_lines_or_8_parameters() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(SRC)
        if len(text.splitlines()) > 400:
            problems.append(f"{name}: {len(text.splitlines())} lines")
        for node in functions(ast.parse(text)):
            length = node.end_lineno - node.lineno + 1
            if length > 60 or parameters(node) > 8:
                problems.append(
                    f"{name}:{node.lineno} {node.name}: {length} lines, "
                    f"{parameters(node)} parameters"
                )
    assert problems == []


def test_the_rule_counts_what_it_names() -> None:
    # the checker itself, on a function that breaks both rules
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    source = f"def f(self, a, b, c, d, e, f, g, h, i):\n{body}\n"
    (node,) = functions(ast.parse(source))
    assert parameters(node) == 9 and node.end_lineno - node.lineno + 1 == 61


def test_only_the_run_skeleton_builds_a_trainer() -> None:
    builders = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if "Trainer(" in path.read_text() and path.name != "trainer.py"
    )
    assert builders == ["runs/training.py"]
