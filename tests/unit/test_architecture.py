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
    assert "8 kept, 0 broken" in result.stdout


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
    assert import_cycles("app", "devices", "hq") == []


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


def test_the_scenario_runner_drives_the_simulators_through_the_simulated_store():
    """HTTP lives in devices: the scenario runner (app/harness.py) scripts the payment
    simulator and the membership backend through devices.sim.store.SimStore, not with
    requests of its own."""
    http = {"requests", "urllib.request", "http.client", "httpx"}
    used = imported_modules(ROOT / "app" / "harness.py") & http
    assert not used, f"app/harness.py speaks HTTP itself: {sorted(used)}"


def test_every_module_has_a_docstring():
    for folder in ("app", "devices", "hq", "bench", "seeds"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            assert ast.get_docstring(tree), f"{path.relative_to(ROOT)} needs a module docstring"


# --- SQL runs only in app/storage ---------------------------------------------------------------
# Every table has one owner module in app/storage; everything else calls its methods. Not
# scanned: app/storage itself, and devices/sim, whose simulators (the membership backend, the
# payment provider) are separate programs with their own databases, not the kiosk's.
SQL_EXEMPT_DIRS = ("app/storage/", "devices/sim/")
SQL_METHODS = {"execute", "executemany", "executescript"}
SQL_WORDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "PRAGMA",
             "WITH", "BEGIN", "COMMIT", "ROLLBACK", "REPLACE")

# SQL that may stay outside app/storage for now, one entry per statement: (file, the start of
# its SQL). Empty: every statement has moved. An entry that matches nothing fails the test.
SQL_NOT_YET_MOVED: list[tuple[str, str]] = []


def _is_database(expression: str) -> bool:
    last = expression.rsplit(".", 1)[-1].lower()
    return last in {"db", "conn", "connection", "database"} or last.endswith("_db")


def _sql_text(call: ast.Call) -> str:
    first = call.args[0] if call.args else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    if isinstance(first, ast.JoinedStr):  # an f-string: its literal parts
        return "".join(v.value for v in first.values
                       if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return ""


def sql_uses(source: str) -> list[tuple[int, str]]:
    """Where ``source`` runs SQL: (line, the SQL text if it is a literal, else what runs it).

    Found: ``.execute/.executemany/.executescript(``, sqlite-utils' ``db.query(``,
    ``db.table(`` and ``db[...]``, and opening a database (``sqlite3.connect``,
    ``sqlite_utils.Database(``). A payment provider's ``.query(order_id)`` (the order
    query of WeChat Pay and Alipay) is not SQL: ``.query`` counts on a database object
    or with SQL text.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, receiver = node.func.attr, ast.unparse(node.func.value)
            sql = _sql_text(node)
            what = sql or f"{receiver}.{attr}(...)"
            if attr in SQL_METHODS or attr == "table":
                found.append((node.lineno, what))
            elif attr == "query" and (_is_database(receiver)
                                      or sql.lstrip().upper().startswith(SQL_WORDS)):
                found.append((node.lineno, what))
            elif (receiver, attr) in {("sqlite3", "connect"), ("sqlite_utils", "Database")}:
                found.append((node.lineno, f"{receiver}.{attr}(...)"))
        elif isinstance(node, ast.Subscript) and _is_database(ast.unparse(node.value)):
            found.append((node.lineno, f"{ast.unparse(node.value)}[...]"))
        elif isinstance(node, ast.ImportFrom) and node.module in ("sqlite3", "sqlite_utils") \
                and any(a.name in ("connect", "Database") for a in node.names):
            found.append((node.lineno, f"from {node.module} import ..."))
    return sorted(found)


def test_the_sql_finder_finds_sql_and_only_sql():
    source = (
        "kiosk.db.execute('SELECT 1')\n"
        "self.conn.executemany(f'UPDATE t SET a = {x}', rows)\n"
        "db.query('SELECT * FROM products')\n"
        "self.db['products'].insert({})\n"
        "db.table('outbox').count\n"
        "sqlite3.connect(path)\n"
        "sqlite_utils.Database(conn)\n"
        "from sqlite3 import connect\n"
        "provider.query(out_trade_no)\n"  # a payment order query: not SQL
        "self.provider.query('HEALTHCHECK0000')\n"
        "self.backend.store.conn.close()\n"
        "rows[0]\n"
    )
    assert [line for line, _ in sql_uses(source)] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert sql_uses(source)[0][1] == "SELECT 1"


def test_sql_runs_only_in_app_storage():
    found: list[tuple[str, int, str]] = []
    for folder in ("app", "devices"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(SQL_EXEMPT_DIRS):
                continue
            found += [(rel, line, sql) for line, sql in sql_uses(path.read_text("utf-8"))]
    waiting = list(SQL_NOT_YET_MOVED)
    outside = []
    for rel, line, sql in found:
        match = next((w for w in waiting if w[0] == rel and sql.startswith(w[1])), None)
        if match is not None:
            waiting.remove(match)
        else:
            outside.append(f"{rel}:{line}: {sql[:70]!r}")
    assert not outside, ("SQL outside app/storage; give it a method on the table's owner in "
                         "app/storage:\n" + "\n".join(outside))
    assert not waiting, ("these SQL_NOT_YET_MOVED entries match nothing any more: remove "
                         f"them from the list: {waiting}")
