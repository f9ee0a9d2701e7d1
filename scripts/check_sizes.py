"""Print every unit over the architecture limits (tests/test_architecture.py holds them).

python scripts/check_sizes.py [path-prefix]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_architecture import (
    MAX_CLASS_LINES,
    MAX_FUNCTION_LINES,
    MAX_MODULE_LINES,
    MAX_PARAMETERS,
    definitions,
    modules,
    parameters,
    rel,
    span,
)


def main() -> int:
    prefix = sys.argv[1] if len(sys.argv) > 1 else ""
    found = 0
    for path in modules():
        if not rel(path).startswith(prefix):
            continue
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES:
            print(f"module {rel(path)}: {lines} lines")
            found += 1
        for node in definitions(ast.parse(path.read_text())):
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if span(node) > limit:
                print(f"long   {rel(path)}:{node.lineno} {node.name}: {span(node)} lines")
                found += 1
            if not isinstance(node, ast.ClassDef) and parameters(node) > MAX_PARAMETERS:
                print(f"params {rel(path)}:{node.lineno} {node.name}: {parameters(node)}")
                found += 1
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
