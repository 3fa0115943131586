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
    assert "6 kept, 0 broken" in result.stdout


def import_cycles(*packages: str) -> list[list[str]]:
    """Every import circle among the modules of ``packages`` (strongly connected
    components of grimp's import graph, imports under TYPE_CHECKING included)."""
    import grimp

    graph = grimp.build_graph(*packages)
    ours = sorted(m for m in graph.modules if m.split(".")[0] in packages)
    edges = {m: sorted(x for x in graph.find_modules_directly_imported_by(m)
                       if x.split(".")[0] in packages) for m in ours}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges[v]:
                found.append(sorted(component))

    for module in ours:
        if module not in index:
            visit(module)
    return found


def test_no_import_circles_in_app_or_devices():
    assert import_cycles("app", "devices") == []


def test_the_circle_check_finds_a_circle(tmp_path, monkeypatch):
    for name, imports in (("a", "import circ.b"), ("b", "from circ import c"),
                          ("c", "import circ.a"), ("d", "import circ.a")):
        (tmp_path / "circ").mkdir(exist_ok=True)
        (tmp_path / "circ" / f"{name}.py").write_text(f'"""{name}."""\n{imports}\n')
    (tmp_path / "circ" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("circ") == [["circ.a", "circ.b", "circ.c"]]


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
