"""The import rules of DESIGN.md, checked on every test run."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_domain_imports_only_stdlib_biip_and_itself():
    allowed_third_party = {"biip"}
    for path in (ROOT / "app" / "domain").rglob("*.py"):
        for name in imported_modules(path):
            top = name.split(".")[0]
            ok = (
                top in sys.stdlib_module_names
                or top in allowed_third_party
                or name == "app.domain"
                or name.startswith("app.domain.")
                or top == "__future__"
            )
            assert ok, f"{path.relative_to(ROOT)} imports {name}"


def test_only_ui_and_bootstrap_import_kivy():
    for path in [*(ROOT / "app").rglob("*.py"), *(ROOT / "devices").rglob("*.py")]:
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("app/ui/") or rel == "app/bootstrap.py":
            continue
        kivy = [n for n in imported_modules(path) if n.split(".")[0] == "kivy"]
        assert not kivy, f"{rel} imports {kivy}"


def test_every_module_has_a_docstring():
    for folder in ("app", "devices", "bench", "seeds"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            assert ast.get_docstring(tree), f"{path.relative_to(ROOT)} needs a module docstring"


def import_cycles(*packages: str) -> list[list[str]]:
    """Every import circle among the packages' modules, one shortest chain per circle."""
    import grimp  # installed with import-linter

    graph = grimp.build_graph(*packages)
    cycles, seen = [], set()
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain and frozenset(chain) not in seen:
                seen.add(frozenset(chain))
                cycles.append([module, *chain])
    return cycles


def test_devices_has_no_import_circles():
    assert import_cycles("devices") == []
