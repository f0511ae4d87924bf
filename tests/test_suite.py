"""The test suite itself: every test asserts something.

A test function passes this check when its body (or a function of its file that it calls)
holds an ``assert``, a ``pytest.raises`` / ``pytest.warns`` / ``pytest.fail``, or a call to a
helper whose name starts with ``assert`` (as ``parser_mutations.assert_damage_is_handled``).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
CHECKING_CALLS = frozenset({"raises", "warns", "fail"})


def _called(node: ast.AST) -> set[str]:
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def _checks_directly(function: ast.AST) -> bool:
    if any(isinstance(node, ast.Assert) for node in ast.walk(function)):
        return True
    return any(name in CHECKING_CALLS or name.startswith("assert") for name in _called(function))


def _checking_functions(tree: ast.Module) -> set[str]:
    """The functions of a file that check something, themselves or through another one."""
    functions = {
        node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    checking = {name for name, node in functions.items() if _checks_directly(node)}
    grew = True
    while grew:
        found = {name for name, node in functions.items() if _called(node) & checking} - checking
        checking |= found
        grew = bool(found)
    return checking


def test_every_test_function_asserts_something() -> None:
    silent = []
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        checking = _checking_functions(tree)
        silent += [
            f"{path.name}:{node.lineno} {node.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test")
            and node.name not in checking
        ]
    assert silent == []


def test_a_test_without_an_assert_is_found() -> None:
    tree = ast.parse(
        "def helper(x):\n    assert x\n"
        "def test_checked():\n    helper(1)\n"
        "def test_raises():\n    with pytest.raises(ValueError):\n        int('x')\n"
        "def test_silent():\n    int('1')\n"
    )
    assert _checking_functions(tree) == {"helper", "test_checked", "test_raises"}
