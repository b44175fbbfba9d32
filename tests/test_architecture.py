"""docs/architecture.md lists every module of the package, and only modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def _documented_modules() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    tree = text.split("## The modules", 1)[1].split("```", 2)[1]
    found: set[str] = set()
    folder = ""
    for line in tree.splitlines()[1:]:
        if not line.strip() or line.strip() == "acp_plugins/":
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        names = []  # the leading names of a line; what follows them describes them
        for token in re.split(r"\s{2,}", line.strip()):
            if not re.fullmatch(r"\w+(?:\.py|/)", token):
                break
            names.append(token)
        if depth == 1:
            folder = names[0] if names[0].endswith("/") else ""
            if not folder:
                found.add(names[0])
        else:
            found |= {folder + name for name in names if name.endswith(".py")}
    return found


def _package_modules() -> set[str]:
    package = ROOT / "acp_plugins"
    return {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if not (path.name == "__init__.py" and path.parent != package)
    }


def test_the_architecture_document_lists_every_module() -> None:
    documented, actual = _documented_modules(), _package_modules()
    assert sorted(actual - documented) == [], "modules missing from docs/architecture.md"
    assert sorted(documented - actual) == [], "docs/architecture.md lists modules that are gone"


def _class_sizes() -> dict[str, int]:
    import ast

    sizes = {}
    for path in (ROOT / "acp_plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                name = f"{path.relative_to(ROOT)}:{node.name}"
                sizes[name] = (node.end_lineno or node.lineno) - node.lineno + 1
    return sizes


def test_the_host_stays_a_facade_and_no_class_grows_past_its_seams() -> None:
    sizes = _class_sizes()
    assert sizes["acp_plugins/host.py:PluginHost"] <= 350
    # "about 400": a class that passes this has more than one job; split it along its seams
    assert {name: n for name, n in sizes.items() if n > 450} == {}
