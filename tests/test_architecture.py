"""The shape of the package, measured: layers stay acyclic, units stay small, Redis stays in
its adapter, and the shipped wheel carries no test double.

`lint-imports` (make lint) enforces which layer may import which; these tests hold the rest of
the README's architecture rules, so a change that breaks one fails CI with the place named.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "instruct_lab_bot"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 50
MAX_CLASS_LINES = 300
MAX_PARAMETERS = 6
REDIS_ADAPTER = PACKAGE / "adapters" / "redis"


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def definitions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node


def span(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> int:
    """Lines from the first decorator to the end, as a reader sees the unit."""
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return (node.end_lineno or node.lineno) - first + 1


def parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return len([n for n in names if n not in ("self", "cls")])


def test_no_module_over_the_limit() -> None:
    long = {
        rel(p): n for p in modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines"


def test_no_function_or_class_over_the_limits() -> None:
    too_long: list[str] = []
    too_many: list[str] = []
    for path in modules():
        for node in definitions(ast.parse(path.read_text())):
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if span(node) > limit:
                too_long.append(f"{rel(path)}:{node.lineno} {node.name} ({span(node)} lines)")
            if not isinstance(node, ast.ClassDef) and parameters(node) > MAX_PARAMETERS:
                too_many.append(f"{rel(path)}:{node.lineno} {node.name} ({parameters(node)})")
    assert too_long == [], "functions over 50 lines or classes over 300"
    assert too_many == [], f"functions with more than {MAX_PARAMETERS} parameters"


# A Redis key of the bot (its prefix) or a Lua script, anywhere but the Redis adapter.
_REDIS_TEXT = re.compile(r"""["']\{?ilab-bot\}?:|redis\.call\(|redis\.pcall\(""")


def test_redis_keys_and_lua_only_in_the_redis_adapter() -> None:
    outside = [
        f"{rel(path)}:{number}"
        for path in modules()
        if not path.is_relative_to(REDIS_ADAPTER)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _REDIS_TEXT.search(line)
    ]
    assert outside == []


def test_lua_lives_in_lua_files() -> None:
    inline = [rel(p) for p in REDIS_ADAPTER.rglob("*.py") if "redis.call(" in p.read_text()]
    assert inline == [], "Lua belongs in .lua files beside the adapter, loaded once"
    assert list(REDIS_ADAPTER.rglob("*.lua")), "the Redis adapter's scripts are .lua files"


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("instruct_lab_bot", cache_dir=None)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_core_is_importable_without_io_libraries() -> None:
    """Belt and braces for the import contract: import every core module in a fresh
    interpreter where the I/O libraries cannot be imported at all."""
    code = (
        "import sys, pkgutil, importlib\n"
        "for name in ('aiohttp', 'redis', 'aioboto3', 'botocore', 'gidgethub'):\n"
        "    sys.modules[name] = None\n"
        "import instruct_lab_bot.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'instruct_lab_bot.core.'):\n"
        "    importlib.import_module(m.name)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.timeout(300)
def test_the_wheel_holds_no_test_double(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("instruct_lab_bot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("instruct_lab_bot/core/") for n in names)
    doubles = [
        n
        for n in names
        if re.search(r"testkit|testing/|emulator|fake_ilab|standin|demo|redis_server", n)
    ]
    assert doubles == []
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ilab-standin" not in zipfile.ZipFile(wheel).read(entry_points).decode()
